"""Database servers and the databases of webspaces (spec §5.5, §5.6), and how to reach them.

A database server is an existing PostgreSQL or MySQL/MariaDB server; its administrator login is
what the backup runs the dump tools as, so the password is stored encrypted with the `Vault`
(the database and backup metadata never hold it in clear). The password reaches the tools only
through their environment (`PGPASSWORD`, `MYSQL_PWD`), never their argument list, which other
users of the machine can read in `/proc`.

The servers are driven with their own command-line clients (`psql`, `mariadb`) rather than
Python drivers: the backups need those tools anyway (`pg_dump`, `mariadb-dump`), so there is one
way of connecting, one set of credentials handling and no extra dependency.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hostbackup.accounts.users import Caller, can_see_webspace
from hostbackup.accounts.vault import Vault
from hostbackup.accounts.webspaces import visible_webspaces
from hostbackup.db.engine import Database
from hostbackup.db.tables import DbServer, HostedDatabase, Webspace
from hostbackup.errors import AlreadyExists, ApiError, InvalidValue, NotFound, OperationFailed

log = logging.getLogger(__name__)

MYSQL = "mysql"
POSTGRESQL = "postgresql"
DB_TYPES = (MYSQL, POSTGRESQL)
DATABASE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
HOST_RE = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,255}")
CLIENT_TIMEOUT_SECONDS = 60
MESSAGE_LIMIT = 400
SEEDED = {"host": "localhost", "port": 3306, "type": MYSQL, "admin_login": "admin"}


class WrongServerType(ApiError):
    code = 14008

    def __init__(self) -> None:
        super().__init__("Wrong database server type.")


class ServerNotConfigured(ApiError):
    code = 14009

    def __init__(self) -> None:
        super().__init__("Database server is not configured.")


# --- reaching a server ----------------------------------------------------------------------------


def first_tool(*names: str) -> str:
    """The first of `names` installed (`mariadb-dump` before its old name `mysqldump`)."""
    for name in names:
        if shutil.which(name):
            return name
    return names[0]  # running it fails with "not found", which names what to install


def trimmed(message: str) -> str:
    """A tool's stderr as one short line for an error text: the last `MESSAGE_LIMIT` characters."""
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_LIMIT else "…" + text[-MESSAGE_LIMIT:]


