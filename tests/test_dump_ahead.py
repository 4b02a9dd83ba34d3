"""Database dumps run ahead of their turn (`DumpsAhead`): while the archive takes the web files
before them, each lands at its place with its exact bytes, a failure surfaces at its place, and
leaving early kills the running tool and leaves no temporary file.

The dump tools here are small shell commands standing in for `pg_dump` and `mariadb-dump`:
`DumpsAhead` runs whatever command a `DumpSource` holds. The real tools against real servers are
in test_databases.py, which goes through the same code.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import tmpfs
from hostbackup.accounts.databases import ServerAccess
from hostbackup.backup.archive import ArchiveWriter
from hostbackup.backup.sources.dump import DUMPS_HELD, DumpFailed, DumpsAhead, DumpSource

ACCESS = ServerAccess("mysql", "127.0.0.1", 3306, "admin", "not-used")
DEADLINE = 30.0  # seconds a background step may take before the test calls it stuck


def _dump(name: str, script: str) -> DumpSource:
    return DumpSource("example.com", name, ACCESS, ("sh", "-c", script))


def _wait_for(condition: str, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {condition}"
        time.sleep(0.02)


class _Files:
    """A web-files source that, while written, waits until `marker` exists."""

    webspace = "example.com"

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def write(self, archive: ArchiveWriter) -> None:
        _wait_for(f"{self.marker.name} (the dump running beside the files)", self.marker.exists)
        archive.add_bytes("domains/example.com/files/index.html", b"<html></html>")


def _members(sink: io.BytesIO) -> list[tuple[str, bytes]]:
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]  # type: ignore[union-attr]


def test_dumps_run_while_the_files_before_them_are_archived(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    first = _dump("shop", f"touch {marker}; printf 'CREATE TABLE shop;\\n'; head -c 3000000 /dev/zero")
    second = _dump("blog", "printf 'CREATE TABLE blog;\\n'")
    sink = io.BytesIO()
    archive = ArchiveWriter(sink, compress=False)
    with DumpsAhead([_Files(marker), first, second], spool_dir=tmp_path) as planned:
        for source in planned.sources:
            source.write(archive)  # _Files waits for the first dump's tool: it must already run
    archive.close()
    members = _members(sink)
    assert [name for name, _ in members] == [
        "domains/example.com/files/index.html",
        "domains/example.com/databases/shop.sql",
        "domains/example.com/databases/blog.sql",
        "SHA256SUMS",
    ]
    assert members[1][1] == b"CREATE TABLE shop;\n" + bytes(3_000_000)
    assert members[2][1] == b"CREATE TABLE blog;\n"
    assert not [path for path in tmp_path.iterdir() if path != marker]  # no spool file left


def test_a_failed_dump_fails_at_its_place_with_the_tools_message(tmp_path: Path) -> None:
    good = _dump("shop", "printf 'rows'")
    bad = _dump("blog", "printf 'half a dump'; echo 'access denied for user' >&2; exit 3")
    sink = io.BytesIO()
    archive = ArchiveWriter(sink, compress=False)
    with DumpsAhead([good, bad], spool_dir=tmp_path) as planned:
        planned.sources[0].write(archive)
        with pytest.raises(DumpFailed, match=r"database blog .*access denied for user"):
            planned.sources[1].write(archive)
    assert archive.members == 1  # the good dump only: nothing of the failed one reached the archive
    assert list(tmp_path.iterdir()) == []


def test_a_dump_that_cannot_be_held_fails_at_its_place_and_says_where(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    sink = io.BytesIO()
    archive = ArchiveWriter(sink, compress=False)
    expected = pytest.raises(DumpFailed, match=f"database shop .*could not hold its output in {missing}")
    with DumpsAhead([_dump("shop", "printf 'rows'")], spool_dir=missing) as planned, expected:
        planned.sources[0].write(archive)
    assert archive.members == 0


def test_a_dump_that_fills_the_disk_fails_at_its_place_and_says_so(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    big = _dump("shop", "printf 'CREATE TABLE shop;\\n'; head -c 3000000 /dev/zero")  # 3 MB into 1 MiB
    sink = io.BytesIO()
    archive = ArchiveWriter(sink, compress=False)
    expected = f"^Dump of database shop .*: could not hold its output in {spool}: No space left on device \\(.+\\)$"
    with tmpfs(spool, "1m"):
        with DumpsAhead([big], spool_dir=spool) as planned, pytest.raises(DumpFailed, match=expected):
            planned.sources[0].write(archive)
        assert list(spool.iterdir()) == []
    assert archive.members == 0


def test_leaving_early_kills_the_running_tool_and_removes_its_spool(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    stuck = _dump("shop", f"printf 'partial'; echo $$ > {pid_file}.new; mv {pid_file}.new {pid_file}; exec sleep 600")
    spool = tmp_path / "spool"
    spool.mkdir()
    planned = DumpsAhead([stuck], spool_dir=spool)
    planned.__enter__()
    _wait_for("the dump tool to start", pid_file.exists)
    pid = int(pid_file.read_text())
    leaving = threading.Thread(target=planned.__exit__, args=(None, None, None))
    leaving.start()
    leaving.join(DEADLINE)
    assert not leaving.is_alive(), "leaving waited for the dump tool instead of killing it"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert list(spool.iterdir()) == []


def test_at_most_two_dumps_are_held_at_once(tmp_path: Path) -> None:
    log = tmp_path / "log"
    dumps = [_dump(f"db{number}", f"echo {number} >> {log}; printf 'data {number}'") for number in range(3)]
    sink = io.BytesIO()
    archive = ArchiveWriter(sink, compress=False)
    with DumpsAhead(dumps, spool_dir=tmp_path) as planned:
        _wait_for(f"{DUMPS_HELD} dumps to run", lambda: log.exists() and len(log.read_text().split()) == DUMPS_HELD)
        time.sleep(0.5)  # time enough for a third dump to start, were it allowed
        assert log.read_text().split() == ["0", "1"]
        planned.sources[0].write(archive)  # frees a place: the third dump runs
        _wait_for("the third dump", lambda: len(log.read_text().split()) == 3)
        for source in planned.sources[1:]:
            source.write(archive)
    archive.close()
    assert [content for _, content in _members(sink)][:3] == [b"data 0", b"data 1", b"data 2"]
