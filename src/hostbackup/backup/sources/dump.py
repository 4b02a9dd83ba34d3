"""A database dump as content: a dump tool's standard output streamed into one archive member.

The tool writes to a pipe that is read in 1 MiB chunks and handed to `ArchiveWriter.add_stream`,
which spools them (bounded memory, then disk) because a tar header must state the size first.
Its standard error goes to a temporary file, so a chatty tool can never block on a full pipe.

A dump is only as good as its exit status: when the tool exits non-zero the iterator raises
`DumpFailed` after the last chunk, `add_stream` drops the spooled data, and the task fails with
the tool's message. An empty or truncated dump is never recorded as a success.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from hostbackup.accounts.databases import ServerAccess, trimmed
from hostbackup.backup.archive import COPY_BUFFER_SIZE, ArchiveWriter


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

    def chunks(self, warnings: list[str]) -> Iterator[bytes]:
        """The tool's output; raises `DumpFailed` at the end when the tool did not succeed."""
        environment = {**os.environ, **self.access.environment()}
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=errors, env=environment)
            except OSError as exc:
                raise self._failed(f"{self.command[0]}: {exc.strerror}") from None
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


def _read_all(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(COPY_BUFFER_SIZE):
        yield chunk


def _read_text(handle: IO[bytes]) -> str:
    handle.seek(0)
    return trimmed(handle.read().decode("utf-8", "replace"))
