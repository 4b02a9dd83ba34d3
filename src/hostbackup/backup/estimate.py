"""How big a backup will be, for progress: without delaying the backup to find out.

The last backup of the owner with the same options is usually a close guess and costs nothing.
Without one, `du` measures the content trees in a process of its own, beside the archive writer
(a walk in Python would compete with the writer for the interpreter); the figure appears in the
task's progress as soon as `du` is done. It runs under `SCHED_IDLE`, on CPU time nothing else
wants: a backup keeps both cores of a small server busy, and `du`'s 0.15 CPU seconds for the
52 000 files of the bench's corpus were taken from it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hostbackup.backup.catalog import Catalog
from hostbackup.db.tables import Task
from hostbackup.tasks.worker import Progress


class Estimate:
    def __init__(self, known: int | None, roots: Sequence[Path]) -> None:
        self.value = known
        self._du: subprocess.Popen[bytes] | None = None
        if known is None and roots:
            command = ["du", "-s", "-b", "--", *map(str, roots)]
            self._du = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            with contextlib.suppress(OSError, AttributeError):  # not Linux, or gone already
                os.sched_setscheduler(self._du.pid, os.SCHED_IDLE, os.sched_param(0))

    @classmethod
    def start(cls, catalog: Catalog, task: Task, roots: Sequence[Path]) -> Estimate:
        for meta in reversed(catalog.backups()):
            if meta.options == task.options and meta.content_bytes:
                return cls(meta.content_bytes, ())
        return cls(None, roots)

    def poll(self) -> int | None:
        if self.value is None and self._du is not None and self._du.poll() is not None:
            output = self._du.communicate()[0].decode(errors="replace")
            self.value = sum(int(line.split()[0]) for line in output.splitlines() if line.split()[:1] != [""])
            self._du = None
        return self.value

    def feeding(self, progress: Progress) -> Progress:
        """`progress`, with `bytes_estimated` added once it is known."""

        def report(**fields: Any) -> None:
            if "bytes_estimated" not in fields and (value := self.poll()) is not None:
                fields["bytes_estimated"] = value
            progress(**fields)

        return report

    def close(self) -> None:
        if self._du is not None:
            self._du.kill()
            self._du.wait()
            self._du = None
