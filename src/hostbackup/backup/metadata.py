"""The metadata file beside a backup's volumes: what listing, download and verify read.

It is written last, after every volume is in place, so a backup exists exactly when its
metadata file does. It holds no secrets: owner, times, description, options, volumes with
sizes and SHA-256, and what the archive contains.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hostbackup.backup.volumes import Volume
from hostbackup.storage.layout import is_safe_name

FORMAT = "hostbackup-backup/1"
SUFFIX = ".meta.json"


@dataclass(frozen=True)
class BackupMeta:
    name: str  # backup name: `<base>_<stamp><ext>`; volumes are this name or `<name>.NNN`
    owner_kind: str
    owner_id: int | None
    owner_name: str
    created: int
    description: str
    task_id: int | None
    compression: str  # "zstd" or "none"
    options: dict[str, Any]
    volumes: list[Volume]
    members: int = 0
    content_bytes: int = 0
    webspaces: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    format: str = FORMAT

    @property
    def file_name(self) -> str:
        return self.name + SUFFIX

    @property
    def volumes_vouch(self) -> bool:
        """Whether the volumes' SHA-256 vouch for every member: they were taken from the stream that a
        backup wrote, or on import after the members matched the archive's SHA256SUMS."""
        return not self.options.get("imported") or self.options.get("intact") is True

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BackupMeta:
        """Parse a metadata file, refusing (ValueError) one whose names could reach beyond its backup:
        the files a backup's operations open, size and remove are named by it, and an owner's storage
        is where uploads are imported."""
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError("not a hostbackup metadata file")
        raw["volumes"] = [Volume(**volume) for volume in raw["volumes"]]
        meta = cls(**raw)
        if not _own_names(meta):
            raise ValueError("metadata names files that are not its backup's volumes")
        return meta


def _own_names(meta: BackupMeta) -> bool:
    """The backup's name is a plain file name and its volumes are `NAME` or `NAME.NNN`."""
    if not is_safe_name(meta.name) or meta.name.endswith(SUFFIX) or not meta.volumes:
        return False
    return all(
        volume.name == meta.name
        or (volume.name.startswith(meta.name + ".") and volume.name[len(meta.name) + 1 :].isdigit())
        for volume in meta.volumes
    )


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
