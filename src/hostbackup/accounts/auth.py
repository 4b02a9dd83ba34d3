"""Authentication of a request: login and password, or a secret key (spec §2.5).

Repeated failures lock a login for a while, even against the right password, so that a
billing system's leaked login cannot be brute-forced through the API.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hostbackup.accounts.keys import find_key, ip_allowed
from hostbackup.accounts.passwords import password_tag, verify_password
from hostbackup.accounts.users import Caller
from hostbackup.db.engine import Database
from hostbackup.db.tables import LoginFailure, User
from hostbackup.errors import AccountDisabled, ApiError, AuthFailed, KeyInvalid, LoginLocked


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5
    window_seconds: int = 600
    lock_seconds: int = 900


def _is_locked(session: Session, login: str, policy: LockoutPolicy, now: float) -> bool:
    since = now - max(policy.window_seconds, policy.lock_seconds)
    stamps = list(
        session.scalars(
            select(LoginFailure.at)
            .where(LoginFailure.login == login, LoginFailure.at >= since)
            .order_by(LoginFailure.at)
        )
    )
    # locked when `failures` failures fall within one window and the last is recent enough
    for index in range(len(stamps) - policy.failures + 1):
        window = stamps[index : index + policy.failures]
        if window[-1] - window[0] <= policy.window_seconds and now - window[-1] < policy.lock_seconds:
            return True
    return False


def _record_failure(session: Session, login: str, policy: LockoutPolicy, now: float) -> None:
    session.add(LoginFailure(login=login, at=now))
    horizon = now - policy.window_seconds - policy.lock_seconds
    session.execute(delete(LoginFailure).where(LoginFailure.at < horizon))


class RecentLogins:
    """Logins that succeeded within the last `ttl` seconds, keyed by login and a keyed password hash.

    A billing system polling get-tasks-info sends the same credentials many times a second; this
    spares it two queries per request. Only successes are kept, and a failed attempt on a login
    forgets its entries, so every guess reaches the database and the lockout applies at once; a
    password change or a disabled account takes effect within `ttl`.
    """

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, bytes], tuple[Caller, float]] = {}
        self._lock = threading.Lock()

    def get(self, login: str, password: str, now: float) -> Caller | None:
        with self._lock:
            entry = self._entries.get((login, password_tag(password)))
        return entry[0] if entry is not None and entry[1] > now else None

    def put(self, login: str, password: str, caller: Caller, now: float) -> None:
        with self._lock:
            if len(self._entries) > 10_000:  # bounded: drop expired entries
                self._entries = {key: value for key, value in self._entries.items() if value[1] > now}
            self._entries[(login, password_tag(password))] = (caller, now + self.ttl)

    def forget(self, login: str) -> None:
        with self._lock:
            self._entries = {key: value for key, value in self._entries.items() if key[0] != login}


recent_logins = RecentLogins()


def authenticate_password(db: Database, login: str, password: str, policy: LockoutPolicy) -> Caller:
    """The caller for a login and password; a failure is recorded (committed) before it is raised."""
    now = time.time()
    if (cached := recent_logins.get(login, password, now)) is not None:
        return cached
    try:
        caller = _check_password(db, login, password, policy, now)
    except ApiError:
        recent_logins.forget(login)
        raise
    recent_logins.put(login, password, caller, now)
    return caller


def _check_password(db: Database, login: str, password: str, policy: LockoutPolicy, now: float) -> Caller:
    with db.session() as session:
        if _is_locked(session, login, policy, now):
            raise LoginLocked("Login is locked.")
        user = session.scalar(select(User).where(User.login == login))
        if user is not None and verify_password(user.password_hash, password, cache_as=login):
            if user.status != 0:
                raise AccountDisabled("Account is disabled.")
            return Caller.of(user)
        _record_failure(session, login, policy, now)
    raise AuthFailed("Authentication failed - wrong login or password.")


def authenticate_key(db: Database, key: str, client_ip: str) -> Caller:
    with db.session() as session:
        record = find_key(session, key)
        user = session.get(User, record.user_id) if record and ip_allowed(record, client_ip) else None
        if user is None:
            raise KeyInvalid("Secret key validation failed.")
        if user.status != 0:
            raise AccountDisabled("Account is disabled.")
        return Caller.of(user)
