"""Local-disk implementation of the `Storage` protocol.

The backup runner keeps using its own staging folder and `VolumeWriter` for local backups (they
fsync and publish a whole backup at once); this transport exists so that everything that works
on "a storage" (the contract tests, `ftp-check`-style probes, future restore code) has a local
peer that obeys exactly the same rules as FTP.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from hostbackup.storage.base import CHUNK, StorageError, check_name, copy_into, part_name
from hostbackup.storage.layout import is_safe_name


class _LocalWrite:
    def __init__(self, directory: Path, name: str) -> None:
        self.final = directory / check_name(name)
        self.temp = directory / part_name(name)
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.handle = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        written = self.handle.write(data)
        self.size += written
        return written

    def commit(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if self.temp.stat().st_size != self.size:
            raise StorageError(f"{self.temp} holds {self.temp.stat().st_size} bytes, {self.size} were written")
        os.replace(self.temp, self.final)
        return self.size

    def abort(self) -> None:
        self.handle.close()
        self.temp.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def description(self) -> str:
        return str(self.directory)

    def open_write(self, name: str) -> _LocalWrite:
        try:
            return _LocalWrite(self.directory, name)
        except OSError as error:
            raise StorageError(f"cannot write {name} in {self.directory} ({error.strerror})") from error

    def write(self, name: str, source: BinaryIO) -> int:
        return copy_into(self.open_write(name), source)

    def read(self, name: str, sink: Callable[[bytes], object]) -> int:
        total = 0
        try:
            with (self.directory / check_name(name)).open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    sink(chunk)
                    total += len(chunk)
        except FileNotFoundError as error:
            raise StorageError(f"{name} does not exist in {self.directory}") from error
        return total

    def list(self) -> list[str]:
        return sorted(
            entry.name
            for entry in os.scandir(self.directory)
            if is_safe_name(entry.name) and entry.is_file(follow_symlinks=False)
        )

    def size(self, name: str) -> int | None:
        with contextlib.suppress(FileNotFoundError):
            return (self.directory / check_name(name)).lstat().st_size
        return None

    def remove(self, name: str) -> bool:
        found = False
        for path in (self.directory / check_name(name), self.directory / part_name(name)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                found = True
        return found

    def close(self) -> None:
        """Nothing to release."""
