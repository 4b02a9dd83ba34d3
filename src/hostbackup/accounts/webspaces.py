"""Webspaces (subscriptions) and their mailboxes, with the directories that hold their content.

Content lives outside the database: web files under `<vhosts root>/<name>/`, mail under
`<mail root>/<name>/<mailbox>/` as Maildir. Names are validated before they become paths.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.passwords import hash_password
from hostbackup.accounts.users import Caller, Role, can_see_webspace
from hostbackup.db.tables import Mailbox, User, Webspace
from hostbackup.errors import AlreadyExists, InvalidValue, NotFound

HOSTNAME_RE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
MAILNAME_RE = re.compile(r"[a-z0-9._+-]{1,64}")
WEB_SUBDIRS = ("httpdocs", "logs", "private")
MAILDIR_SUBDIRS = ("cur", "new", "tmp")


def normalise_name(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if not HOSTNAME_RE.fullmatch(name) or ".." in name:
        raise InvalidValue("name", name)
    return name


def create_webspace(session: Session, vhosts_root: Path, *, name: str, owner: User, **fields: object) -> Webspace:
    name = normalise_name(name)
    if session.scalar(select(Webspace.id).where(Webspace.name == name)) is not None:
        raise AlreadyExists()
    ftp_login = fields.get("ftp_login")
    if ftp_login and session.scalar(select(Webspace.id).where(Webspace.ftp_login == ftp_login)) is not None:
        raise AlreadyExists()
    webspace = Webspace(name=name, owner_id=owner.id, guid=str(uuid.uuid4()), created=dt.date.today(), **fields)
    session.add(webspace)
    session.flush()
    root = vhosts_root / name
    for sub in WEB_SUBDIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    return webspace


def find_webspace(session: Session, caller: Caller, *, id: int | None = None, name: str | None = None) -> Webspace:
    query = select(Webspace)
    query = query.where(Webspace.id == id) if id is not None else query.where(Webspace.name == (name or "").lower())
    webspace = session.scalar(query)
    if webspace is None or not can_see_webspace(session, caller, webspace):
        raise NotFound("Webspace")
    return webspace


def webspaces_of(session: Session, owner_id: int) -> list[Webspace]:
    """Webspaces owned directly by a user, in id order."""
    return list(session.scalars(select(Webspace).where(Webspace.owner_id == owner_id).order_by(Webspace.id)))


def visible_webspaces(session: Session, caller: Caller) -> list[Webspace]:
    query = select(Webspace).order_by(Webspace.id)
    if caller.role is Role.CUSTOMER:
        query = query.where(Webspace.owner_id == caller.id)
    elif caller.role is Role.RESELLER:
        customers = select(User.id).where(User.owner_id == caller.id)
        query = query.where((Webspace.owner_id == caller.id) | Webspace.owner_id.in_(customers))
    return list(session.scalars(query))


def create_mailbox(
    session: Session, mail_root: Path, webspace: Webspace, *, name: str, password: str = "", **fields: object
) -> Mailbox:
    name = name.strip().lower()
    if not MAILNAME_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidValue("name", name)
    existing = select(Mailbox.id).where(Mailbox.webspace_id == webspace.id, Mailbox.name == name)
    if session.scalar(existing) is not None:
        raise AlreadyExists()
    mailbox = Mailbox(
        webspace_id=webspace.id,
        name=name,
        password_hash=hash_password(password) if password else "",
        **fields,
    )
    session.add(mailbox)
    session.flush()
    maildir = mail_root / webspace.name / name
    for sub in MAILDIR_SUBDIRS:
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    return mailbox


def mailboxes_of(session: Session, webspace_id: int) -> list[Mailbox]:
    return list(session.scalars(select(Mailbox).where(Mailbox.webspace_id == webspace_id).order_by(Mailbox.id)))
