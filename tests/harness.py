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
