"""`hostbackup worker`: run backup tasks from the queue (standalone, or as a child of `serve`)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType

import click

from hostbackup.config import Settings
from hostbackup.home import open_home
from hostbackup.jobs import jobs_for
from hostbackup.tasks.worker import Worker


class Shutdown(Exception):
    def __init__(self) -> None:
        super().__init__("The service was shut down while the task ran.")


@click.command()
@click.option("--log-level", default="info", show_default=True)
@click.pass_obj
def worker(settings: Settings, log_level: str) -> None:
    """Claim and run queued tasks until stopped (SIGTERM / Ctrl-C)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    services = open_home(settings, announce=lambda _text: None)
    stop = threading.Event()

    def shutdown(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        raise Shutdown  # interrupts a running job: it is failed with this reason and cleaned up

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner = Worker(services.db, jobs_for(services), lease_seconds=settings.lease_seconds)
    with contextlib.suppress(Shutdown):
        runner.loop(stop)
