"""`hostbackup worker`: run backup tasks from the queue (standalone, or as a child of `serve`)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import threading
from types import FrameType

import click

from hostbackup.config import Settings
from hostbackup.home import open_home
from hostbackup.jobs import jobs_for
from hostbackup.tasks.worker import Worker

PR_SET_PDEATHSIG = 1


class Shutdown(BaseException):
    """Raised by SIGTERM/SIGINT in the main thread; a BaseException so no `except Exception` eats it."""

    def __init__(self) -> None:
        super().__init__("The service was shut down while the task ran.")


def _terminate_with_parent() -> None:
    """Linux: get SIGTERM when the serving process dies, even by SIGKILL (no orphaned backups)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@click.command()
@click.option("--log-level", default="info", show_default=True)
@click.option("--supervised", is_flag=True, hidden=True, help="Started by `serve`: end when the server process ends.")
@click.pass_obj
def worker(settings: Settings, log_level: str, supervised: bool) -> None:
    """Claim and run queued tasks until stopped (SIGTERM / Ctrl-C)."""
    if supervised:
        _terminate_with_parent()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    services = open_home(settings, announce=lambda _text: None)
    stop = threading.Event()

    def shutdown(_signum: int, _frame: FrameType | None) -> None:
        # no threading primitives here: the main thread may hold their locks (deadlock)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Shutdown  # interrupts a running job: it is failed with this reason and cleaned up

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner = Worker(services.db, jobs_for(services), lease_seconds=settings.lease_seconds)
    with contextlib.suppress(Shutdown):
        runner.loop(stop)
