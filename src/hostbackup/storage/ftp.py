"""FTP and explicit FTPS (AUTH TLS, `PROT P`) transport, on the stdlib `ftplib`.

Built against the three classic complaints about FTP backup targets:

* **Local disk filling up**: `open_write` streams straight into a `STOR` data connection, so a
  caller never needs a local copy of what it uploads; memory stays bounded too (only a tail of
  recently sent bytes is kept, see below).
* **Active/passive trouble**: passive mode by default, and in passive mode the address in the
  server's `227` reply is ignored (ftplib's default) in favour of the control connection's peer,
  which is what works behind NAT. Active mode (`PORT`) is there for servers that need it. FTPS
  data connections reuse the control connection's TLS session, which vsftpd, ProFTPD and
  FileZilla Server require by default (`require_ssl_reuse`); plain `ftplib.FTP_TLS` does not.
* **Uploads failing without a clear reason**: every failure becomes a `StorageError` whose text
  names the server, the step and the server's own reply (`login refused by 127.0.0.1:2121 (530
  Login incorrect.)`). When a data connection breaks, the control connection is read once more,
  because that is where the server says *why* (`451 Failure writing to local file.`).

Resilience: transient failures (lost connection, timeout, 4xx) are retried with backoff
(`retry.RetryPolicy`); an interrupted upload is resumed with `REST` at the size the server
reports for the `.part` file, re-sending from a bounded in-memory tail (`RESUME_WINDOW`) of what
was sent. A resume that makes no progress after a `45x` reply is a full disk or quota, and fails
at once instead of retrying. Uploads are verified with `SIZE` before and after the rename.

The server certificate is not verified unless HOSTBACKUP_FTPS_CAFILE names a CA bundle: FTP
backup targets overwhelmingly use self-signed certificates, and TLS still protects the password
and the data against passive eavesdropping.
"""

from __future__ import annotations

import contextlib
import ftplib
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar

from hostbackup.storage.base import StorageError, check_name, copy_into, part_name
from hostbackup.storage.layout import is_safe_name
from hostbackup.storage.retry import RetryPolicy, retrying

T = TypeVar("T")
RESUME_WINDOW = 16 * 1024 * 1024  # more than the socket buffers that can be in flight when a connection dies
TIMEOUT = 30.0


@dataclass(frozen=True)
class FtpEndpoint:
    """Where and how to connect; built from an owner's remote storage settings."""

    host: str
    port: int = 21
    directory: str = ""
    login: str = ""
    password: str = ""
    passive: bool = True
    tls: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        scheme = "ftps" if self.tls else "ftp"
        return f"{scheme}://{self.login}@{self.address}/{self.directory.lstrip('/')}"


class _SessionReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def _tls_context() -> ssl.SSLContext:
    cafile = os.environ.get("HOSTBACKUP_FTPS_CAFILE")
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _reply_text(error: BaseException) -> str:
    return " ".join(str(error).split())


def describe(error: BaseException, endpoint: FtpEndpoint, step: str) -> StorageError:
    """Turn whatever ftplib or the socket raised into a `StorageError` that names the cause."""
    if isinstance(error, StorageError):
        return error
    where = endpoint.address
    if isinstance(error, ftplib.Error):
        return _describe_reply(_reply_text(error), endpoint, step)
    if isinstance(error, ConnectionRefusedError):
        return StorageError(f"cannot connect to {where} ({error.strerror})", transient=True)
    if isinstance(error, TimeoutError | socket.timeout):
        return StorageError(f"{where} did not answer in time during {step}", transient=True)
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError) and step in ("connect", "tls"):
        return StorageError(f"TLS with {where} failed ({error.reason or error})")
    if isinstance(error, socket.gaierror):
        return StorageError(f"cannot resolve {endpoint.host} ({error.strerror})", transient=True)
    detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return StorageError(f"connection to {where} lost during {step} ({detail})", transient=True)


def _describe_reply(reply: str, endpoint: FtpEndpoint, step: str) -> StorageError:
    where, code = endpoint.address, reply[:3]
    if code == "530" or (step == "login" and code.startswith("5")):
        return StorageError(f"login refused by {where} ({reply})")
    if code in ("452", "552"):
        return StorageError(f"no space left on {where}: quota or disk full ({reply})")
    if step == "cwd" and code == "550":
        return StorageError(f"directory {endpoint.directory!r} does not exist on {where} ({reply})")
    if step == "tls" and code.startswith("5"):
        return StorageError(f"{where} does not offer FTPS ({reply})")
    if code.startswith("4"):
        return StorageError(f"{where} answered {reply} during {step}", transient=True)
    return StorageError(f"{where} refused {step} ({reply})")


def _missing(error: ftplib.Error) -> bool:
    return str(error).startswith(("550", "450"))


def _size(ftp: ftplib.FTP, name: str) -> int | None:
    try:
        size = ftp.size(name)
    except ftplib.error_perm as error:
        if _missing(error):
            return None
        raise
    return None if size is None else int(size)


def _close_data(conn: socket.socket) -> None:
    """Close a data connection the way the server expects (TLS close_notify first)."""
    try:
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    finally:
        conn.close()


