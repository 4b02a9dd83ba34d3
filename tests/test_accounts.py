"""The accounts layer on both databases: users, ownership, visibility, lockout, secret keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostbackup.accounts.auth import LockoutPolicy, authenticate_key, authenticate_password
from hostbackup.accounts.keys import create_key
from hostbackup.accounts.users import Caller, Role, create_user, ensure_admin, find_user, visible_users
from hostbackup.accounts.vault import Vault
from hostbackup.accounts.webspaces import create_mailbox, create_webspace, find_webspace, visible_webspaces
from hostbackup.db.engine import Database
from hostbackup.errors import AuthFailed, InvalidValue, KeyInvalid, LoginLocked, NotFound, UserExists

ADMIN = Caller(1, Role.ADMIN, "admin")


def seed(db: Database, root: Path) -> dict[str, int]:
    with db.session() as session:
        ensure_admin(session, "admin-pass")
        rita = create_user(session, role=Role.RESELLER, login="rita", password="secret-1", owner_id=1)
        jdoe = create_user(session, role=Role.CUSTOMER, login="jdoe", password="secret-2", owner_id=1)
        bob = create_user(session, role=Role.CUSTOMER, login="bob", password="secret-3", owner_id=rita.id)
        example = create_webspace(session, root / "vhosts", name="Example.COM", owner=jdoe)
        bobsite = create_webspace(session, root / "vhosts", name="bob.test", owner=bob)
        create_mailbox(session, root / "mail", example, name="Info")
        return {"rita": rita.id, "jdoe": jdoe.id, "bob": bob.id, "example": example.id, "bobsite": bobsite.id}


def test_ids_ascend_from_two_and_content_dirs_exist(database: Database, tmp_path: Path) -> None:
    ids = seed(database, tmp_path)
    assert ids["rita"] == 2 and ids["jdoe"] == 3
    assert (tmp_path / "vhosts" / "example.com" / "httpdocs").is_dir()
    assert all((tmp_path / "mail" / "example.com" / "info" / sub).is_dir() for sub in ("cur", "new", "tmp"))


def test_duplicate_and_invalid_logins(database: Database, tmp_path: Path) -> None:
    seed(database, tmp_path)
    with pytest.raises(UserExists), database.session() as session:
        create_user(session, role=Role.CUSTOMER, login="jdoe", password="whatever", owner_id=1)
    with pytest.raises(InvalidValue), database.session() as session:
        create_user(session, role=Role.CUSTOMER, login="../evil", password="whatever", owner_id=1)


def test_visibility_follows_ownership(database: Database, tmp_path: Path) -> None:
    ids = seed(database, tmp_path)
    rita = Caller(ids["rita"], Role.RESELLER, "rita")
    jdoe = Caller(ids["jdoe"], Role.CUSTOMER, "jdoe")
    with database.session() as session:
        assert [u.login for u in visible_users(session, ADMIN, Role.CUSTOMER)] == ["jdoe", "bob"]
        assert [u.login for u in visible_users(session, rita, Role.CUSTOMER)] == ["bob"]
        assert [w.name for w in visible_webspaces(session, rita)] == ["bob.test"]
        assert [w.name for w in visible_webspaces(session, jdoe)] == ["example.com"]
        assert find_user(session, rita, Role.CUSTOMER, login="bob").id == ids["bob"]
        with pytest.raises(NotFound, match="Customer does not exist"):
            find_user(session, rita, Role.CUSTOMER, login="jdoe")
        with pytest.raises(NotFound, match="Webspace does not exist"):
            find_webspace(session, jdoe, name="bob.test")
        with pytest.raises(NotFound):
            find_user(session, jdoe, Role.CUSTOMER, id=ids["bob"])


def test_lockout_after_repeated_failures(database: Database, tmp_path: Path) -> None:
    seed(database, tmp_path)
    policy = LockoutPolicy(failures=3, window_seconds=600, lock_seconds=900)
    assert authenticate_password(database, "jdoe", "secret-2", policy).login == "jdoe"
    for _ in range(3):
        with pytest.raises(AuthFailed):
            authenticate_password(database, "jdoe", "wrong-pass", policy)
    with pytest.raises(LoginLocked):
        authenticate_password(database, "jdoe", "secret-2", policy)
    assert authenticate_password(database, "bob", "secret-3", policy).login == "bob"  # others unaffected


def test_secret_key_bound_to_ip(database: Database, tmp_path: Path) -> None:
    ids = seed(database, tmp_path)
    vault = Vault(tmp_path / "secret.key")
    with database.session() as session:
        user = find_user(session, ADMIN, Role.CUSTOMER, id=ids["jdoe"])
        key = create_key(session, vault, user, ["192.0.2.7"], "billing")
    assert authenticate_key(database, key.upper(), "192.0.2.7").login == "jdoe"
    with pytest.raises(KeyInvalid):
        authenticate_key(database, key, "192.0.2.8")
    with pytest.raises(KeyInvalid):
        authenticate_key(database, "0f3c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "192.0.2.7")
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
