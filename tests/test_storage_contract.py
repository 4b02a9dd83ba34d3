"""One contract every storage transport passes: local disk, FTP passive, FTP active, FTPS (restic-style).

The FTP variants run against real vsftpd instances (tests/ftpserver.py). Each test gets a
fresh directory of its own; the same assertions hold for every transport.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftpserver import FTP_USER, FtpServer
from harness import free_port
from hostbackup.storage.base import Storage, StorageError, UnsafeName
from hostbackup.storage.ftp import FtpEndpoint, FtpStorage
from hostbackup.storage.local import LocalStorage
from hostbackup.storage.retry import RetryPolicy

TRANSPORTS = ["local", "ftp-passive", "ftp-active", "ftps"]
UNSAFE = ["../x", "a/b", ".hidden", ""]
FAST = RetryPolicy(tries=6, first_delay=0.2)
_counter = iter(range(1, 10**6))


def endpoint_for(server: FtpServer, directory: str, *, passive: bool = True) -> FtpEndpoint:
    return FtpEndpoint(server.host, server.port, directory, server.login, server.password, passive, server.tls)


def fresh_directory(server: FtpServer) -> str:
    name = f"contract-{next(_counter)}"
    path = server.root / name
    path.mkdir()
    shutil.chown(path, FTP_USER, FTP_USER)
    return f"/{name}"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Path]]:
    """A storage and the local path where its files really are (to check from outside)."""
    kind: str = request.param
    if kind == "local":
        yield LocalStorage(tmp_path), tmp_path
        return
    server: FtpServer = request.getfixturevalue("vsftpd_tls" if kind == "ftps" else "vsftpd")
    directory = fresh_directory(server)
    storage = FtpStorage(endpoint_for(server, directory, passive=kind != "ftp-active"), policy=FAST)
    yield storage, server.root / directory.lstrip("/")
    storage.close()


def test_write_list_size_read_remove(transport: tuple[Storage, Path]) -> None:
    storage, where = transport
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert storage.write("backup_2401010000.tar.zst.001", io.BytesIO(data)) == len(data)
    assert storage.write("empty", io.BytesIO(b"")) == 0
    assert storage.list() == ["backup_2401010000.tar.zst.001", "empty"]
    assert storage.size("backup_2401010000.tar.zst.001") == len(data)
    assert storage.size("empty") == 0
    assert storage.size("missing") is None
    chunks: list[bytes] = []
    assert storage.read("backup_2401010000.tar.zst.001", chunks.append) == len(data)
    assert len(chunks) > 1 and b"".join(chunks) == data  # streamed, not one blob
    assert (where / "backup_2401010000.tar.zst.001").read_bytes() == data
    assert storage.remove("empty") is True
    assert storage.remove("empty") is False
    assert storage.list() == ["backup_2401010000.tar.zst.001"]


def test_files_appear_only_when_complete(transport: tuple[Storage, Path]) -> None:
    storage, where = transport
    stream = storage.open_write("volume.001")
    stream.write(b"x" * 100_000)
    stream.write(memoryview(b"y" * 50_000))
    assert "volume.001" not in storage.list()
    assert storage.size("volume.001") is None
    assert sorted(os.listdir(where)) == [".volume.001.part"]
    assert stream.commit() == 150_000
    assert os.listdir(where) == ["volume.001"]
    assert storage.size("volume.001") == 150_000


def test_abort_and_remove_leave_no_temporary_file(transport: tuple[Storage, Path]) -> None:
    storage, where = transport
    stream = storage.open_write("gone")
    stream.write(b"partial")
    stream.abort()
    assert os.listdir(where) == []
    stream = storage.open_write("left")
    stream.write(b"partial")
    assert storage.remove("left") is True  # a writer that died leaves a .part: `remove` takes it away
    assert os.listdir(where) == []
    stream.abort()


def test_read_of_a_missing_file_fails_clearly(transport: tuple[Storage, Path]) -> None:
    storage, _ = transport
    with pytest.raises(StorageError):
        storage.read("missing", lambda chunk: None)


@pytest.mark.parametrize("name", UNSAFE)
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_unsafe_names_are_refused_before_any_io(kind: str, name: str, tmp_path: Path) -> None:
    """Against a port where nothing listens: a refusal that touched the server would be a StorageError."""
    storage: Storage
    if kind == "local":
        storage = LocalStorage(tmp_path / "does-not-exist")
    else:
        endpoint = FtpEndpoint("127.0.0.1", free_port(), "", "nobody", "x", kind != "ftp-active", kind == "ftps")
        storage = FtpStorage(endpoint, policy=RetryPolicy(tries=1))
    calls = [
        lambda: storage.write(name, io.BytesIO(b"data")),
        lambda: storage.open_write(name),
        lambda: storage.read(name, lambda chunk: None),
        lambda: storage.size(name),
        lambda: storage.remove(name),
    ]
    for call in calls:
        with pytest.raises(UnsafeName):
            call()


# --- FTP-specific resilience -------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_upload_resumes_with_rest_after_the_server_restarts(tls: bool) -> None:
    from ftpserver import ftp_server

    with ftp_server(tls=tls, max_rate=2_000_000) as server:
        storage = FtpStorage(endpoint_for(server, "/"), policy=FAST)
        data = os.urandom(6 * 1024 * 1024)
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(storage.write("big.001", io.BytesIO(data))))
        thread.start()
        _wait_for_part(server.root / ".big.001.part", 1_000_000)
        server.restart()  # kills the session mid-transfer; the listener comes back on the same port
        thread.join(60)
        assert outcome == [len(data)]
        assert (server.root / "big.001").read_bytes() == data
        assert "REST" in server.log.read_text()
        storage.close()


def _wait_for_part(path: Path, at_least: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {at_least} bytes")


def test_permanent_failures_name_their_cause(vsftpd: FtpServer) -> None:
    wrong = FtpEndpoint(vsftpd.host, vsftpd.port, "/", vsftpd.login, "wrong-password")
    with pytest.raises(StorageError, match=r"login refused by 127\.0\.0\.1:\d+ \(530 Login incorrect\.\)") as info:
        FtpStorage(wrong, policy=FAST).list()
    assert not info.value.transient
    missing = endpoint_for(vsftpd, "/no/such/dir")
    with pytest.raises(StorageError, match=r"directory '/no/such/dir' does not exist on 127\.0\.0\.1:\d+ \(550"):
        FtpStorage(missing, policy=FAST).list()


def test_a_dead_server_fails_after_bounded_tries() -> None:
    endpoint = FtpEndpoint("127.0.0.1", free_port(), "", "user", "pw")
    sleeps: list[float] = []
    policy = RetryPolicy(tries=4, first_delay=0.1, sleep=sleeps.append)
    with pytest.raises(
        StorageError, match=r"cannot connect to 127\.0\.0\.1:\d+ \(Connection refused\); gave up after 4"
    ):
        FtpStorage(endpoint, policy=policy).write("x", io.BytesIO(b"data"))
    assert sleeps == [0.1, 0.2, 0.4]


def test_full_disk_fails_fast_and_names_it() -> None:
    from ftpserver import ftp_server

    with ftp_server(tmpfs_size="1m") as server:
        storage = FtpStorage(endpoint_for(server, "/"), policy=FAST)
        with pytest.raises(StorageError, match="disk full or quota exceeded") as info:
            storage.write("big", io.BytesIO(os.urandom(3 * 1024 * 1024)))
        assert "451" in info.value.text and "gave up" not in info.value.text
        assert os.listdir(server.root) == []  # the aborted upload removed its .part