class FtpStorage:
    """One directory on an FTP(S) server. Not thread-safe: one instance per thread."""

    def __init__(self, endpoint: FtpEndpoint, *, policy: RetryPolicy | None = None, timeout: float = TIMEOUT):
        self.endpoint = endpoint
        self.policy = policy or RetryPolicy.from_env()
        self.timeout = timeout
        self._ftp: ftplib.FTP | None = None

    @property
    def description(self) -> str:
        return self.endpoint.url

    # -- connection -------------------------------------------------------------------------------

    def connect(self) -> ftplib.FTP:
        """The logged-in control connection, in binary mode and in the target directory."""
        if self._ftp is None:
            self._ftp = self._connect()
        return self._ftp

    def _connect(self) -> ftplib.FTP:
        end = self.endpoint
        ftp = _SessionReusingFTP_TLS(context=_tls_context()) if end.tls else ftplib.FTP()
        step = "connect"
        try:
            ftp.connect(end.host, end.port, timeout=self.timeout)
            if isinstance(ftp, ftplib.FTP_TLS):
                step = "tls"
                ftp.auth()
            step = "login"
            ftp.login(end.login, end.password)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(end.passive)
            ftp.voidcmd("TYPE I")
            if end.directory:
                step = "cwd"
                ftp.cwd(end.directory)
        except (ftplib.Error, OSError, EOFError) as error:
            ftp.close()
            raise describe(error, end, step) from error
        return ftp

    def drop(self) -> None:
        """Forget the control connection (after a failure its state is unknown)."""
        if self._ftp is not None:
            self._ftp.close()
            self._ftp = None

    def attempt(self, step: str, action: Callable[[ftplib.FTP], T]) -> T:
        """One try of `action` on the control connection; failures come out as `StorageError`."""
        ftp = self.connect()
        try:
            return action(ftp)
        except (ftplib.Error, OSError, EOFError) as error:
            if not isinstance(error, ftplib.error_perm):
                self.drop()
            raise describe(error, self.endpoint, step) from error

    def call(self, step: str, action: Callable[[ftplib.FTP], T]) -> T:
        return retrying(self.policy, lambda: self.attempt(step, action))

    # -- the Storage protocol ---------------------------------------------------------------------

    def open_write(self, name: str) -> _FtpUpload:
        """A stream on a control connection of its own, so this storage stays usable meanwhile."""
        return _FtpUpload(FtpStorage(self.endpoint, policy=self.policy, timeout=self.timeout), name)

    def write(self, name: str, source: BinaryIO) -> int:
        return copy_into(self.open_write(name), source)

    def read(self, name: str, sink: Callable[[bytes], object]) -> int:
        check_name(name)
        received = 0

        def take(chunk: bytes) -> None:
            nonlocal received
            sink(chunk)
            received += len(chunk)

        self.call("download", lambda ftp: ftp.retrbinary(f"RETR {name}", take, rest=received or None))
        return received

    def list(self) -> list[str]:
        def names(ftp: ftplib.FTP) -> list[str]:
            try:
                return ftp.nlst()
            except ftplib.error_perm as error:
                if _missing(error):  # some servers answer "550 No files found" for an empty directory
                    return []
                raise

        listed = (entry.rsplit("/", 1)[-1] for entry in self.call("list", names))
        return sorted(name for name in listed if is_safe_name(name))

    def size(self, name: str) -> int | None:
        check_name(name)
        return self.call("size", lambda ftp: _size(ftp, name))

    def remove(self, name: str) -> bool:
        targets = (check_name(name), part_name(name))
        return any([self.call("remove", self._deleter(target)) for target in targets])

    @staticmethod
    def _deleter(name: str) -> Callable[[ftplib.FTP], bool]:
        return lambda ftp: FtpStorage._delete(ftp, name)

    @staticmethod
    def _delete(ftp: ftplib.FTP, name: str) -> bool:
        try:
            ftp.delete(name)
        except ftplib.error_perm as error:
            if _missing(error):
                return False
            raise
        return True

    def close(self) -> None:
        if self._ftp is not None:
            with contextlib.suppress(ftplib.Error, OSError, EOFError):
                self._ftp.quit()
        self.drop()


