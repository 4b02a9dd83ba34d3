"""Re-creating accounts from a backup's configuration dump, when they are missing.

Only what is missing is created, with the same logins, names, password hashes (never clear
passwords) and settings; what exists is left alone. A webspace that exists but now belongs to
another account is never touched: restoring into it would hand one customer's content to another.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.users import ADMIN_ID, Role, create_user
from hostbackup.accounts.webspaces import create_mailbox, create_webspace
from hostbackup.db.tables import Mailbox, User, Webspace

_USER_FIELDS = ("pname", "cname", "phone", "fax", "email", "address", "city", "state", "pcode", "country",
                "locale", "external_id", "description")  # fmt: skip


class ForeignWebspace(Exception):
    """A webspace of the backup exists under another owner."""


@dataclass
class Recreated:
    users: list[str] = field(default_factory=list)
    webspaces: list[str] = field(default_factory=list)
    mailboxes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        groups = (("accounts", self.users), ("webspaces", self.webspaces), ("mailboxes", self.mailboxes))
        parts = [f"{label}: {', '.join(names)}" for label, names in groups if names]
        return "re-created " + "; ".join(parts) if parts else ""


def _user(session: Session, element: etree._Element, owner_id: int, done: Recreated) -> User:
    login = element.get("login", "")
    existing = session.scalar(select(User).where(User.login == login))
    if existing is not None:
        return existing
    fields = {name: element.findtext(name.replace("_", "-")) or "" for name in _USER_FIELDS}
    user = create_user(session, role=Role(element.tag), login=login, password=secrets.token_urlsafe(16),
                       owner_id=owner_id, **fields)  # fmt: skip
    user.password_hash = element.findtext("password-hash") or user.password_hash
    for permission in element.iterfind("permissions/permission"):
        user.permissions = {
            **user.permissions,
            permission.findtext("name") or "": permission.findtext("value") == "true",
        }
    done.users.append(login)
    return user


def _webspace(
    session: Session, vhosts: Path, mail: Path, element: etree._Element, owner: User, done: Recreated
) -> None:
    name = element.get("name", "")
    webspace = session.scalar(select(Webspace).where(Webspace.name == name))
    if webspace is not None and webspace.owner_id != owner.id:
        raise ForeignWebspace(f"webspace {name} now belongs to another account; it was not restored")
    if webspace is None:
        addresses = [address.text or "" for address in element.iterfind("ip-address")]
        webspace = create_webspace(session, vhosts, name=name, owner=owner, ip_addresses=addresses,
                                   htype=element.get("htype", "vrt_hst"))  # fmt: skip
        done.webspaces.append(name)
    for mailname in element.iterfind("mailname"):
        box = mailname.get("name", "")
        exists = select(Mailbox.id).where(Mailbox.webspace_id == webspace.id, Mailbox.name == box)
        if session.scalar(exists) is None:
            create_mailbox(session, mail, webspace, name=box, password_hash=mailname.findtext("password-hash") or "",
                           mailbox_enabled=mailname.findtext("mailbox/enabled") != "false")  # fmt: skip
            done.mailboxes.append(f"{box}@{name}")


def recreate(
    session: Session, vhosts: Path, mail: Path, info: etree._Element, webspaces: set[str], owner_id: int | None
) -> Recreated:
    """Create the missing accounts, webspaces (those in `webspaces`) and their mailboxes, from the parsed
    configuration dump (`config_dump.parse`)."""
    done = Recreated()
    accounts = info.find("accounts")
    if accounts is None:
        return done

    def walk(element: etree._Element, owner: User) -> None:
        for child in element:
            if child.tag in ("reseller", "customer"):
                walk(child, _user(session, child, owner.id, done))
            elif child.tag == "webspace" and child.get("name") in webspaces:
                _webspace(session, vhosts, mail, child, owner, done)

    root_owner = session.get(User, owner_id or ADMIN_ID) or session.get(User, ADMIN_ID)
    assert root_owner is not None
    for top in accounts:
        if top.tag == "webspace":  # a webspace-level backup: the webspace hangs off the owner
            if top.get("name") in webspaces:
                _webspace(session, vhosts, mail, top, root_owner, done)
        elif top.tag == "admin":
            walk(top, root_owner)
        else:
            walk(top, _user(session, top, root_owner.id if top.tag == "customer" else ADMIN_ID, done))
    return done
