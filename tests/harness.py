"""Real services for the tests: the hostbackup server over HTTPS, and a private PostgreSQL.

Nothing here is a mock. A service that cannot be started makes the tests that need it fail
with the reason (CI installs everything through `.ci/run`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PLESK_XSD = SHARED / "plesk-xsd"
ADMIN_PASSWORD = "Admin-Secret-1"
ENDPOINT = "/enterprise/control/agent.php"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text(errors='replace')}")


@dataclass
class Server:
    """A running `hostbackup serve` and an HTTPS client for it."""

    home: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    https: bool = True
    client: httpx.Client = field(default_factory=lambda: httpx.Client(verify=False, timeout=60))

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}{ENDPOINT}"

    def post(
        self,
        body: str | bytes,
        *,
        login: str | None = "admin",
        password: str | None = ADMIN_PASSWORD,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Content-Type": "text/xml"}
        if login is not None:
            sent["HTTP_AUTH_LOGIN"] = login
        if password is not None:
            sent["HTTP_AUTH_PASSWD"] = password
        sent.update(headers or {})
        return self.client.post(self.url, content=body, headers=sent)

    def call(self, body: str | bytes, **kwargs: object) -> etree._Element:
        """POST a packet and parse the XML answer (asserting HTTP 200 and the XML content type)."""
        response = self.post(body, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        return etree.fromstring(response.content)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_children(server: Server, marker: bytes) -> list[int]:
    """Pids of the server's child processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if parent == server.process.pid and marker in command:
                found.append(int(entry.name))
    return found


def start_server(home: Path, *, env: Mapping[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> Server:
    port = free_port()
    log = home.parent / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "HOSTBACKUP_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    args = [sys.executable, "-m", "hostbackup", "--home", str(home), "serve", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning", *extra_args]
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=environment)
    server = Server(home, port, process, log, https="--http" not in extra_args)
    try:
        wait_for_port(port, process, log)
    except Exception:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `directory`: a full disk on demand (mounting needs root, as in CI)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def tls_context() -> ssl.SSLContext:
    """A client context that accepts the server's self-signed certificate, as Plesk clients do."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL server binary {name!r} not found: install the postgresql package")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A private PostgreSQL cluster on loopback; yields a superuser URL (database `postgres`)."""
    if url := os.environ.get("HOSTBACKUP_TEST_POSTGRES_URL"):
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="hostbackup-pg-"))
    data, port = root / "data", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    root.chmod(0o755)
    subprocess.run(
        _as_postgres([_pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres([_pg_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([_pg_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def plesk_output_schema() -> etree.XMLSchema:
    """Plesk's own schema for backup-manager answers (shared/plesk-xsd, never copied here)."""
    return etree.XMLSchema(etree.parse(str(PLESK_XSD / "backup_packet_output.xsd")))


# --- backup helpers ---------------------------------------------------------------------------

_PLESK_SCHEMA: etree.XMLSchema | None = None


def assert_plesk_valid(root: etree._Element) -> None:
    """Answers holding only backup-manager (or a system error) must satisfy Plesk's own schema."""
    global _PLESK_SCHEMA
    if _PLESK_SCHEMA is None:
        _PLESK_SCHEMA = plesk_output_schema()
    if all(child.tag in ("backup-manager", "system") for child in root) and not _PLESK_SCHEMA.validate(root):
        raise AssertionError(f"{_PLESK_SCHEMA.error_log}\n{etree.tostring(root).decode()}")


def bm(server: Server, operations: str, **kwargs: object) -> etree._Element:
    """Send `<backup-manager>operations</backup-manager>`, validate the answer, return its operations."""
    root = server.call(f"<packet><backup-manager>{operations}</backup-manager></packet>", **kwargs)  # type: ignore[arg-type]
    assert_plesk_valid(root)
    operator = root.find("backup-manager")
    assert operator is not None, etree.tostring(root).decode()
    return operator


def result_of(operator: etree._Element, index: int = 0) -> etree._Element:
    result = operator[index].find("result")
    assert result is not None
    return result


def start_backup(server: Server, body: str, **kwargs: object) -> int:
    result = result_of(bm(server, body, **kwargs))
    assert result.findtext("status") == "ok", etree.tostring(result).decode()
    return int(result.findtext("task-id") or 0)


def wait_for_task(server: Server, task_id: int, timeout: float = 300, **kwargs: object) -> etree._Element:
    """Poll get-tasks-info until the task leaves `working`; returns its `<task>`."""
    deadline = time.monotonic() + timeout
    while True:
        task = result_of(bm(server, f"<get-tasks-info><task-id>{task_id}</task-id></get-tasks-info>", **kwargs))
        record = task.find("task")
        assert record is not None, etree.tostring(task).decode()
        if record.findtext("status") != "working" or time.monotonic() > deadline:
            return record
        time.sleep(0.1)


def progress_of(server: Server, task_id: int) -> etree._Element:
    root = server.call(
        f"<packet><x-backup-manager><get-task-progress><task-id>{task_id}</task-id></get-task-progress>"
        "</x-backup-manager></packet>"
    )
    progress = root.find("x-backup-manager/get-task-progress/result/progress")
    assert progress is not None, etree.tostring(root).decode()
    return progress


@dataclass
class Seeded:
    customer_id: int
    login: str
    webspaces: dict[str, int]
    vhosts: Path
    mail: Path


def seed_customer(
    server: Server, login: str, webspaces: tuple[str, ...], mailboxes: tuple[str, ...] = (), owner_id: int = 1
) -> Seeded:
    """Create a customer with webspaces and mailboxes through the accounts layer of the server's home."""
    from hostbackup.accounts.users import Role, create_user
    from hostbackup.accounts.webspaces import create_mailbox, create_webspace
    from hostbackup.config import Settings
    from hostbackup.db.engine import Database

    settings = Settings.load(server.home)
    db = Database(settings.effective_database_url)
    try:
        with db.session() as session:
            customer = create_user(
                session, role=Role.CUSTOMER, login=login, password="Customer-Pass-1", owner_id=owner_id
            )
            ids = {}
            for name in webspaces:
                webspace = create_webspace(session, settings.vhosts_root, name=name, owner=customer)
                ids[name] = webspace.id
                for mailbox in mailboxes:
                    create_mailbox(session, settings.mail_root, webspace, name=mailbox)
            return Seeded(customer.id, login, ids, settings.vhosts_root, settings.mail_root)
    finally:
        db.dispose()
