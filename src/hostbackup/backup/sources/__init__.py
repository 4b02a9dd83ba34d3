"""Content sources: each puts one kind of content into the archive stream.

A plan is a list of sources; the runner calls `write(archive)` on each in order. Adding a kind
of content (database dumps) means adding a source class, not changing the runner.
"""

from __future__ import annotations

from typing import Protocol

from hostbackup.backup.archive import ArchiveWriter


class Source(Protocol):
    @property
    def webspace(self) -> str:
        """Shown as the task's current item while this source is written."""

    def write(self, archive: ArchiveWriter) -> None: ...
