"""The backups in one owner's local storage: list, find by file name, name new ones, remove.

A backup is its metadata file plus the volumes it names. Files in the directory that no
metadata claims (an imported foreign file, say) are reported as "not a backup".
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from hostbackup.backup.metadata import SUFFIX, BackupMeta
from hostbackup.storage.layout import is_safe_name, sanitise

RESERVED = ".reserved"
STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class ForeignFile:
    name: str
    size: int
    created: int


class Catalog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def backups(self) -> list[BackupMeta]:
        """Every complete backup, oldest first."""
        found = []
        for path in self._entries(SUFFIX):
            try:
                found.append(BackupMeta.from_json(path.read_bytes()))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # unreadable metadata: not a backup we can vouch for
        return sorted(found, key=lambda meta: (meta.created, meta.name))

    def foreign_files(self, backups: list[BackupMeta] | None = None) -> list[ForeignFile]:
        """Files no backup claims; pass `backups` when already read, to read the metadata once."""
        claimed = {volume.name for meta in (self.backups() if backups is None else backups) for volume in meta.volumes}
        foreign = []
        for path in sorted(self._entries("")):
            name = path.name
            if is_safe_name(name) and name not in claimed and not name.endswith(SUFFIX):
                stat = path.lstat()
                foreign.append(ForeignFile(name, stat.st_size, int(stat.st_mtime)))
        return foreign

    def find(self, file_name: str) -> BackupMeta | None:
        """The backup that one of whose files (or the backup name) is `file_name`."""
        if not is_safe_name(file_name):
            return None
        for meta in self.backups():
            if file_name == meta.name or any(volume.name == file_name for volume in meta.volumes):
                return meta
        return None

    def remove(self, meta: BackupMeta) -> None:
        """Metadata first, so the backup disappears from lists before its volumes go."""
        (self.directory / meta.file_name).unlink(missing_ok=True)
        for volume in meta.volumes:
            (self.directory / volume.name).unlink(missing_ok=True)

    def reserve_name(self, prefix: str, extension: str, *, holder: str, now: float | None = None) -> str:
        """`<base>_<YYMMDDhhmm><ext>`, the stamp advanced by a minute until unique (spec §4.1).

        The name is claimed by an exclusive marker file holding `holder` (the task id), so two
        tasks of one owner never collide and a crashed task's marker can be found again.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        base = sanitise(prefix) or "backup"
        moment = now if now is not None else time.time()
        taken = {entry.name for entry in os.scandir(self.directory)}
        while True:
            name = f"{base}_{time.strftime('%y%m%d%H%M', time.localtime(moment))}{extension}"
            marker = self.directory / f".{name}{RESERVED}"
            if not any(existing.startswith(name) or existing == marker.name for existing in taken):
                with contextlib.suppress(FileExistsError):
                    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as handle:
                        handle.write(holder)
                    return name
            moment += 60

    def release(self, holder: str) -> None:
        """Drop the name reservations held by `holder`."""
        for path in self._entries(RESERVED, hidden=True):
            with contextlib.suppress(OSError):
                if path.read_text() == holder:
                    path.unlink()

    def staging(self, task_id: int) -> Path:
        return self.directory / f"{STAGING_PREFIX}{task_id}"

    def _entries(self, suffix: str, *, hidden: bool = False) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [
            Path(entry.path)
            for entry in os.scandir(self.directory)
            if entry.name.endswith(suffix)
            and entry.name.startswith(".") == hidden
            and entry.is_file(follow_symlinks=False)
        ]
