"""The database schema: accounts, secret keys, tasks and server-wide settings.

Backups themselves are not rows: storage is the source of truth for what exists (a backup is
listed when its metadata file is there), so the database can never disagree with the disk.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Ids are SQL BIGINTs: the database driver cannot even bind a larger number.
MAX_ROW_ID = 2**63 - 1


def stored_id(number: int) -> int:
    """`number` as an id to look up: 0, which no row has, for one beyond any row's (it named nothing,
    so it answers 1013 where it is looked up)."""
    return number if number <= MAX_ROW_ID else 0


class Base(DeclarativeBase):
    pass


class User(Base):
    """Administrator, reseller or customer: one id space, as in Plesk (admin is id 1)."""

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    login: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[int] = mapped_column(Integer, default=0)
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    created: Mapped[dt.date] = mapped_column(Date)
    pname: Mapped[str] = mapped_column(String(255), default="")
    cname: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str] = mapped_column(String(255), default="")
    fax: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    address: Mapped[str] = mapped_column(String(255), default="")
    city: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(255), default="")
    pcode: Mapped[str] = mapped_column(String(255), default="")
    country: Mapped[str] = mapped_column(String(255), default="")
    locale: Mapped[str] = mapped_column(String(32), default="en-US")
    external_id: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    permissions: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)


class Webspace(Base):
    """A subscription: a domain with web content under `<vhosts root>/<name>/` and mail."""

    __tablename__ = "webspaces"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    htype: Mapped[str] = mapped_column(String(16), default="vrt_hst")
    ip_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[int] = mapped_column(Integer, default=0)
    guid: Mapped[str] = mapped_column(String(36), unique=True)
    created: Mapped[dt.date] = mapped_column(Date)
    ftp_login: Mapped[str | None] = mapped_column(String(64), unique=True)
    ftp_password_hash: Mapped[str] = mapped_column(String(255), default="")
    external_id: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    admin_description: Mapped[str] = mapped_column(Text, default="")
    reseller_description: Mapped[str] = mapped_column(Text, default="")


class Mailbox(Base):
    """A mail name of a webspace; its Maildir lives under `<mail root>/<webspace>/<name>/`."""

    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("webspace_id", "name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webspace_id: Mapped[int] = mapped_column(ForeignKey("webspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    mailbox_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    quota: Mapped[int | None] = mapped_column(BigInteger)
    forwarding_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    forwarding_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")


class SecretKey(Base):
    """An API key. Looked up by its SHA-256; the key itself is kept encrypted (get_info returns it)."""

    __tablename__ = "secret_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    key_encrypted: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ip_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")


class LoginFailure(Base):
    """Failed logins, kept for the lockout window (spec §2.5, code 1012)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(255), index=True)
    at: Mapped[float] = mapped_column(Float)


class Task(Base):
    """A backup (or restore) task; the rows in state `queued` are the queue."""

    __tablename__ = "tasks"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="backup")
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int | None] = mapped_column(Integer)
    target_name: Mapped[str] = mapped_column(String(255), default="")
    requested_by: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    protocol: Mapped[str] = mapped_column(String(8), default="local")
    prefix: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str] = mapped_column(String(255), default="")
    lease_until: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_estimated: Mapped[int] = mapped_column(BigInteger, default=0)
    current_item: Mapped[str] = mapped_column(String(255), default="")
    filename: Mapped[str] = mapped_column(String(255), default="")
    summary: Mapped[str] = mapped_column(Text, default="")  # what a finished task did, in one line
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")


class Setting(Base):
    """Server-wide settings (get/set-server-wide-settings), persisted as text."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class DbServer(Base):
    """A PostgreSQL or MySQL/MariaDB server whose databases are backed up (spec §5.5)."""

    __tablename__ = "db_servers"
    __table_args__ = (UniqueConstraint("host", "port", "type"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    admin_login: Mapped[str] = mapped_column(String(255))
    admin_password_encrypted: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    is_local: Mapped[bool] = mapped_column(Boolean, default=False)


class HostedDatabase(Base):
    """A database of a webspace, registered for backup (spec §5.6)."""

    __tablename__ = "databases"
    __table_args__ = (UniqueConstraint("db_server_id", "name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    webspace_id: Mapped[int] = mapped_column(ForeignKey("webspaces.id", ondelete="CASCADE"))
    db_server_id: Mapped[int] = mapped_column(ForeignKey("db_servers.id", ondelete="CASCADE"))


class RemoteStorage(Base):
    """FTP/FTPS settings of one owner (spec §4.3); the password is kept encrypted."""

    __tablename__ = "remote_storage"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int] = mapped_column(Integer, default=0)  # 0 for the server
    protocol: Mapped[str] = mapped_column(String(8), default="ftp")
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    directory: Mapped[str | None] = mapped_column(String(1024))
    login: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    passive_mode: Mapped[bool | None] = mapped_column(Boolean)
    use_ftps: Mapped[bool | None] = mapped_column(Boolean)
