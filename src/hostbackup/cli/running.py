"""Running one task in the CLI process, with a progress bar: shared by `backup` and `restore`.

The task is recorded like an API task (get-tasks-info shows it) but claimed and run right
here, instead of waiting for a worker. The bar is drawn only on a terminal: into a pipe or a log
rich draws nothing, and its polling and refreshing took 0.1-0.2 CPU seconds of a 1 GiB restore.
"""

from __future__ import annotations

import sys
import threading

import click

from hostbackup.db.engine import Database
from hostbackup.db.tables import Task
from hostbackup.jobs import jobs_for
from hostbackup.tasks import queue
from hostbackup.tasks.task import TaskRequest, TaskState
from hostbackup.tasks.worker import Worker, worker_name
from hostbackup.xmlapi.context import Services


def run_here(services: Services, request: TaskRequest) -> Task:
    """Record `request` as claimed by this process and run it; returns the ended task or raises
    ClickException."""
    lease = services.settings.lease_seconds
    runner = Worker(services.db, jobs_for(services), lease_seconds=lease, name=worker_name())
    with services.db.session() as session:
        task = queue.enqueue_claimed(session, request, runner.name, lease_seconds=lease)
    task_id = task.id
    thread = threading.Thread(target=runner.execute, args=(task,), daemon=True)
    thread.start()
    finished = _follow(services.db, task_id, thread)
    for warning in finished.warnings:
        click.echo(f"warning: {warning}", err=True)
    if finished.state != TaskState.FINISHED.value:
        raise click.ClickException(f"task {task_id} {finished.state}: {finished.error}")
    if finished.summary:
        click.echo(finished.summary)
    click.echo(f"task {task_id} finished: {finished.filename}")  # last: the line a script reads
    return finished


def _follow(db: Database, task_id: int, thread: threading.Thread) -> Task:
    if sys.stdout.isatty():
        _draw_progress(db, task_id, thread)
    thread.join()
    with db.session() as session:
        final = session.get(Task, task_id)
        assert final is not None
        return final


def _draw_progress(db: Database, task_id: int, thread: threading.Thread) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        line = bar.add_task("planning", total=None)
        while thread.is_alive():
            thread.join(0.2)
            with db.session() as session:
                task = session.get(Task, task_id)
                assert task is not None
                bar.update(line, description=task.current_item or "working", completed=task.bytes_done,
                           total=task.bytes_estimated or None)  # fmt: skip
