"""Webspaces (subscriptions) and their mailboxes, with the directories that hold their content.

Content lives outside the database: web files under `<vhosts root>/<name>/`, mail under
`<mail root>/<name>/<mailbox>/` as Maildir. Names are validated before they become paths.

Deleting removes the rows at once (the database cascades to mailboxes, keys and the rest) and
stops the tasks of what was deleted; content directories are removed only when the caller asks
for it, and only after the transaction commits, so a delete that rolls back never loses files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import ColumnElement, delete, event, select
from sqlalchemy.orm import Session

from hostbackup.accounts.passwords import hash_password
from hostbackup.accounts.users import (
    Caller,
    Role,
    accounts_below,
    as_int,
    can_see_webspace,
    check_password_value,
    check_text_lengths,
)
from hostbackup.config import Settings
from hostbackup.db.tables import Mailbox, RemoteStorage, User, Webspace, stored_id
from hostbackup.errors import AlreadyExists, InvalidValue, NotFound
from hostbackup.storage.layout import Owner, owner_dir, retired_dir
from hostbackup.tasks.queue import stop_tasks_of
from hostbackup.tasks.task import TargetKind

log = logging.getLogger(__name__)

HOSTNAME_RE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
MAILNAME_RE = re.compile(r"[a-z0-9._+-]{1,64}")
FTP_LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
WEB_SUBDIRS = ("httpdocs", "logs", "private")
MAILDIR_SUBDIRS = ("cur", "new", "tmp")


def normalise_name(name: str) -> str:
    """The canonical, lowercased form of a host name; internationalised names are accepted (IDNA)."""
    name = name.strip().lower().rstrip(".")
    try:
        ascii_form = name.encode("idna").decode("ascii")
        canonical = ascii_form.encode("ascii").decode("idna")
    except UnicodeError:
        raise InvalidValue("name", name) from None
    if not HOSTNAME_RE.fullmatch(ascii_form) or ".." in ascii_form:
        raise InvalidValue("name", name)
    return canonical


def ascii_name(name: str) -> str:
    """IDNA (punycode) form of a stored webspace name: `ascii-name` of spec §5.4."""
    return name.encode("idna").decode("ascii")


def check_ip_addresses(values: list[str]) -> list[str]:
    """Up to two addresses, at most one IPv4 and one IPv6, normalised; else 1019."""
    parsed = []
    for value in values:
        try:
            parsed.append(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidValue("ip_address", value) from None
    if len(parsed) > 2 or len({address.version for address in parsed}) != len(parsed):
        raise InvalidValue(
            "ip_address", ", ".join(values), "Invalid value of ip_address: one IPv4 and one IPv6 at most."
        )
    return [str(address) for address in parsed]


def ftp_account(login: str | None, password: str | None) -> dict[str, object]:
    """Webspace fields for the `ftp_login` / `ftp_password` hosting properties; invalid → 1019."""
    fields: dict[str, object] = {}
    if login is not None:
        if not FTP_LOGIN_RE.fullmatch(login):
            raise InvalidValue("ftp_login", login)
        fields["ftp_login"] = login
    if password is not None:
        check_password_value(password, "ftp_password")
        fields["ftp_password_hash"] = hash_password(password)
    return fields


def create_webspace(session: Session, vhosts_root: Path, *, name: str, owner: User, **fields: object) -> Webspace:
    name = normalise_name(name)
    check_text_lengths(Webspace, fields)
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
    """The webspace named by id or name, if the caller may see it; else `NotFound`."""
    found = find_webspaces(session, caller, "id", str(id)) if id is not None else None
    if found is None:
        found = find_webspaces(session, caller, "name", name or "")
    if not found:
        raise NotFound("Webspace")
    return found[0]


def _webspace_condition(key: str, value: str) -> ColumnElement[bool]:
    if key == "id":
        return Webspace.id == stored_id(as_int(value) or 0)
    if key == "name":
        try:
            return Webspace.name == normalise_name(value)
        except InvalidValue:
            return Webspace.name == value.strip().lower()
    if key == "guid":
        return Webspace.guid == value.lower()
    return Webspace.external_id == value


def find_webspaces(session: Session, caller: Caller, key: str, value: str) -> list[Webspace]:
    """Visible webspaces whose `key` (`id`, `name`, `guid`, `external-id`) equals `value`, in id order."""
    query = select(Webspace).where(_webspace_condition(key, value)).order_by(Webspace.id)
    return [webspace for webspace in session.scalars(query) if can_see_webspace(session, caller, webspace)]


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
    fields.setdefault("password_hash", hash_password(password) if password else "")
    mailbox = Mailbox(webspace_id=webspace.id, name=name, **fields)
    session.add(mailbox)
    session.flush()
    if fields.get("mailbox_enabled", True):  # a mail name without mailbox (forwarding only) has no Maildir
        maildir = mail_root / webspace.name / name
        for sub in MAILDIR_SUBDIRS:
            (maildir / sub).mkdir(parents=True, exist_ok=True)
    return mailbox


def mailbox_password_hash(value: str, kind: str = "plain") -> str:
    """What is stored for a mail password: `plain` is hashed (5-255 characters, spec §5.0);
    `crypt` and `sym` arrive already encoded by the client and are kept as given, tagged."""
    if kind == "plain":
        check_password_value(value, "password")
        return hash_password(value)
    if not value:
        raise InvalidValue("password", "")
    return f"{{{kind}}}{value}"


def mailboxes_of(session: Session, webspace_id: int) -> list[Mailbox]:
    return list(session.scalars(select(Mailbox).where(Mailbox.webspace_id == webspace_id).order_by(Mailbox.id)))


def find_mailbox(session: Session, webspace: Webspace, name: str) -> Mailbox:
    query = select(Mailbox).where(Mailbox.webspace_id == webspace.id, Mailbox.name == name.strip().lower())
    mailbox = session.scalar(query)
    if mailbox is None:
        raise NotFound("Mail name")
    return mailbox


@dataclass(frozen=True)
class ContentRoots:
    """Where web and mail content lives."""

    vhosts: Path
    mail: Path

    def of(self, webspace_name: str) -> list[Path]:
        return [self.vhosts / webspace_name, self.mail / webspace_name]


@dataclass(frozen=True)
class Leftovers:
    """What a deletion does on disk (spec §5.0). Folders are named by login and domain name, so what
    a deleted owner leaves must not stay under its name: a new account or webspace of that name
    would list, download and restore its backups, and serve its files and mail. Local backups are
    kept but moved out of the API's reach (`retired_dir`); web and mail content is removed when the
    server is set so (`remove_content`), else moved aside too, to `<root>/.deleted/<name>.<id>/`."""

    dumps: Path
    content: ContentRoots
    remove_content: bool = False


def leftovers(settings: Settings) -> Leftovers:
    content = ContentRoots(settings.vhosts_root, settings.mail_root)
    return Leftovers(settings.dumps_root, content, settings.remove_content_on_delete)


def delete_mailbox(session: Session, mail_root: Path, webspace: Webspace, mailbox: Mailbox) -> None:
    """Delete a mail name and, once committed, its Maildir."""
    maildir = mail_root / webspace.name / mailbox.name
    session.delete(mailbox)
    session.flush()
    _remove_after_commit(session, [maildir])


def delete_webspaces(session: Session, webspaces: Sequence[Webspace], on_disk: Leftovers) -> None:
    """Delete webspaces (mailboxes and databases cascade), stop their tasks, drop their FTP settings,
    and once committed move their backups and content out of their names' way (`Leftovers`)."""
    if not webspaces:
        return
    ids = [webspace.id for webspace in webspaces]
    _release(session, "webspace", ids)
    session.execute(delete(Webspace).where(Webspace.id.in_(ids)))
    moves = [_retired(on_disk.dumps, Owner(TargetKind.WEBSPACE, w.id, w.name)) for w in webspaces]
    content = [(path, w) for w in webspaces for path in on_disk.content.of(w.name)]
    if on_disk.remove_content:
        _remove_after_commit(session, [path for path, _ in content])
    else:
        moves += [(path, path.parent / ".deleted" / f"{w.name}.{w.id}") for path, w in content]
    _move_after_commit(session, moves)


