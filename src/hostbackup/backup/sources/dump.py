"""A database dump as content: a dump tool's standard output as one archive member.

The tool writes to a pipe that is read in 1 MiB chunks (`DumpSource.chunks`); its standard error
goes to a temporary file, so a chatty tool can never block on a full pipe. A tar header must state
the size first, so the output is spooled before it goes into the archive.

A backup runs its dumps ahead (`DumpsAhead`): on a thread, in plan order, each into a temporary
file, while the archive takes the web files before them; each goes in at its place in the plan
(`ArchiveWriter.add_spooled`). A dump mostly waits for its database server: in a 1 GiB backup
with 104 MB of databases the worker had spent a quarter of its time waiting for the dump tools'
output when it read them in turn. (`DumpSource.write`, the plain `Source` way, still reads a dump
in turn, spooling it through `ArchiveWriter.add_stream`.)

A dump is only as good as its exit status: when the tool exits non-zero the iterator raises
`DumpFailed` after the last chunk, nothing of that dump reaches the archive, and the task fails
with the tool's message at the dump's place. An empty or truncated dump is never recorded as a
success.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from hostbackup.accounts.databases import ServerAccess, trimmed
from hostbackup.backup.archive import COPY_BUFFER_SIZE, ArchiveWriter
from hostbackup.backup.sources import Source

#: Dumps held at once, each in a temporary file: one finished and waiting for its turn in the
#: archive, one running. Disk needs room for the two largest.
DUMPS_HELD = 2


class DumpFailed(Exception):
    """The dump tool failed; the message names the database, the server and the tool's error."""


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
        archive.add_stream(self.arcname, self.chunks(archive.warnings))

    def chunks(
        self, warnings: list[str], started: Callable[[subprocess.Popen[bytes]], object] = lambda _: None
    ) -> Generator[bytes, None, None]:
        """The tool's output; raises `DumpFailed` at the end when the tool did not succeed.

        `started` is given the tool's process, for a thread that may have to kill it."""
        environment = {**os.environ, **self.access.environment()}
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=errors, env=environment)
            except OSError as exc:
                raise self._failed(f"{self.command[0]}: {exc.strerror}") from None
            started(process)
            with process:  # leaving it closes the pipe and waits for the tool
                assert process.stdout is not None
                try:
                    yield from _read_all(process.stdout)
                except BaseException:  # the archive gave up on this member (or the task stops)
                    process.kill()
                    raise
            message = _read_text(errors)
        if process.returncode != 0:
            raise self._failed(message or f"{self.command[0]} exited with status {process.returncode}")
        if message:
            warnings.append(f"{self._what()}: {message}")

    def _what(self) -> str:
        return f"database {self.database} ({self.access})"

    def _failed(self, message: str) -> DumpFailed:
        return DumpFailed(f"Dump of {self._what()} failed: {trimmed(message)}")

    def unspooled(self, directory: str, error: OSError) -> DumpFailed:
        """The failure of a dump whose output could not be held in `directory` (full, gone)."""
        return self._failed(f"could not hold its output in {directory}: {error.strerror or error}")


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
            raise dump.source.unspooled(directory, exc) from exc
        chunks = dump.source.chunks(dump.warnings, self._started)
        try:
            for chunk in chunks:
                if self._stopping.is_set():
                    return
                try:
                    dump.data.write(chunk)
                except OSError as exc:  # the disk is full: the task says so, in its own terms
                    raise dump.source.unspooled(directory, exc) from exc
        finally:
            chunks.close()  # kills the tool when the loop ended early

    def _started(self, tool: subprocess.Popen[bytes]) -> None:
        self._tool = tool
        if self._stopping.is_set():  # stopped while it started: `__exit__` may not have seen it
            tool.kill()


def _read_all(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(COPY_BUFFER_SIZE):
        yield chunk


def _read_text(handle: IO[bytes]) -> str:
    handle.seek(0)
    return trimmed(handle.read().decode("utf-8", "replace"))
