"""A directory tree as content: web files of a webspace, or one mailbox's Maildir."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hostbackup.backup.archive import ArchiveWriter


@dataclass(frozen=True)
class TreeSource:
    root: Path
    arcprefix: str
    webspace: str

    def write(self, archive: ArchiveWriter) -> None:
        if self.root.is_dir():
            archive.add_tree(self.root, self.arcprefix)
        else:
            archive.warnings.append(f"missing content directory: {self.root}")

    def estimated_bytes(self) -> int:
        total = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    continue
        return total
