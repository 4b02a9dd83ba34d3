"""Verifying a backup: every volume's size and SHA-256 against the metadata, and (deep) every
member against the archive's own checksum list. The first bad volume or member is named, so an
operator knows which file to fetch again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hostbackup.backup.metadata import BackupMeta
from hostbackup.restore.reader import check_archive

CHUNK = 1024 * 1024


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_backup(directory: Path, meta: BackupMeta, *, deep: bool) -> VerifyReport:
    paths = [directory / volume.name for volume in meta.volumes]
    for volume, path in zip(meta.volumes, paths, strict=True):
        try:
            size = path.stat().st_size
        except OSError:
            return VerifyReport(
                meta.name, len(paths), problem=f"volume {volume.name} is missing", bad_volume=volume.name
            )
        if size != volume.size:
            problem = f"volume {volume.name} holds {size} bytes, {volume.size} expected"
            return VerifyReport(meta.name, len(paths), problem=problem, bad_volume=volume.name)
        if _sha256(path) != volume.sha256:
            problem = f"volume {volume.name} does not match its SHA-256"
            return VerifyReport(meta.name, len(paths), problem=problem, bad_volume=volume.name)
    if not deep:
        return VerifyReport(meta.name, len(paths))
    check = check_archive(paths)
    if check.intact:
        return VerifyReport(meta.name, len(paths), members=check.members)
    bad_member = check.mismatched[0] if check.mismatched else ""
    return VerifyReport(meta.name, len(paths), members=check.members, problem=check.problem, bad_member=bad_member)
