"""Restoring database dumps into their servers, with the servers' own clients.

The dump streams from the archive straight into `psql` / `mariadb` (no temporary file). A
database that is no longer registered is registered again on the server the configuration dump
names (same host, port and type), and created there if needed. With "keep", a database that
already holds tables is left alone; with "overwrite" it is dropped and created anew first.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from hostbackup.accounts.databases import (
    DATABASE_NAME_RE,
    POSTGRESQL,
    NewDatabase,
    ServerAccess,
    add_database,
    create_if_missing,
    first_tool,
    server_access,
    trimmed,
)
from hostbackup.accounts.vault import Vault
from hostbackup.db.tables import DbServer, HostedDatabase, Webspace


class DatabaseRestoreFailed(Exception):
    pass


@dataclass(frozen=True)
class Target:
    access: ServerAccess
    name: str


def locate(
    session: Session, vault: Vault, info: etree._Element | None, webspace_name: str, db_name: str, *, adopt: bool
) -> Target:
    """The server and database to restore `db_name` of `webspace_name` into (registering it again if needed;
    a database that exists on the server unregistered only with `adopt`, see `create_if_missing`)."""
    if not DATABASE_NAME_RE.fullmatch(db_name):
        raise DatabaseRestoreFailed(f"invalid database name {db_name!r}")
    webspace = session.scalar(select(Webspace).where(Webspace.name == webspace_name))
    if webspace is None:
        raise DatabaseRestoreFailed(f"webspace {webspace_name} does not exist")
    record = session.scalar(
        select(HostedDatabase).where(HostedDatabase.webspace_id == webspace.id, HostedDatabase.name == db_name)
    )
    if record is None:
        record = _register_again(session, vault, info, webspace, db_name, adopt)
    server = session.get(DbServer, record.db_server_id)
    assert server is not None
    return Target(server_access(server, vault), db_name)


def _register_again(
    session: Session, vault: Vault, info: etree._Element | None, webspace: Webspace, db_name: str, adopt: bool
) -> HostedDatabase:
    described = None
    if info is not None:
        for element in info.iter("database"):
            parent = element.getparent()
            if element.get("name") == db_name and parent is not None and parent.get("name") == webspace.name:
                described = element
    if described is None:
        raise DatabaseRestoreFailed(f"the backup does not describe database {db_name}")
    server = session.scalar(
        select(DbServer).where(
            DbServer.host == described.get("server-host"),
            DbServer.port == int(described.get("server-port") or 0),
            DbServer.type == described.get("server-type"),
        )
    )
    if server is None:
        where = f"{described.get('server-type')} server {described.get('server-host')}:{described.get('server-port')}"
        raise DatabaseRestoreFailed(f"database {db_name} lived on {where}, which is not registered any more")
    return add_database(session, vault, webspace, NewDatabase(db_name, server.type, server.id), adopt=adopt)


def _query(target: Target, sql: str) -> str:
    """One value from a statement run inside the target database (PostgreSQL) or on its server."""
    access = target.access
    if access.type == POSTGRESQL:
        command = ["psql", *access.connection_args(), "--dbname", target.name, "--no-psqlrc", "-tAc", sql]
    else:
        command = [first_tool("mariadb", "mysql"), "--no-defaults", *access.connection_args(), "-N", "-B", "-e", sql]
    done = subprocess.run(command, env=access.environment(), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise DatabaseRestoreFailed(f"{access}: {trimmed(done.stderr)}")
    return done.stdout.strip()


def holds_tables(target: Target) -> bool:
    if target.access.type == POSTGRESQL:
        sql = (
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    else:  # the name matches DATABASE_NAME_RE: safe to quote
        sql = f"SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target.name}'"
    return _query(target, sql) != "0"


def prepare(target: Target, *, overwrite: bool) -> bool:
    """Make the database ready to load; False when "keep" finds it already holding tables."""
    if create_if_missing(target.access, target.name):
        return True
    if not holds_tables(target):
        return True
    if not overwrite:
        return False
    recreate(target)
    return True


def recreate(target: Target) -> None:
    quoted = f'"{target.name}"' if target.access.type == POSTGRESQL else f"`{target.name}`"
    target.access.run_sql(f"DROP DATABASE IF EXISTS {quoted}")
    create_if_missing(target.access, target.name)


@functools.cache
def _sandbox(tool: str) -> list[str]:
    """`--sandbox` (no `\\!` shell command, no `source` of a local file) when the client knows it:
    MariaDB's since 10.5.25, 10.6.18 and 10.11.8; older ones, and MySQL's, refuse unknown options."""
    try:
        described = subprocess.run([tool, "--no-defaults", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--sandbox"] if "--sandbox" in described.stdout else []


def load(target: Target, dump: Iterable[memoryview]) -> None:
    """Feed the dump to the server's client; its stderr names the problem when it fails."""
    access = target.access
    if access.type == POSTGRESQL:
        command = ["psql", *access.connection_args(), "--dbname", target.name, "--no-psqlrc", "--quiet",
                   "-v", "ON_ERROR_STOP=1", "--single-transaction"]  # fmt: skip
    else:
        tool = first_tool("mariadb", "mysql")
        command = [tool, "--no-defaults", *_sandbox(tool), *access.connection_args(), target.name]
    with subprocess.Popen(
        command, env=access.environment(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as client:
        assert client.stdin is not None and client.stderr is not None
        try:
            for chunk in dump:
                client.stdin.write(chunk)
            client.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped early: its exit status and stderr say why
        errors = client.stderr.read().decode(errors="replace")
        status = client.wait()
    if status != 0:
        raise DatabaseRestoreFailed(f"loading database {target.name} into {access} failed: {trimmed(errors)}")