def delete_account(session: Session, user: User, on_disk: Leftovers) -> None:
    """Delete a reseller or customer with everything below it (spec §5.0), as `delete_webspaces` does."""
    accounts = accounts_below(session, user)
    delete_webspaces(
        session, [webspace for account in accounts for webspace in webspaces_of(session, account.id)], on_disk
    )
    for role in (Role.RESELLER, Role.CUSTOMER):
        _release(session, role.value, [account.id for account in accounts if account.kind == role.value])
    session.execute(delete(User).where(User.id.in_([account.id for account in accounts])))
    owners = [Owner(TargetKind(account.kind), account.id, account.login) for account in accounts]
    _move_after_commit(session, [_retired(on_disk.dumps, owner) for owner in owners])


def _release(session: Session, kind: str, ids: list[int]) -> None:
    """What a deleted target leaves behind outside foreign keys: its tasks stop, its FTP settings go.

    Both refer to their target by (kind, id) — `kind` is a task target kind — so no cascade reaches them.
    """
    if ids:
        stop_tasks_of(session, kind, ids)
        session.execute(delete(RemoteStorage).where(RemoteStorage.owner_kind == kind, RemoteStorage.owner_id.in_(ids)))


def _retired(dumps_root: Path, owner: Owner) -> tuple[Path, Path]:
    return owner_dir(dumps_root, owner), retired_dir(dumps_root, owner)


def _move_after_commit(session: Session, moves: list[tuple[Path, Path]]) -> None:
    """Once the deletion is committed, move each folder that exists to its place aside."""

    def move(_session: Session) -> None:
        for folder, aside in moves:
            try:
                if os.path.lexists(folder):  # a root that is a symlink moves as the link
                    aside.parent.mkdir(parents=True, exist_ok=True)
                    folder.rename(aside)
            except OSError as exc:
                log.warning("could not move %s, left by a deleted account, to %s: %s", folder, aside, exc)

    event.listen(session, "after_commit", move, once=True)


def _remove_after_commit(session: Session, paths: list[Path]) -> None:
    def remove(_session: Session) -> None:
        for path in paths:
            _remove_tree(path)

    event.listen(session, "after_commit", remove, once=True)


def _remove_tree(path: Path) -> None:
    try:
        if path.is_symlink():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)
