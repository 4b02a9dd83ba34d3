"""Where a backup's volumes are read from: the owner's local storage or its FTP storage.

Both give the same things: the backup's metadata, a cheap size check of every volume, one
stream of all volumes in order, and the decompressed archive for a restore. The FTP stream is fed
by a background download (FTP pushes data) through a small bounded queue, so memory stays flat,
and each volume is hashed as it passes: one that does not match its SHA-256 stops the stream with
an error naming it. Local volumes, checked in full beside a restore, are read by ``zstd`` itself.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session

from hostbackup.backup.catalog import Catalog
from hostbackup.backup.metadata import SUFFIX, BackupMeta
from hostbackup.backup.volumes import Volume
from hostbackup.errors import NotConfigured, NotSupported
from hostbackup.restore.decompress import CHUNK, TarStream, decompressed
from hostbackup.restore.reader import ConcatenatedReader, VolumeMismatch, open_stream
from hostbackup.storage import remote_settings
from hostbackup.storage.base import Storage, StorageError
from hostbackup.storage.ftp import FtpStorage
from hostbackup.storage.layout import Owner, is_safe_name, owner_dir
from hostbackup.xmlapi.context import Services

QUEUE_CHUNKS = 16  # at most this many downloaded chunks wait for the reader


class VolumeSource(Protocol):
    def find(self, name: str) -> BackupMeta | None: ...

    def holds(self, name: str) -> bool:
        """Whether a file of this name is there, backup or not."""

    def size_problem(self, meta: BackupMeta) -> tuple[str, str] | None:
        """(volume, problem) for the first missing or wrongly sized volume."""

    def open(self, meta: BackupMeta) -> io.BufferedReader:
        """All volumes as one raw stream, each checked against its SHA-256 as it ends."""

    def tar_stream(self, meta: BackupMeta) -> TarStream:
        """The decompressed archive, for a restore that checked the sizes (`size_problem`) and, for
        local volumes, puts nothing in place before `verify_backup` has passed."""

    def close(self) -> None: ...


class LocalVolumes:
    def __init__(self, directory: Path) -> None:
        self.catalog = Catalog(directory)

    def find(self, name: str) -> BackupMeta | None:
        return self.catalog.find(name)

    def holds(self, name: str) -> bool:
        return is_safe_name(name) and (self.catalog.directory / name).is_file()

    def size_problem(self, meta: BackupMeta) -> tuple[str, str] | None:
        for volume in meta.volumes:
            path = self.catalog.directory / volume.name
            size = path.stat().st_size if path.exists() else None
            if size != volume.size:
                return volume.name, _size_text(volume, size)
        return None

    def open(self, meta: BackupMeta) -> io.BufferedReader:
        return io.BufferedReader(ConcatenatedReader(self._paths(meta), meta.volumes), CHUNK)

    def tar_stream(self, meta: BackupMeta) -> TarStream:
        """zstd reads the files itself; their SHA-256 is checked by the caller, not again here."""
        return open_stream(self._paths(meta))

    def _paths(self, meta: BackupMeta) -> list[Path]:
        return [self.catalog.directory / volume.name for volume in meta.volumes]

    def close(self) -> None:
        pass


class RemoteVolumes:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def find(self, name: str) -> BackupMeta | None:
        for meta_name in sorted(entry for entry in self.storage.list() if entry.endswith(SUFFIX)):
            chunks: list[bytes] = []
            self.storage.read(meta_name, chunks.append)
            try:
                meta = BackupMeta.from_json(b"".join(chunks))
            except (ValueError, TypeError, KeyError):
                continue
            if name == meta.name or any(volume.name == name for volume in meta.volumes):
                return meta
        return None

    def holds(self, name: str) -> bool:
        return name in self.storage.list()

    def size_problem(self, meta: BackupMeta) -> tuple[str, str] | None:
        for volume in meta.volumes:
            size = self.storage.size(volume.name)
            if size != volume.size:
                return volume.name, _size_text(volume, size)
        return None

    def open(self, meta: BackupMeta) -> io.BufferedReader:
        return io.BufferedReader(_Downloaded(self.storage, meta.volumes), CHUNK)

    def tar_stream(self, meta: BackupMeta) -> TarStream:
        """Each volume's SHA-256 is checked as it streams: reading it twice would double the transfer."""
        return decompressed(self.open(meta))

    def close(self) -> None:
        self.storage.close()


def not_found_text(source: VolumeSource, name: str) -> str:
    """Why `find` found no backup for `name`: no such file, or a file that is listed with `not-backup`."""
    return f"The file {name} is not a backup" if source.holds(name) else f"The file {name} does not exist"


def _size_text(volume: Volume, size: int | None) -> str:
    if size is None:
        return f"volume {volume.name} is missing"
    return f"volume {volume.name} holds {size} bytes, {volume.size} expected"


class _Downloaded(io.RawIOBase):
    """The volumes as one readable stream, downloaded in a thread and checked volume by volume."""

    def __init__(self, storage: Storage, volumes: list[Volume]) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUE_CHUNKS)
        self._pending = b""
        self._done = False
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._download, args=(storage, volumes), daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item if isinstance(item, OSError) else OSError(str(item))
            if item is None:
                self._done = True
            else:
                self._pending = item
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        self._cancel.set()
        while self._thread.is_alive():  # unblock a producer waiting for room
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        super().close()

    def _download(self, storage: Storage, volumes: list[Volume]) -> None:
        try:
            for volume in volumes:
                digest = hashlib.sha256()

                def take(chunk: bytes, digest: hashlib._Hash = digest) -> None:
                    if self._cancel.is_set():
                        raise StorageError("restore cancelled")
                    digest.update(chunk)
                    self._queue.put(chunk)

                storage.read(volume.name, take)
                if digest.hexdigest() != volume.sha256:
                    raise VolumeMismatch(volume.name)
            self._queue.put(None)
        except BaseException as exc:  # handed to the reader, which raises it in the restoring thread
            if not self._cancel.is_set():
                self._queue.put(exc)


def volume_source(services: Services, session: Session, owner: Owner, *, remote: bool) -> VolumeSource:
    """The owner's local storage, or its FTP storage (1031 when that is not configured)."""
    if not remote:
        return LocalVolumes(owner_dir(services.settings.dumps_root, owner))
    endpoint = remote_settings.endpoint(session, services.vault, owner)
    if endpoint is None:
        raise NotConfigured("Remote storage is not configured.")
    return RemoteVolumes(FtpStorage(endpoint))


def remote_protocol(text: str | None) -> bool:
    """True for `ftp` (any case); None → local; anything else is 1017 as for backups."""
    if text is None:
        return False
    if text.lower() != "ftp":
        raise NotSupported(f"Protocol '{text}' is not supported.")
    return True
