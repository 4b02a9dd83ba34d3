"""Users: the administrator, resellers and customers, and who may see whom (spec §3).

Resellers belong to the administrator; customers to the administrator or a reseller. The
visibility rules live here, once, and every operator asks them instead of filtering by hand.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from hostbackup.accounts.passwords import hash_password
from hostbackup.db.tables import User, Webspace, stored_id
from hostbackup.errors import InvalidValue, NotFound, OwnerNotFound, PermissionDenied, UserExists

ADMIN_ID = 1
ADMIN_LOGIN = "admin"
ADMIN_GUID = "00000000-0000-4000-8000-000000000001"
OBJECT_STATUSES = (0, 16, 64)
INT_RE = re.compile(r"[+-]?[0-9]+")
LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,59}")
BACKUP_PERMISSIONS = ("allow_local_backups", "allow_ftp_backups")


class Role(StrEnum):
    ADMIN = "admin"
    RESELLER = "reseller"
    CUSTOMER = "customer"


@dataclass(frozen=True)
class Caller:
    """Who is asking: every request runs as one user."""

    id: int
    role: Role
    login: str

    @classmethod
    def of(cls, user: User) -> Caller:
        return cls(user.id, Role(user.kind), user.login)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ADMIN = Caller(ADMIN_ID, Role.ADMIN, ADMIN_LOGIN)  # the CLI acts as the administrator


def check_password_value(password: str, field: str = "passwd") -> None:
    if not 5 <= len(password) <= 255:
        raise InvalidValue(field, "*****", f"Invalid value of {field}: the password must be 5-255 characters.")


def check_login_value(login: str) -> None:
    if not LOGIN_RE.fullmatch(login):
        raise InvalidValue("login", login)


def check_status_value(status: int | str) -> int:
    """An object status (spec §0): 0 active, 16 / 64 disabled; anything else → 1019."""
    text = str(status).strip()
    number = as_int(text)
    if number is None or number not in OBJECT_STATUSES:
        raise InvalidValue("status", text)
    return number


def check_text_lengths(table: type[User] | type[Webspace], fields: dict[str, object]) -> None:
    """Text longer than its column allows → 1019 (PostgreSQL would refuse the row otherwise)."""
    columns = table.__table__.columns
    for name, value in fields.items():
        column = columns.get(name)
        limit = getattr(column.type, "length", None) if column is not None else None
        if isinstance(value, str) and limit is not None and len(value) > limit:
            field = name.replace("_", "-")
            raise InvalidValue(field, value, f"Invalid value of {field}: longer than {limit} characters.")


def as_int(text: str) -> int | None:
    """A decimal integer (`int` of spec §0), or None."""
    return int(text) if INT_RE.fullmatch(text) else None


def create_user(
    session: Session, *, role: Role, login: str, password: str, owner_id: int | None, **fields: object
) -> User:
    """Create a reseller or customer (the administrator is made by `ensure_admin`)."""
    check_login_value(login)
    check_password_value(password)
    check_text_lengths(User, fields)
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise UserExists()
    user = User(
        kind=role.value,
        login=login,
        password_hash=hash_password(password),
        owner_id=owner_id,
        guid=str(uuid.uuid4()),
        created=dt.date.today(),
        permissions={name: True for name in BACKUP_PERMISSIONS},
        **fields,
    )
    session.add(user)
    session.flush()
    return user


def ensure_admin(session: Session, password: str) -> bool:
    """Create the administrator (id 1) unless it exists; True when it was created."""
    if session.get(User, ADMIN_ID) is not None:
        return False
    check_password_value(password)
    admin = User(
        kind=Role.ADMIN.value,
        login=ADMIN_LOGIN,
        password_hash=hash_password(password),
        owner_id=None,
        guid=ADMIN_GUID,
        created=dt.date.today(),
        permissions={name: True for name in BACKUP_PERMISSIONS},
    )
    session.add(admin)  # the first user of an empty table: id 1 from the sequence itself
    session.flush()
    if admin.id != ADMIN_ID:
        raise RuntimeError("the administrator must be the first user (id 1); the users table is not empty")
    return True


def set_password(session: Session, login: str, password: str) -> None:
    check_password_value(password)
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFound("User")
    user.password_hash = hash_password(password)


def can_see_user(caller: Caller, user: User) -> bool:
    if caller.is_admin or user.id == caller.id:
        return True
    return caller.role is Role.RESELLER and user.owner_id == caller.id


def can_see_webspace(session: Session, caller: Caller, webspace: Webspace) -> bool:
    if caller.is_admin or webspace.owner_id == caller.id:
        return True
    if caller.role is not Role.RESELLER:
        return False
    owner = session.get(User, webspace.owner_id)
    return owner is not None and owner.owner_id == caller.id


def find_user(session: Session, caller: Caller, role: Role, *, id: int | None = None, login: str | None = None) -> User:
    """The user of `role` named by id or login, if the caller may see it; else `NotFound`."""
    query = select(User).where(User.kind == role.value)
    query = query.where(User.id == id) if id is not None else query.where(User.login == login)
    user = session.scalar(query)
    if user is None or not can_see_user(caller, user):
        raise NotFound(role.value.capitalize())
    return user


USER_KEYS = {"id": User.id, "login": User.login, "guid": User.guid, "external-id": User.external_id}


def user_condition(key: str, value: str) -> ColumnElement[bool]:
    """`<key>value</key>` of a filter or owner selector as a condition (`id` must be numeric)."""
    if key == "id":
        return User.id == stored_id(as_int(value) or 0)
    if key == "guid":
        value = value.lower()
    return USER_KEYS[key] == value


def find_users(session: Session, caller: Caller, role: Role | None, key: str, value: str) -> list[User]:
    """Users (of `role`, or of any role) the caller may see whose `key` equals `value`, in id order."""
    query = select(User).where(user_condition(key, value)).order_by(User.id)
    if role is not None:
        query = query.where(User.kind == role.value)
    return [user for user in session.scalars(query) if can_see_user(caller, user)]


def users_owned_by(session: Session, owner_id: int, role: Role) -> list[User]:
    query = select(User).where(User.owner_id == owner_id, User.kind == role.value).order_by(User.id)
    return list(session.scalars(query))


def resolve_owner(session: Session, caller: Caller, key: str | None, value: str, *, roles: tuple[Role, ...]) -> User:
    """The owner a new object names (`key` None: the caller itself, spec §3.4).

    The administrator may name any user of `roles` (else 1015). Other callers may name only
    themselves or, for a reseller, its own customers when `roles` allows customers; anything
    else is 1006 whether or not it exists, so that the answer reveals nothing.
    """
    if key is None:
        sender = user_by_id(session, caller.id)
        if Role(sender.kind) not in roles:
            raise PermissionDenied()
        return sender
    named = session.scalar(select(User).where(user_condition(key, value)))
    if caller.is_admin:
        if named is None or Role(named.kind) not in roles:
            raise OwnerNotFound()
        return named
    if named is None or not _may_own_for(caller, named, roles):
        raise PermissionDenied()
    return named


def _may_own_for(caller: Caller, user: User, roles: tuple[Role, ...]) -> bool:
    if user.id == caller.id:
        return Role(user.kind) in roles
    own_customer = caller.role is Role.RESELLER and user.owner_id == caller.id
    return own_customer and Role.CUSTOMER in roles


def user_by_id(session: Session, user_id: int | None) -> User:
    """A user known to exist (an owner, a key's user); a dangling reference is `NotFound`."""
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        raise NotFound("User")
    return user


def provider_guid(session: Session, owner: User) -> str:
    """GUID of the administrator or reseller that provides an object owned by `owner`."""
    if owner.kind != Role.CUSTOMER.value:
        return owner.guid
    return user_by_id(session, owner.owner_id).guid


def accounts_below(session: Session, user: User) -> list[User]:
    """The user and, for a reseller, its customers: what deleting `user` deletes."""
    below = users_owned_by(session, user.id, Role.CUSTOMER) if user.kind == Role.RESELLER.value else []
    return [user, *below]


def visible_users(session: Session, caller: Caller, role: Role) -> list[User]:
    query = select(User).where(User.kind == role.value).order_by(User.id)
    if caller.role is Role.RESELLER:
        query = query.where((User.owner_id == caller.id) | (User.id == caller.id))
    elif caller.role is Role.CUSTOMER:
        query = query.where(User.id == caller.id)
    return list(session.scalars(query))


def has_backup_right(session: Session, user: User, permission: str) -> bool:
    """A reseller's customer needs the right on itself and on its reseller (spec §3.2)."""
    while user.kind != Role.ADMIN.value:
        if not user.permissions.get(permission, True):
            return False
        if user.owner_id is None:
            break
        owner = session.get(User, user.owner_id)
        if owner is None:
            break
        user = owner
    return True
