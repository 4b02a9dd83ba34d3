"""The `Storage` protocol every backup transport implements (local disk, FTP, FTPS).

One small interface so that the backup runner, `ftp-check` and one shared contract test
(tests/test_storage_contract.py) treat every transport alike. A storage is a flat directory of
backup files; it knows nothing of accounts. Its rules:

* names are plain file names (no `/`, no leading `.`, not empty), checked *before* any I/O, so a
  name from a request can never reach outside the directory or hit a temporary file;
* writes are streamed and atomic: bytes go to `.<name>.part`, which is renamed to `<name>` only
  once complete and size-checked, so a reader never sees half a volume under its final name;
* failures are `StorageError`s whose text names the cause and whose `transient` flag tells the
  retry helper whether trying again can help.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, Protocol

from hostbackup.storage.layout import is_safe_name

CHUNK = 1024 * 1024


class StorageError(Exception):
    """A transport failure; `transient` ones (lost connection, 4xx, timeout) are worth retrying."""

    def __init__(self, text: str, *, transient: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.transient = transient


class UnsafeName(ValueError):
    """A file name that could leave the storage directory or collide with temporary files."""


def check_name(name: str) -> str:
    if not is_safe_name(name):
        raise UnsafeName(f"unsafe file name {name!r}")
    return name


def part_name(name: str) -> str:
    """The temporary name a file is uploaded under until it is complete."""
    return f".{check_name(name)}.part"


class WriteStream(Protocol):
    """A file being written: feed it with `write`, then `commit` (rename into place) or `abort`."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def commit(self) -> int:
        """Finish, verify the stored size and rename to the final name; returns the size."""

    def abort(self) -> None:
        """Remove the temporary file; safe after a failure and after `commit`."""


class Storage(Protocol):
    @property
    def description(self) -> str:
        """Where this storage is, for messages (`ftp://user@host:21/dir`); never holds a password."""

    def open_write(self, name: str) -> WriteStream: ...

    def write(self, name: str, source: BinaryIO) -> int:
        """Store everything `source` yields under `name` (atomically); returns the size."""

    def read(self, name: str, sink: Callable[[bytes], object]) -> int:
        """Stream the file `name` into `sink`; returns the number of bytes."""

    def list(self) -> list[str]:
        """Final names of the files present (temporary and hidden files are left out)."""

    def size(self, name: str) -> int | None:
        """Size of `name`, None when it does not exist."""

    def remove(self, name: str) -> bool:
        """Remove `name` and its temporary file; True when anything was there."""

    def close(self) -> None: ...


def copy_into(stream: WriteStream, source: BinaryIO) -> int:
    """Feed `source` into `stream` chunk by chunk and commit; aborts on any failure."""
    try:
        while chunk := source.read(CHUNK):
            stream.write(chunk)
        return stream.commit()
    except BaseException:
        stream.abort()
        raise
