"""Real database servers for the tests: MariaDB and PostgreSQL with password authentication.

Each server is private (its own data directory in a temporary folder, a free loopback port) and
requires its administrator's password over TCP, so the credentials that hostbackup stores and
hands to `pg_dump` / `mariadb-dump` are really exercised: a dump without the password fails.
When running as root the servers run as the `mysql` / `postgres` system users, as packaged.

A server that cannot start raises with its log: the tests that need it fail, never skip.
Also here: what the database tests share (registering servers over the API, extracting a
backup with stock tools). `bench/run.py` starts the benchmark's servers with `mariadb_server`
and `postgres_password_server` too.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from harness import Server, _as_postgres, _pg_binary, free_port

ADMIN_PASSWORD = "Db-Admin-Pass-1"
START_TIMEOUT = 60


@dataclass
class DbServerHandle:
    """A running database server and its administrator, driven with the server's own client."""

    type: str  # "mysql" or "postgresql", as the XML API names it
    port: int
    admin: str
    password: str = field(repr=False)
    root: Path
    shutdown: Callable[[], None] = field(repr=False)
    host: str = "127.0.0.1"
    running: bool = True

    def environment(self) -> dict[str, str]:
        key = "PGPASSWORD" if self.type == "postgresql" else "MYSQL_PWD"
        return {**os.environ, key: self.password}

    def client(self, database: str) -> list[str]:
        if self.type == "postgresql":
            return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
                    "-U", self.admin, "-d", database]  # fmt: skip
        return ["mariadb", "--no-defaults", "--protocol=TCP", "-h", self.host, "-P", str(self.port),
                "-u", self.admin, "--default-character-set=utf8mb4", database]  # fmt: skip

    def sql(self, database: str, statements: str) -> str:
        """Run SQL in `database`; returns the unaligned, header-less output (tabs between columns)."""
        quiet = ["-A", "-t", "-F", "\t"] if self.type == "postgresql" else ["-N", "-B"]
        done = subprocess.run(
            [*self.client(database), *quiet],
            input=statements.encode(),
            capture_output=True,
            env=self.environment(),
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    def maintenance_db(self) -> str:
        return "postgres" if self.type == "postgresql" else "mysql"

    def create_database(self, name: str) -> None:
        if self.type == "postgresql":
            self.sql("postgres", f'CREATE DATABASE "{name}"')
        else:
            self.sql("mysql", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop_database(self, name: str) -> None:
        quoted = f'"{name}"' if self.type == "postgresql" else f"`{name}`"
        self.sql(self.maintenance_db(), f"DROP DATABASE {quoted}")

    def databases(self) -> set[str]:
        query = (
            "SELECT datname FROM pg_database"
            if self.type == "postgresql"
            else "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
        )
        return set(self.sql(self.maintenance_db(), query).split())

    def restore(self, database: str, dump: Path) -> None:
        """Load a dump into `database` with the server's own client, as a user would."""
        done = subprocess.run(self.client(database), stdin=dump.open("rb"), capture_output=True, env=self.environment())
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def stop(self) -> None:
        """Shut the server down now (the tests' "server went away")."""
        if self.running:
            self.shutdown()
            self.running = False


def _private_root(prefix: str, user: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(root, user, user)
    root.chmod(0o755)
    return root


def _as(user: str, args: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{output}")


def _wait_until_serving(handle: DbServerHandle, log: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until the administrator can log in over TCP with the password."""
    deadline = time.monotonic() + START_TIMEOUT
    probe = [*handle.client(handle.maintenance_db()), "-c" if handle.type == "postgresql" else "-e", "SELECT 1"]
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        if subprocess.run(probe, capture_output=True, env=handle.environment()).returncode == 0:
            return
        time.sleep(0.2)
    log_text = log.read_text(errors="replace") if log.exists() else "(no log)"
    raise RuntimeError(f"{handle.type} server on port {handle.port} did not start:\n{log_text}")


@contextlib.contextmanager
def mariadb_server(password: str = ADMIN_PASSWORD) -> Iterator[DbServerHandle]:
    """A private MariaDB on 127.0.0.1 whose `root` logs in over TCP with `password` only."""
    for tool in ("mariadb-install-db", "mariadbd", "mariadb", "mariadb-dump"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise RuntimeError(f"{tool} not found: install mariadb-server and mariadb-client (scripts/system-deps.sh)")
    root, port = _private_root("hostbackup-mariadb-", "mysql"), free_port()
    data, socket, log = root / "data", root / "mysqld.sock", root / "error.log"
    install = ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--skip-test-db",
               "--auth-root-authentication-method=normal"]  # fmt: skip
    _run(_as("mysql", install), "mariadb-install-db")
    daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    args = [daemon, "--no-defaults", f"--datadir={data}", f"--socket={socket}", f"--port={port}",
            "--bind-address=127.0.0.1", "--skip-name-resolve", f"--log-error={log}", f"--pid-file={root / 'pid'}",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"]  # fmt: skip
    process = subprocess.Popen(_as("mysql", args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = DbServerHandle("mysql", port, "root", password, root, lambda: _terminate(process))
    try:
        _set_mariadb_password(socket, password, process, log)
        _wait_until_serving(handle, log, process)
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(root, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (runuser passes it on to mariadbd), which shuts down cleanly; then wait."""
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _set_mariadb_password(socket: Path, password: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """A fresh data directory lets `root` in through the socket without a password: close that."""
    statements = (
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}'; "
        f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}'; "
        "DROP USER IF EXISTS 'root'@'::1'; FLUSH PRIVILEGES;"
    )
    command = ["mariadb", "--no-defaults", f"--socket={socket}", "-u", "root", "-e", statements]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if subprocess.run(command, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"MariaDB did not start:\n{log.read_text(errors='replace') if log.exists() else ''}")


@contextlib.contextmanager
def postgres_password_server(password: str = ADMIN_PASSWORD) -> Iterator[DbServerHandle]:
    """A private PostgreSQL cluster on 127.0.0.1 where TCP logins need a password (scram-sha-256)."""
    root, port = _private_root("hostbackup-pgpw-", "postgres"), free_port()
    data, log, pwfile = root / "data", root / "log", root / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    initdb = [_pg_binary("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
              "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]  # fmt: skip
    _run(_as_postgres(initdb), "initdb")
    pg_ctl = _pg_binary("pg_ctl")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]), "pg_ctl start")
    stop = _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"])
    handle = DbServerHandle("postgresql", port, "postgres", password, root, lambda: _run(stop, "pg_ctl stop"))
    try:
        _wait_until_serving(handle, log)
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- over the API -------------------------------------------------------------------------------


def api_result(server: Server, operator: str, operation: str, body: str, **credentials: str) -> etree._Element:
    """The first `<result>` of one operation (asserting no system error)."""
    answer = server.call(f"<packet><{operator}><{operation}>{body}</{operation}></{operator}></packet>", **credentials)  # type: ignore[arg-type]
    result = answer.find(f"{operator}/{operation}/result")
    assert result is not None, etree.tostring(answer).decode()
    return result


def register(server: Server, handle: DbServerHandle, *, default: bool = False) -> int:
    """`db_server/add` for a running server; returns its id."""
    body = (
        f"<host>{handle.host}</host><port>{handle.port}</port><type>{handle.type}</type>"
        f"<admin>{handle.admin}</admin><password>{handle.password}</password>{'<default/>' if default else ''}"
    )
    result = api_result(server, "db_server", "add", body)
    assert result.findtext("status") == "ok", etree.tostring(result).decode()
    return int(result.findtext("id") or 0)


def add_db(server: Server, webspace_id: int, name: str, db_type: str, db_server_id: int | None = None,
           **credentials: str) -> etree._Element:  # fmt: skip
    """`database/add-db`; returns the result."""
    server_id = f"<db-server-id>{db_server_id}</db-server-id>" if db_server_id is not None else ""
    body = f"<webspace-id>{webspace_id}</webspace-id><name>{name}</name><type>{db_type}</type>{server_id}"
    return api_result(server, "database", "add-db", body, **credentials)


def extract(volumes: list[Path], destination: Path) -> Path:
    """`cat VOLUMES | zstd -d | tar -x`, then `sha256sum -c SHA256SUMS`: stock tools only."""
    destination.mkdir(parents=True, exist_ok=True)
    names = " ".join(shlex.quote(str(volume)) for volume in volumes)
    subprocess.run(f"cat {names} | zstd -d | tar -x -C {shlex.quote(str(destination))}", shell=True, check=True)
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=destination, check=True)
    return destination
