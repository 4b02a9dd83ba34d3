"""Verifying a backup: every volume's size and SHA-256 against the metadata, and (deep) every
member against the archive's own checksum list. The first bad volume or member is named, so an
operator knows which file to fetch again. Works on local and FTP storage alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostbackup.backup.metadata import BackupMeta
from hostbackup.restore.decompress import CHUNK, decompressed
from hostbackup.restore.reader import VolumeMismatch, check_stream
from hostbackup.restore.sources import VolumeSource
from hostbackup.storage.base import StorageError


@dataclass(frozen=True)
class VerifyReport:
    backup: str
    volumes: int
    members: int = 0
    problem: str = ""
    bad_volume: str = ""
    bad_member: str = ""

    @property
    def intact(self) -> bool:
        return not self.problem


def verify_backup(source: VolumeSource, meta: BackupMeta, *, deep: bool) -> VerifyReport:
    count = len(meta.volumes)
    sized = source.size_problem(meta)
    if sized is not None:
        return VerifyReport(meta.name, count, problem=sized[1], bad_volume=sized[0])
    try:
        if not deep:
            with source.open(meta) as raw:
                while raw.read(CHUNK):
                    pass
            return VerifyReport(meta.name, count)
        check = check_stream(decompressed(source.open(meta)))
    except VolumeMismatch as exc:
        return VerifyReport(meta.name, count, problem=str(exc), bad_volume=exc.volume)
    except (StorageError, OSError) as exc:
        return VerifyReport(meta.name, count, problem=f"reading the volumes failed: {exc}")
    if check.intact:
        return VerifyReport(meta.name, count, members=check.members)
    bad_member = check.mismatched[0] if check.mismatched else ""
    return VerifyReport(meta.name, count, members=check.members, problem=check.problem, bad_member=bad_member)
