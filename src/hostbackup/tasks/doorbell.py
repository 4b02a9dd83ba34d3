"""Waking idle workers the moment a task is queued, instead of at their next poll.

Workers poll the queue (`Worker.loop`, every 0.1 s), so a task used to wait up to 0.1 s before
it started: half of a configuration-only backup. A FIFO in the home (`tmp/doorbell`) cuts that
short: a commit that queued a task writes a byte into it (`ring_on_commit`), and an idle worker
waiting on it (`Doorbell.wait`) wakes at once. It is best effort on purpose: no worker listening,
a full FIFO, or workers on other machines sharing a PostgreSQL queue only mean that the next poll
finds the task, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import stat
from pathlib import Path

from sqlalchemy.orm import Session

from hostbackup.db.engine import Database

log = logging.getLogger(__name__)

#: Set in `Session.info` by `queue.enqueue`; the commit of that session rings.
QUEUED = "hostbackup.task_queued"

_FLAGS = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def ring(path: Path) -> None:
    """Wake a worker waiting on `path`; nothing happens when none is (or the FIFO is missing)."""
    try:
        fd = os.open(path, os.O_WRONLY | _FLAGS)
    except OSError:  # no FIFO yet, or no process has it open for reading (ENXIO)
        return
    try:
        with contextlib.suppress(OSError):  # full: plenty of rings are pending already
            os.write(fd, b"\0")
    finally:
        os.close(fd)


def ring_on_commit(db: Database, path: Path) -> None:
    """Ring after every commit of `db` that queued a task."""

    def after_commit(session: Session) -> None:
        if session.info.pop(QUEUED, False):
            ring(path)

    db.after_commit(after_commit)


class Doorbell:
    """The worker's end: `wait` returns early when a task was queued."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        # O_RDWR: this process is a writer too, so the FIFO never reads as end of file when idle
        self._fd = os.open(path, os.O_RDWR | _FLAGS)
        if not stat.S_ISFIFO(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            raise OSError(f"{path} is not a FIFO")

    @classmethod
    def open(cls, path: Path) -> Doorbell | None:
        """The doorbell at `path`, or None (with a warning) where there cannot be one: workers poll."""
        try:
            return cls(path)
        except OSError as exc:
            log.warning("no doorbell at %s (%s): idle workers only poll the queue", path, exc)
            return None

    def wait(self, seconds: float) -> bool:
        """Until a ring or `seconds`; True when rung. Takes up to 4096 pending rings at once: one
        wake-up is enough for a worker, which then claims tasks until the queue is empty."""
        ready, _, _ = select.select([self._fd], [], [], seconds)
        if not ready:
            return False
        try:
            return bool(os.read(self._fd, 4096))
        except BlockingIOError:  # another worker took them
            return False

    def close(self) -> None:
        os.close(self._fd)
