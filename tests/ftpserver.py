"""Private vsftpd instances for the tests: plain FTP or explicit FTPS, passive or active, on loopback.

Real vsftpd (installed by `scripts/system-deps.sh`), never a Python FTP server: the transports
must cope with a real server's replies, TLS session reuse and data-connection rules. Each
instance gets its own generated config, port, passive port range and root directory. Logins
use one system user (created on first use, as root) whose password is reset for the run;
`local_root` points each instance at its own directory, so many can run side by side. A server
that cannot start raises with vsftpd's own output: tests that need it fail, they never skip.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness import free_port, tmpfs

FTP_USER = "hbftptest"
FTP_PASSWORD = "Ftp-Test-Pass-7"
VSFTPD = "/usr/sbin/vsftpd"
SECURE_CHROOT = Path("/var/run/vsftpd/empty")


def ensure_ftp_user() -> None:
    """The system user the FTP logins use, with a known password (needs root)."""
    if os.geteuid() != 0:
        raise RuntimeError("the vsftpd tests run as root (they create a system user for FTP logins)")
    known = subprocess.run(["id", "-u", FTP_USER], capture_output=True).returncode == 0
    if not known:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/bash", FTP_USER], check=True)
    subprocess.run(["chpasswd"], input=f"{FTP_USER}:{FTP_PASSWORD}".encode(), check=True)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for the FTPS instance."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def free_port_range(count: int = 20) -> tuple[int, int]:
    """`count` consecutive loopback ports that are free right now (for pasv_min/max_port)."""
    for _ in range(200):
        first = free_port()
        if first + count > 65000:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first, first + count - 1
    raise RuntimeError("no free range of passive ports on 127.0.0.1")


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (vsftpd forks a session process, which forks its privileged helper)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


@dataclass
class FtpServer:
    """One running vsftpd; `root` is what the FTP user sees as `/`."""

    workdir: Path
    root: Path
    tls: bool = False
    max_rate: int = 0  # bytes per second per session; 0 = unlimited
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    host = "127.0.0.1"
    login = FTP_USER
    password = FTP_PASSWORD

    @property
    def log(self) -> Path:
        return self.workdir / "vsftpd.log"

    def config(self) -> str:
        low, high = free_port_range()
        options = {
            "listen": "YES", "listen_ipv6": "NO", "listen_address": self.host, "listen_port": str(self.port),
            "background": "NO", "seccomp_sandbox": "NO", "anonymous_enable": "NO", "local_enable": "YES",
            "write_enable": "YES", "local_umask": "077", "local_root": str(self.root), "chroot_local_user": "YES",
            "allow_writeable_chroot": "YES",
            "pam_service_name": "vsftpd", "secure_chroot_dir": str(SECURE_CHROOT), "userlist_enable": "NO",
            "pasv_enable": "YES", "pasv_address": self.host, "pasv_min_port": str(low), "pasv_max_port": str(high),
            "port_enable": "YES", "connect_from_port_20": "NO", "local_max_rate": str(self.max_rate),
            "xferlog_enable": "YES", "vsftpd_log_file": str(self.log), "dual_log_enable": "YES",
            "log_ftp_protocol": "YES", "use_localtime": "NO", "idle_session_timeout": "120",
        }  # fmt: skip
        if self.tls:
            cert, key = self_signed(self.workdir)
            options |= {
                "ssl_enable": "YES", "rsa_cert_file": str(cert), "rsa_private_key_file": str(key),
                "force_local_logins_ssl": "YES", "force_local_data_ssl": "YES", "ssl_ciphers": "HIGH",
                "require_ssl_reuse": "YES", "ssl_tlsv1": "NO", "ssl_sslv2": "NO", "ssl_sslv3": "NO",
            }  # fmt: skip
        options |= self.extra
        return "".join(f"{key}={value}\n" for key, value in options.items())

    def start(self) -> FtpServer:
        ensure_ftp_user()
        SECURE_CHROOT.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, FTP_USER, FTP_USER)
        self.port = self.port or free_port()
        conf = self.workdir / "vsftpd.conf"
        conf.write_text(self.config())
        output = (self.workdir / "vsftpd.out").open("wb")
        self.process = subprocess.Popen(
            [VSFTPD, str(conf)], stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vsftpd exited with {self.process.returncode}: {self._output()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1) as sock:
                if sock.recv(64).startswith(b"220"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"vsftpd did not answer on {self.host}:{self.port}: {self._output()}")

    def _output(self) -> str:
        texts = [path.read_text(errors="replace") for path in (self.workdir / "vsftpd.out", self.log) if path.exists()]
        return "\n".join(texts)[-4000:]

    def stop(self) -> None:
        """Kill the listener and every session process it forked (sessions run in their own groups)."""
        if self.process is not None and self.process.poll() is None:
            for pid in [*descendants(self.process.pid), self.process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def files(self, directory: str = "") -> dict[str, int]:
        """What the server holds in `directory` (relative to its root), read from disk: name → size."""
        path = self.root / directory
        return {entry.name: entry.stat().st_size for entry in path.iterdir()} if path.is_dir() else {}

    def settings_xml(self, directory: str = "/", *, passive: bool = True) -> str:
        """The `<settings>` of set-remote-storage-settings pointing at this server."""
        return (
            f"<settings><protocol>ftp</protocol><host>{self.host}</host><port>{self.port}</port>"
            f"<directory>{directory}</directory><login>{self.login}</login><password>{self.password}</password>"
            f"<passive-mode>{str(passive).lower()}</passive-mode><use-ftps>{str(self.tls).lower()}</use-ftps>"
            "</settings>"
        )


def ftp_workdir() -> Path:
    """A directory the FTP user can traverse (pytest's tmp_path sits under a 0700 folder)."""
    workdir = Path(tempfile.mkdtemp(prefix="hostbackup-ftp-"))
    workdir.chmod(0o755)
    return workdir


@contextlib.contextmanager
def ftp_server(*, tls: bool = False, max_rate: int = 0, tmpfs_size: str | None = None) -> Iterator[FtpServer]:
    """A running vsftpd; with `tmpfs_size` its root is a tmpfs of that size (a full disk on demand)."""
    workdir = ftp_workdir()
    root = workdir / "root"
    with contextlib.ExitStack() as stack:
        if tmpfs_size:
            stack.enter_context(tmpfs(root, tmpfs_size))
        server = FtpServer(workdir, root, tls=tls, max_rate=max_rate)
        stack.callback(server.stop)
        yield server.start()
    shutil.rmtree(workdir, ignore_errors=True)
