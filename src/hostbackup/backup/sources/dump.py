"""A database dump as content: a dump tool's standard output as one archive member.

A tar header must state the size first, so a dump is spooled before it goes into the archive:
the tool writes its standard output straight into a temporary file (`DumpSource.dump_into`), so
none of its bytes pass through this process until the archive reads them. Its standard error
goes to another temporary file, so a chatty tool can never block on a full pipe. (Through a pipe
read by a thread, the 104 MB of the bench's databases cost that thread 0.2-0.35 CPU seconds of
copies on a machine whose two cores a backup keeps busy.)

A backup runs its dumps ahead (`DumpsAhead`): on a thread, in plan order, each into a temporary
file, while the archive takes the web files before them; each goes in at its place in the plan
(`ArchiveWriter.add_spooled`). A dump mostly waits for its database server: in a 1 GiB backup
with 104 MB of databases the worker had spent a quarter of its time waiting for the dump tools'
output when it read them in turn. (`DumpSource.write`, the plain `Source` way, dumps in turn.)

A dump is only as good as its exit status: when the tool exits non-zero `DumpFailed` is raised,
nothing of that dump reaches the archive, and the task fails with the tool's message at the
dump's place (with "could not hold its output" first when the disk of its temporary file is
full). An empty or truncated dump is never recorded as a success.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from hostbackup.accounts.databases import ServerAccess, trimmed
from hostbackup.backup.archive import ArchiveWriter
from hostbackup.backup.sources import Source

#: Dumps held at once, each in a temporary file: one finished and waiting for its turn in the
#: archive, one running. Disk needs room for the two largest.
DUMPS_HELD = 2


class DumpFailed(Exception):
    """The dump tool failed; the message names the database, the server and the tool's error."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"Dump of {what} failed: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class DumpSource:
    """One database of a webspace, dumped by `command` (the tool and its arguments, no secrets)."""

    webspace: str
    database: str
    access: ServerAccess
    command: tuple[str, ...] = field(repr=False)

    @property
    def arcname(self) -> str:
        return f"domains/{self.webspace}/databases/{self.database}.sql"

    def write(self, archive: ArchiveWriter) -> None:
        with tempfile.TemporaryFile() as spool:
            self.dump_into(spool, archive.warnings)
            archive.add_spooled(self.arcname, spool)

    def dump_into(
        self,
        spool: IO[bytes],
        warnings: list[str],
        started: Callable[[subprocess.Popen[bytes]], object] = lambda _: None,
    ) -> None:
        """Run the tool with its standard output going into `spool`, an empty temporary file; raises
        `DumpFailed` when the tool did not succeed (then `spool` holds no usable dump).

        `started` is given the tool's process, for a thread that may have to kill it."""
        environment = {**os.environ, **self.access.environment()}
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(self.command, stdout=spool, stderr=errors, env=environment)
            except OSError as exc:
                raise self._failed(f"{self.command[0]}: {exc.strerror}") from None
            started(process)
            try:
                process.wait()
            except BaseException:  # the task stops: the tool goes with it
                process.kill()
                process.wait()
                raise
            message = _read_text(errors)
        if process.returncode != 0:
            raise self._failed(message or f"{self.command[0]} exited with status {process.returncode}")
        if message:
            warnings.append(f"{self._what()}: {message}")

    def _what(self) -> str:
        return f"database {self.database} ({self.access})"

    def _failed(self, message: str) -> DumpFailed:
        return DumpFailed(self._what(), trimmed(message))

    def unspooled(self, directory: str, why: str) -> DumpFailed:
        """The failure of a dump whose output could not be held in `directory` (full, gone)."""
        return self._failed(f"could not hold its output in {directory}: {why}")


@dataclass
class _Dump:
    """A dump run ahead: its data, the tool's warnings, or why it failed; `done` once it ended."""

    source: DumpSource
    taken: Callable[[], object]  # frees its place among the dumps held
    data: io.BufferedRandom | None = None
    warnings: list[str] = field(default_factory=list)
    failure: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def webspace(self) -> str:
        return self.source.webspace

    def write(self, archive: ArchiveWriter) -> None:
        """Wait for the dump, then add it at this place in the archive (or raise its failure)."""
        self.done.wait()
        archive.warnings.extend(self.warnings)
        if self.failure is not None:
            raise self.failure
        assert self.data is not None
        with self.data:
            archive.add_spooled(self.source.arcname, self.data)
        self.taken()


class DumpsAhead:
    """The sources of a plan, with its database dumps run ahead on a thread (see the module).

    Use it as a context manager around writing the archive: leaving it kills a dump tool that
    still runs and removes every temporary file."""

    def __init__(self, sources: Sequence[Source], spool_dir: Path | None = None) -> None:
        self._slots = threading.Semaphore(DUMPS_HELD)
        self.sources: list[Source] = [
            _Dump(source, self._slots.release) if isinstance(source, DumpSource) else source for source in sources
        ]
        self._dumps = [source for source in self.sources if isinstance(source, _Dump)]
        self._spool_dir = spool_dir
        self._stopping = threading.Event()
        self._tool: subprocess.Popen[bytes] | None = None  # the running dump's
        self._thread = threading.Thread(target=self._run, name="database-dumps", daemon=True)

    def __enter__(self) -> DumpsAhead:
        if self._dumps:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stopping.set()
        self._slots.release()  # a thread waiting for a slot sees the stop
        if (tool := self._tool) is not None:
            tool.kill()  # its output ends, and so does the thread's read
        if self._thread.is_alive():
            self._thread.join()
        for dump in self._dumps:
            if dump.data is not None:
                dump.data.close()

    def _run(self) -> None:
        for dump in self._dumps:
            self._slots.acquire()
            if self._stopping.is_set():
                return
            try:
                self._dump(dump)
            except BaseException as exc:  # raised by `write`, at the dump's place in the archive
                dump.failure = exc
            finally:
                dump.done.set()

    def _dump(self, dump: _Dump) -> None:
        directory = tempfile.gettempdir() if self._spool_dir is None else str(self._spool_dir)
        try:
            dump.data = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by `write` or on exit)
        except OSError as exc:
            raise dump.source.unspooled(directory, exc.strerror or str(exc)) from exc
        try:
            dump.source.dump_into(dump.data, dump.warnings, self._started)
        except DumpFailed as failure:
            if _full(dump.data):  # the tool's own words for it vary: the task says so in its terms
                raise dump.source.unspooled(directory, f"{os.strerror(errno.ENOSPC)} ({failure.reason})") from None
            raise

    def _started(self, tool: subprocess.Popen[bytes]) -> None:
        self._tool = tool
        if self._stopping.is_set():  # stopped while it started: `__exit__` may not have seen it
            tool.kill()


def _full(spool: IO[bytes]) -> bool:
    """Whether the file system holding `spool` has no room left (less than 1 MiB: a tool's last
    write fails with a partial block to spare)."""
    usage = os.fstatvfs(spool.fileno())
    return usage.f_bfree * usage.f_frsize < 1 << 20


def _read_text(handle: IO[bytes]) -> str:
    handle.seek(0)
    return trimmed(handle.read().decode("utf-8", "replace"))
