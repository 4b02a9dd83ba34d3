"""A directory tree as content: web files of a webspace, or one mailbox's Maildir."""

from __future__ import annotations

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
