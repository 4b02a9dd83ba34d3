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
    # A webspace's root is the server's, and may be a link in an existing hosting layout. A mailbox's
    # Maildir sits in a folder a restore writes into: as a link it could lead anywhere on the host.
    root_may_be_link: bool = True

    def write(self, archive: ArchiveWriter) -> None:
        if not self.root_may_be_link and self.root.is_symlink():
            archive.warnings.append(f"not backed up: {self.root} is a symbolic link, not a Maildir")
        elif self.root.is_dir():
            archive.add_tree(self.root, self.arcprefix)
        else:
            archive.warnings.append(f"missing content directory: {self.root}")
