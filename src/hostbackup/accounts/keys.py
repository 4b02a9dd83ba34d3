"""Secret keys (the `KEY` header): UUID v4 strings bound to a user and to client IP addresses.

A key is found by its SHA-256, so lookups need no decryption; the key itself is kept encrypted
because `secret_key/get_info` must return it (spec §5.8).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.vault import Vault
from hostbackup.db.tables import SecretKey, User
from hostbackup.errors import InvalidValue


def key_digest(key: str) -> str:
    return hashlib.sha256(key.strip().lower().encode()).hexdigest()


def parse_ip_list(text: str) -> list[str]:
    """`192.0.2.1, 2001:db8::1` → normalised addresses; anything else → 1019."""
    addresses = []
    for part in text.split(","):
        try:
            addresses.append(str(ipaddress.ip_address(part.strip())))
        except ValueError:
            raise InvalidValue("ip_address", text) from None
    return addresses


def create_key(session: Session, vault: Vault, user: User, ip_addresses: list[str], description: str) -> str:
    key = str(uuid.uuid4())
    session.add(
        SecretKey(
            key_sha256=key_digest(key),
            key_encrypted=vault.encrypt(key),
            user_id=user.id,
            ip_addresses=ip_addresses,
            description=description,
        )
    )
    session.flush()
    return key


def find_key(session: Session, key: str) -> SecretKey | None:
    return session.scalar(select(SecretKey).where(SecretKey.key_sha256 == key_digest(key)))


def ip_allowed(record: SecretKey, client_ip: str) -> bool:
    try:
        client = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(ipaddress.ip_address(allowed) == client for allowed in record.ip_addresses)


def all_keys(session: Session) -> list[SecretKey]:
    return list(session.scalars(select(SecretKey).order_by(SecretKey.id)))


def key_text(vault: Vault, record: SecretKey) -> str:
    """The key itself, for `secret_key/get_info` and `delete` answers."""
    return vault.decrypt(record.key_encrypted)


def delete_key(session: Session, record: SecretKey) -> None:
    session.delete(record)
    session.flush()