@dataclass(frozen=True)
class ServerAccess:
    """How to run a server's tools as its administrator; the password stays out of `repr`."""

    type: str
    host: str
    port: int
    admin: str
    password: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"{self.type} server {self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """Variables that carry the password and keep the tools from asking for one."""
        if self.type == POSTGRESQL:
            return {"PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}
        return {"MYSQL_PWD": self.password}

    def connection_args(self) -> list[str]:
        """Host, port and login as every tool of the server's kind takes them."""
        if self.type == POSTGRESQL:
            return ["--host", self.host, "--port", str(self.port), "--username", self.admin, "--no-password"]
        # TCP even for `localhost`, which the MySQL tools would otherwise take as "the default socket"
        return ["--protocol=TCP", f"--host={self.host}", f"--port={self.port}", f"--user={self.admin}"]

    def client_command(self, sql: str) -> list[str]:
        """The server's own client running one statement in its maintenance database."""
        if self.type == POSTGRESQL:
            tool = ["psql", *self.connection_args(), "--dbname", "postgres"]
            return [*tool, "--no-psqlrc", "--tuples-only", "--no-align", "-v", "ON_ERROR_STOP=1", "-c", sql]
        client = first_tool("mariadb", "mysql")
        return [client, "--no-defaults", *self.connection_args(), "--connect-timeout=10", "-N", "-B", "-e", sql]

    def run_sql(self, sql: str) -> str:
        """Output of one statement; a failure is 1023 naming the server and the client's message."""
        command = self.client_command(sql)
        try:
            done = subprocess.run(
                command, env=self.environment(), capture_output=True, text=True, timeout=CLIENT_TIMEOUT_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OperationFailed(f"{self}: {exc}") from None
        if done.returncode != 0:
            raise OperationFailed(f"{self}: {trimmed(done.stderr) or f'{command[0]} exited with {done.returncode}'}")
        return done.stdout


def create_if_missing(access: ServerAccess, name: str, *, adopt: bool = True) -> bool:
    """Make sure database `name` exists on the server; True when it had to be created. An existing
    one is taken over only with `adopt` (else 1007): it may be the server's own (`mysql`) or
    another tenant's, which whoever registers it could then back up and overwrite.

    `name` matches `DATABASE_NAME_RE`, so quoting it as an identifier is safe.
    """
    if access.type == POSTGRESQL:
        exists = access.run_sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        create = f'CREATE DATABASE "{name}"'
    else:
        exists = access.run_sql(f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'")
        create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
    if exists.strip():
        if not adopt:
            raise AlreadyExists(f"Database {name} already exists on the server: only the administrator registers it.")
        return False
    access.run_sql(create)
    return True


def server_access(server: DbServer, vault: Vault) -> ServerAccess:
    password = vault.decrypt(server.admin_password_encrypted) if server.admin_password_encrypted else ""
    return ServerAccess(server.type, server.host, server.port, server.admin_login, password)


# --- database servers ------------------------------------------------------------------------------


def ensure_default_db_server(db: Database) -> None:
    """Seed id 1 = localhost:3306, mysql, default, local (spec §5.5) into an empty table.

    Several processes open the same home at once; the one that loses the race sees the unique
    constraint fail and leaves the row the winner made.
    """
    try:
        with db.session() as session:
            if session.scalar(select(DbServer.id).limit(1)) is None:
                session.add(DbServer(**SEEDED, admin_password_encrypted="", is_default=True, is_local=True))
    except IntegrityError:
        log.debug("default database server seeded by another process")


def check_db_type(text: str) -> str:
    db_type = text.strip().lower()
    if db_type not in DB_TYPES:
        raise WrongServerType()
    return db_type


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidValue("port", text)
    return int(text)


@dataclass(frozen=True)
class NewDbServer:
    """The values of `db_server/add`, as sent."""

    host: str
    port: str
    type: str
    admin: str
    password: str | None = field(default=None, repr=False)
    default: bool = False


def add_db_server(session: Session, vault: Vault, new: NewDbServer) -> DbServer:
    """Register a server; checks in spec order: port (1019), type (14008), duplicate (1007)."""
    host = new.host.strip().lower()
    if not HOST_RE.fullmatch(host):
        raise InvalidValue("host", new.host)
    port, db_type = _port(new.port), check_db_type(new.type)
    if not new.admin:
        raise InvalidValue("admin", new.admin)
    duplicate = select(DbServer.id).where(DbServer.host == host, DbServer.port == port, DbServer.type == db_type)
    if session.scalar(duplicate) is not None:
        raise AlreadyExists()
    if new.default:
        for other in session.scalars(select(DbServer).where(DbServer.type == db_type, DbServer.is_default)):
            other.is_default = False
    server = DbServer(
        host=host,
        port=port,
        type=db_type,
        admin_login=new.admin,
        admin_password_encrypted=vault.encrypt(new.password) if new.password else "",
        is_default=new.default,
        is_local=False,
    )
    session.add(server)
    session.flush()
    return server


def find_db_server(session: Session, server_id: int) -> DbServer:
    server = session.get(DbServer, server_id)
    if server is None:
        raise NotFound("Database server")
    return server


def all_db_servers(session: Session) -> list[DbServer]:
    return list(session.scalars(select(DbServer).order_by(DbServer.id)))


def default_db_server(session: Session, db_type: str) -> DbServer:
    """The default server of a known type; none → 14009."""
    query = select(DbServer).where(DbServer.type == db_type, DbServer.is_default).order_by(DbServer.id)
    server = session.scalars(query).first()
    if server is None:
        raise ServerNotConfigured()
    return server


def database_count(session: Session, server: DbServer) -> int:
    count = session.scalar(select(func.count()).where(HostedDatabase.db_server_id == server.id))
    return int(count or 0)


# --- databases of webspaces ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDatabase:
    """The values of `database/add-db`, as sent (the webspace already resolved)."""

    name: str
    type: str
    server_id: int | None = None


def _server_for(session: Session, db_type: str, server_id: int | None) -> DbServer:
    if server_id is None:
        return default_db_server(session, db_type)
    server = find_db_server(session, server_id)
    if server.type != db_type:
        raise WrongServerType()
    return server


def add_database(
    session: Session, vault: Vault, webspace: Webspace, new: NewDatabase, *, adopt: bool
) -> HostedDatabase:
    """Register a database of `webspace`, creating it on its server when it does not exist yet; an
    existing one only with `adopt` (the administrator's right, see `create_if_missing`)."""
    if not DATABASE_NAME_RE.fullmatch(new.name):
        raise InvalidValue("name", new.name)
    server = _server_for(session, check_db_type(new.type), new.server_id)
    duplicate = select(HostedDatabase.id).where(
        HostedDatabase.db_server_id == server.id, HostedDatabase.name == new.name
    )
    if session.scalar(duplicate) is not None:
        raise AlreadyExists()
    record = HostedDatabase(name=new.name, type=server.type, webspace_id=webspace.id, db_server_id=server.id)
    session.add(record)
    session.flush()  # a concurrent duplicate fails here, before anything happens on the server
    created = create_if_missing(server_access(server, vault), new.name, adopt=adopt)
    log.info("database %s on %s:%s %s", new.name, server.host, server.port, "created" if created else "registered")
    return record


def databases_of(session: Session, webspace_id: int) -> list[HostedDatabase]:
    query = select(HostedDatabase).where(HostedDatabase.webspace_id == webspace_id).order_by(HostedDatabase.id)
    return list(session.scalars(query))


def find_database(session: Session, caller: Caller, database_id: int) -> HostedDatabase:
    """A database of a webspace the caller may see; anything else is 1013 (nothing leaks)."""
    record = session.get(HostedDatabase, database_id)
    webspace = session.get(Webspace, record.webspace_id) if record is not None else None
    if record is None or webspace is None or not can_see_webspace(session, caller, webspace):
        raise NotFound("Database")
    return record


def visible_databases(session: Session, caller: Caller) -> list[HostedDatabase]:
    return [record for webspace in visible_webspaces(session, caller) for record in databases_of(session, webspace.id)]


def delete_database(session: Session, record: HostedDatabase) -> None:
    """Unregister a database; its data on the server is left alone (spec §5.6 leaves it open)."""
    session.delete(record)
    session.flush()
