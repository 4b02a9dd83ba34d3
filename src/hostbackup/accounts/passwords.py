"""Password hashing (argon2id) with a cache of recently verified credentials.

Every XML API request carries the login and password, and an argon2 check costs tens of
milliseconds by design. The cache remembers, per login, a keyed hash of the last password that
verified against the current stored hash, so repeated requests cost one HMAC. The key is random
per process and never stored; a changed stored hash invalidates the entry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_cache_key = os.urandom(32)
_verified: dict[str, tuple[str, bytes]] = {}
_lock = threading.Lock()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_tag(password: str) -> bytes:
    """A keyed hash of a password, for in-memory comparisons only (the key never leaves the process)."""
    return hmac.new(_cache_key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def verify_password(stored_hash: str, password: str, *, cache_as: str | None = None) -> bool:
    """True when `password` matches `stored_hash`; `cache_as` names the cache entry (the login)."""
    tag = password_tag(password)
    if cache_as is not None:
        with _lock:
            entry = _verified.get(cache_as)
        if entry is not None and entry[0] == stored_hash and hmac.compare_digest(entry[1], tag):
            return True
    try:
        _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if cache_as is not None:
        with _lock:
            _verified[cache_as] = (stored_hash, tag)
    return True