class _Tail:
    """The last `limit` bytes sent, so a broken upload can resume where the server's file ends."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0

    def append(self, data: memoryview) -> None:
        self.chunks.append(bytes(data))
        self.size += len(data)
        while len(self.chunks) > 1 and self.size - len(self.chunks[0]) >= self.limit:
            self.size -= len(self.chunks.popleft())

    def since(self, offset: int, end: int) -> Iterator[memoryview]:
        """The bytes from stream position `offset` to `end` (the position after the last chunk)."""
        skip = offset - (end - self.size)
        if skip < 0:
            raise ValueError("offset outside the resume window")
        for chunk in self.chunks:
            if skip < len(chunk):
                yield memoryview(chunk)[skip:]
            skip = max(0, skip - len(chunk))


class _FtpUpload:
    """A `STOR` in progress to `.<name>.part`, resumable with `REST`, renamed by `commit`."""

    def __init__(self, storage: FtpStorage, name: str) -> None:
        self.storage = storage
        self.name = check_name(name)
        self.part = part_name(name)
        self.total = 0
        self.tail = _Tail(RESUME_WINDOW)
        self.conn: socket.socket | None = None
        self.started = False
        self.failures = 0
        self.resumed_from = -1
        self.last_reply = ""

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        view = memoryview(data).cast("B")
        self.tail.append(view)
        self.total += len(view)
        self._deliver(lambda conn: conn.sendall(view), resent_by_resume=True)
        return len(view)

    def commit(self) -> int:
        self._deliver(self._end_transfer, resent_by_resume=False)
        stored = self.storage.call("verify", lambda ftp: _size(ftp, self.part))
        if stored != self.total:
            raise StorageError(
                f"{self.part} on {self.storage.endpoint.address} holds {stored} bytes, sent {self.total}"
            )
        self.storage.call("rename", self._rename)
        self.storage.close()
        return self.total

    def abort(self) -> None:
        """Drop the transfer and try once to delete the `.part` file (callers journal leftovers)."""
        self._reset()
        with contextlib.suppress(StorageError):
            self.storage.attempt("cleanup", FtpStorage._deleter(self.part))
        self.storage.close()

    # -- internals ------------------------------------------------------------------------------

    def _deliver(self, action: Callable[[socket.socket], Any], *, resent_by_resume: bool) -> None:
        """Run `action` on the data connection, reconnecting and resuming until it works or gives up.

        A resume re-sends everything the server lacks, the data of the current `write` included,
        so then `action` (the send) is already done.
        """
        while True:
            try:
                if self.conn is None:
                    self._resume()
                    if resent_by_resume:
                        return
                assert self.conn is not None
                try:
                    action(self.conn)
                except (OSError, EOFError, ftplib.Error) as error:
                    raise self._explain(error) from error
                return
            except StorageError as error:
                self._reset()
                self.failures += 1
                self.storage.policy.pause_or_raise(error, self.failures)

    def _resume(self) -> None:
        """Open a data connection at the size the server holds and re-send what it is missing."""
        offset = self.storage.attempt("upload", self._server_offset) if self.started else 0
        if offset == self.resumed_from and self.last_reply.startswith("45"):
            raise StorageError(
                f"{self.storage.endpoint.address} stopped storing {self.name} at {offset} bytes ({self.last_reply}): "
                "disk full or quota exceeded"
            )
        self.resumed_from = offset
        self.started = True
        self.conn = self.storage.attempt("upload", lambda ftp: self._transfer(ftp, offset))
        try:
            for chunk in self.tail.since(offset, self.total):
                self.conn.sendall(chunk)
        except (OSError, EOFError) as error:
            raise self._explain(error) from error

    def _server_offset(self, ftp: ftplib.FTP) -> int:
        offset = _size(ftp, self.part) or 0
        if offset > self.total or offset < self.total - self.tail.size:
            return 0 if self.total <= self.tail.size else self._cannot_resume(offset)
        return offset

    def _cannot_resume(self, offset: int) -> int:
        raise StorageError(f"cannot resume {self.name} at {offset} bytes on {self.storage.endpoint.address}")

    def _transfer(self, ftp: ftplib.FTP, offset: int) -> socket.socket:
        try:
            return ftp.transfercmd(f"STOR {self.part}", rest=offset or None)
        except ftplib.error_perm:
            if not offset or self.total > self.tail.size:
                raise
            self.resumed_from = 0  # no REST on this server: start over, the tail still holds everything
            return ftp.transfercmd(f"STOR {self.part}")

    def _end_transfer(self, conn: socket.socket) -> None:
        self.conn = None
        _close_data(conn)
        self.storage.connect().voidresp()

    def _rename(self, ftp: ftplib.FTP) -> None:
        try:
            ftp.rename(self.part, self.name)
        except ftplib.error_perm:
            if _size(ftp, self.name) != self.total:  # a retry after a rename whose answer was lost
                raise
        stored = _size(ftp, self.name)
        if stored != self.total:
            raise StorageError(
                f"{self.name} on {self.storage.endpoint.address} holds {stored} bytes, sent {self.total}"
            )

    def _explain(self, error: BaseException) -> StorageError:
        """The server's reason for a broken transfer, read from the control connection when it has one."""
        reply: BaseException = error
        if not isinstance(error, ftplib.Error) and self.storage._ftp is not None:
            reply = _late_reply(self.storage._ftp) or error
        self.last_reply = _reply_text(reply) if isinstance(reply, ftplib.Error) else ""
        return describe(reply, self.storage.endpoint, "upload")

    def _reset(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
            self.conn = None
        self.storage.drop()


def _late_reply(ftp: ftplib.FTP) -> ftplib.Error | None:
    """After a data connection broke, the server's error reply (if it sent one in time)."""
    try:
        if ftp.sock is not None:
            ftp.sock.settimeout(2)
        ftp.getresp()
    except ftplib.Error as reply:
        return reply
    except (OSError, EOFError):
        return None
    return None
