"""Re-creating accounts from a backup's configuration dump, when they are missing.

Only what is missing is created, with the same logins, names, password hashes (never clear
passwords) and settings; what exists is left alone. A webspace that exists but now belongs to
another account is never touched: restoring into it would hand one customer's content to another.

A restore acts as the owner of the storage its backup came from (`acting_user`), with that
owner's rights and no more: the configuration dump is data a customer can forge (download a
backup, edit it, upload it again), so it never decides who may create what. A customer's restore
creates no account at all, a reseller's only customers of its own, and an account that exists
is only walked into when the acting owner may see it; anything else is refused with a note.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.users import ADMIN_ID, Caller, Role, can_see_user, create_user
from hostbackup.accounts.webspaces import create_mailbox, create_webspace
from hostbackup.db.tables import Mailbox, Task, User, Webspace

_USER_FIELDS = ("pname", "cname", "phone", "fax", "email", "address", "city", "state", "pcode", "country",
                "locale", "external_id", "description")  # fmt: skip


class ForeignWebspace(Exception):
    """A webspace of the backup exists under another owner."""


@dataclass
class Recreated:
    users: list[str] = field(default_factory=list)
    webspaces: list[str] = field(default_factory=list)
    mailboxes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # accounts the acting owner may not create or enter

    def summary(self) -> str:
        groups = (("accounts", self.users), ("webspaces", self.webspaces), ("mailboxes", self.mailboxes))
        parts = [f"{label}: {', '.join(names)}" for label, names in groups if names]
        return "re-created " + "; ".join(parts) if parts else ""


def acting_user(session: Session, task: Task) -> User:
    """The account a restore acts as: the owner of the storage its backup came from (for a webspace's
    storage, the webspace's owner); the requester when that owner is gone."""
    user: User | None = None
    if task.target_kind in (Role.RESELLER.value, Role.CUSTOMER.value):
        user = session.get(User, task.target_id)
    elif task.target_kind == "webspace":
        webspace = session.get(Webspace, task.target_id)
        user = session.get(User, webspace.owner_id) if webspace is not None else None
    elif task.target_kind == "server":
        user = session.get(User, ADMIN_ID)
    user = user or session.get(User, task.requested_by)
    assert user is not None
    return user


def _may_create(actor: Caller, role: Role, parent: User) -> bool:
    """The administrator creates resellers and customers; a reseller, customers of its own."""
    if actor.is_admin:
        return role is Role.CUSTOMER or (role is Role.RESELLER and parent.kind == Role.ADMIN.value)
    return actor.role is Role.RESELLER and role is Role.CUSTOMER and parent.id == actor.id


def _user(session: Session, element: etree._Element, parent: User, actor: Caller, done: Recreated) -> User | None:
    """The account `element` describes: the existing one, or one created under `parent`; None when
    the acting owner may neither see it nor create it (its part of the backup is then skipped)."""
    login = element.get("login", "")
    existing = session.scalar(select(User).where(User.login == login))
    if existing is not None:
        if existing.kind == element.tag and can_see_user(actor, existing):
            return existing
        done.refused.append(f"account {login} belongs to someone else: it and its webspaces were not restored")
        return None
    role = Role(element.tag) if element.tag in (Role.RESELLER.value, Role.CUSTOMER.value) else None
    if role is None or not _may_create(actor, role, parent):
        done.refused.append(f"account {login} does not exist, and this restore may not create it (it acts as "
                            f"{actor.role.value} {actor.login}): it and its webspaces were not restored")  # fmt: skip
        return None
    fields = {name: element.findtext(name.replace("_", "-")) or "" for name in _USER_FIELDS}
    user = create_user(session, role=role, login=login, password=secrets.token_urlsafe(16),
                       owner_id=parent.id, **fields)  # fmt: skip
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
    session: Session, vhosts: Path, mail: Path, info: etree._Element, webspaces: set[str], acting: User
) -> Recreated:
    """Create the missing accounts, webspaces (those in `webspaces`) and their mailboxes, from the parsed
    configuration dump (`config_dump.parse`), as far as the `acting` owner may."""
    done = Recreated()
    accounts = info.find("accounts")
    if accounts is None:
        return done
    actor = Caller.of(acting)
    admin = session.get(User, ADMIN_ID)
    assert admin is not None

    def walk(element: etree._Element, owner: User) -> None:
        for child in element:
            if child.tag in ("reseller", "customer"):
                user = _user(session, child, owner, actor, done)
                if user is not None:
                    walk(child, user)
            elif child.tag == "webspace" and child.get("name") in webspaces:
                _webspace(session, vhosts, mail, child, owner, done)

    for top in accounts:
        if top.tag == "webspace":  # a webspace-level backup: the webspace hangs off the acting owner
            if top.get("name") in webspaces:
                _webspace(session, vhosts, mail, top, acting, done)
        elif top.tag == "admin":
            if actor.is_admin:
                walk(top, admin)
            else:
                done.refused.append("the backup holds the whole server: only the administrator restores its accounts")
        else:
            parent = acting if actor.role is Role.RESELLER and top.tag == Role.CUSTOMER.value else admin
            user = _user(session, top, parent, actor, done)
            if user is not None:
                walk(top, user)
    return done
