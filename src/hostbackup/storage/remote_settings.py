"""Per-owner FTP/FTPS settings (spec §4.3–§4.4): stored, updated, checked and loaded for the worker.

One row per owner in `remote_storage`; the password is kept encrypted with the data directory's
vault and is never handed back to API callers, only decrypted for the transport (`endpoint`).
Updates follow the spec's decision: present values overwrite, absent ones keep, an empty
password clears. Unset `passive-mode` means passive (what works behind NAT and firewalls).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.vault import Vault
from hostbackup.db.tables import RemoteStorage
from hostbackup.storage.ftp import FtpEndpoint
from hostbackup.storage.layout import Owner

DEFAULT_PORT = 21


@dataclass(frozen=True)
class Update:
    """Values from a set request; None = element absent (keep). `password` "" clears it."""

    host: str | None = None
    port: int | None = None
    directory: str | None = None
    login: str | None = None
    password: str | None = None
    passive_mode: bool | None = None
    use_ftps: bool | None = None


def stored(session: Session, owner: Owner) -> RemoteStorage | None:
    query = select(RemoteStorage).where(
        RemoteStorage.owner_kind == owner.kind.value, RemoteStorage.owner_id == (owner.id or 0)
    )
    return session.scalars(query).one_or_none()


def is_configured(session: Session, owner: Owner) -> bool:
    """True when the owner's FTP settings have at least `host` and `login` (spec §2.5, 1031)."""
    row = stored(session, owner)
    return row is not None and bool(row.host) and bool(row.login)


def save(session: Session, vault: Vault, owner: Owner, update: Update) -> None:
    row = stored(session, owner)
    if row is None:
        row = RemoteStorage(owner_kind=owner.kind.value, owner_id=owner.id or 0, protocol="ftp")
        session.add(row)
    for name in ("host", "port", "directory", "login", "passive_mode", "use_ftps"):
        value = getattr(update, name)
        if value is not None:
            setattr(row, name, value)
    if update.password is not None:
        row.password_encrypted = vault.encrypt(update.password) if update.password else None
    session.flush()


def endpoint(session: Session, vault: Vault, owner: Owner) -> FtpEndpoint | None:
    """The decrypted settings the transport needs, or None when the owner has none configured."""
    row = stored(session, owner)
    if row is None or not row.host or not row.login:
        return None
    return FtpEndpoint(
        host=row.host,
        port=row.port or DEFAULT_PORT,
        directory=row.directory or "",
        login=row.login,
        password=vault.decrypt(row.password_encrypted) if row.password_encrypted else "",
        passive=row.passive_mode is not False,
        tls=bool(row.use_ftps),
    )
