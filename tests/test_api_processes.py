"""The API's processes: connections spread over them, a dead one is replaced, quick polls get their lane."""

from __future__ import annotations

import http.client
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ADMIN_PASSWORD, ENDPOINT, Server, server_children, start_server, tls_context
from hostbackup.xmlapi.app import is_quick

POLL = b"<packet><backup-manager><get-tasks-info><task-id>1</task-id></get-tasks-info></backup-manager></packet>"


def _children(server: Server) -> list[int]:
    """API processes: the server's multiprocessing children (not the backup workers)."""
    return server_children(server, b"spawn_main")


def _established(pid: int, port: int) -> int:
    """Established TCP connections on `port` held by process `pid`."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def _poll(connection: http.client.HTTPSConnection) -> bytes:
    headers = {"Content-Type": "text/xml", "HTTP_AUTH_LOGIN": "admin", "HTTP_AUTH_PASSWD": ADMIN_PASSWORD}
    connection.request("POST", ENDPOINT, body=POLL, headers=headers)
    response = connection.getresponse()
    assert response.status == 200
    return response.read()


@pytest.fixture
def two_process_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "home", extra_args=("--api-processes", "2"))
    yield server
    server.stop()


def test_connections_spread_over_the_api_processes(two_process_server: Server) -> None:
    server = two_process_server
    connections = [http.client.HTTPSConnection("127.0.0.1", server.port, context=tls_context(), timeout=10)
                   for _ in range(16)]  # fmt: skip
    try:
        for connection in connections:
            assert b"<status>error</status>" in _poll(connection)  # task 1 does not exist: 1013, answered
        held = [_established(pid, server.port) for pid in _children(server)]
        assert len(held) == 2 and sum(held) == 16
        assert min(held) >= 1, held  # one shared socket often gave all 16 to one process
    finally:
        for connection in connections:
            connection.close()


def test_a_dead_api_process_is_replaced_and_every_new_connection_is_answered(two_process_server: Server) -> None:
    server = two_process_server
    victim = _children(server)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (victim in _children(server) or len(_children(server)) < 2):
        time.sleep(0.1)
    assert victim not in _children(server) and len(_children(server)) == 2
    for _ in range(24):  # each new connection hashes to one of the sockets: none may be left without a process
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=tls_context(), timeout=10)
        try:
            assert b"get-tasks-info" in _poll(connection)
        finally:
            connection.close()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}").exists() for pid in _children(server))


@pytest.mark.parametrize(
    ("body", "quick"),
    [
        (POLL, True),
        (b'<?xml version="1.0"?><packet><x-backup-manager><get-task-progress><task-id>3</task-id>'
         b"</get-task-progress></x-backup-manager></packet>", True),
        (b"<packet><backup-manager><get-tasks-info><customer-login>a</customer-login></get-tasks-info>"
         b"</backup-manager></packet>", True),
        (b"<packet><x-backup-manager><verify><server/><filename>b</filename></verify></x-backup-manager></packet>",
         False),
        (b"<packet><backup-manager><import-file><server/><filename>b</filename></import-file></backup-manager>"
         b"</packet>", False),
        (POLL.replace(b"</backup-manager>", b"<backup-customer><customer-id>1</customer-id><local/>"
                      b"</backup-customer></backup-manager>"), False),
        (POLL + b" " * 5000, False),
    ],
    ids=["task-poll", "progress", "owner-poll", "verify", "import", "poll-plus-backup", "large"],
)  # fmt: skip
def test_only_read_only_status_packets_take_the_quick_lane(body: bytes, quick: bool) -> None:
    assert is_quick(body) is quick
