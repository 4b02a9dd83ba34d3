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
from hostbackup.tasks.doorbell import Doorbell
from hostbackup.tasks.worker import RETIRE_SIGNAL, Interrupted, Worker

PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """Linux: get SIGTERM when the serving process dies, even by SIGKILL (no orphaned backups)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@click.command()
@click.option("--log-level", default="info", show_default=True)
@click.option("--supervised", is_flag=True, hidden=True, help="Started by `serve`: end when the server process ends.")
@click.pass_obj
def worker(settings: Settings, log_level: str, supervised: bool) -> None:
    """Claim and run queued tasks until stopped (SIGTERM / Ctrl-C; SIGUSR1: after the running task)."""
    if supervised:
        _terminate_with_parent()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    services = open_home(settings, announce=lambda _text: None, migrated=supervised)
    stop = threading.Event()
    doorbell = Doorbell.open(settings.doorbell_path)
    runner = Worker(services.db, jobs_for(services), lease_seconds=settings.lease_seconds, doorbell=doorbell)

    def shutdown(_signum: int, _frame: FrameType | None) -> None:
        # No locks here (the main thread may hold them). The flag ends the loop and the job even if
        # the exception lands somewhere that swallows it (a finaliser); the exception cuts waits short.
        # Later signals are ignored so that they cannot interrupt the cleanup of the task.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        runner.interrupt()
        raise Interrupted

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    signal.signal(RETIRE_SIGNAL, lambda _signum, _frame: runner.retire())
    with contextlib.suppress(Interrupted):
        runner.loop(stop)
