"""`hostbackup backup`: run a backup now, in this process, with a progress bar.

For operators without an XML client. The task is recorded like an API task (it shows in
get-tasks-info and its backup in get-local-backup-list), but it is claimed and run right here,
as the administrator, instead of waiting for a worker.
"""

from __future__ import annotations

import threading

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from hostbackup.accounts.users import ADMIN_ID, Role, find_user
from hostbackup.accounts.users import Caller as AccountCaller
from hostbackup.config import Settings
from hostbackup.db.tables import Task
from hostbackup.errors import ApiError
from hostbackup.home import open_home
from hostbackup.jobs import jobs_for
from hostbackup.tasks import queue
from hostbackup.tasks.task import TargetKind, TaskRequest, TaskState
from hostbackup.tasks.worker import Worker, worker_name

ADMIN = AccountCaller(ADMIN_ID, Role.ADMIN, "admin")


@click.group()
def backup() -> None:
    """Run a backup now."""


@backup.command("customer")
@click.argument("login")
@click.option("--split-size", default=0, show_default=True, type=click.IntRange(min=0), help="Volume size in KiB.")
@click.option("--prefix", default="", help="File name prefix.")
@click.option("--description", default="", help="Free comment shown in backup lists.")
@click.option("--only-hosting", is_flag=True, help="Everything but mail content.")
@click.option("--only-mail", is_flag=True, help="Mail content only (and configuration).")
@click.option("--only-configuration", is_flag=True, help="Configuration only, no content.")
@click.pass_obj
def backup_customer(
    settings: Settings,
    login: str,
    split_size: int,
    prefix: str,
    description: str,
    only_hosting: bool,
    only_mail: bool,
    only_configuration: bool,
) -> None:
    """Back up customer LOGIN: configuration, web files and mail of all its webspaces."""
    if only_hosting and only_mail:
        raise click.UsageError("--only-hosting and --only-mail exclude each other")
    services = open_home(settings)
    options = {"split_size": split_size, "only_hosting": only_hosting, "only_mail": only_mail,
               "only_configuration": only_configuration}  # fmt: skip
    try:
        with services.db.session() as session:
            customer = find_user(session, ADMIN, Role.CUSTOMER, login=login)
            request = TaskRequest(TargetKind.CUSTOMER, customer.id, customer.login, ADMIN_ID, prefix=prefix,
                                  description=description, options=options)  # fmt: skip
            task_id = queue.enqueue(session, request).id
    except ApiError as err:
        raise click.ClickException(err.text) from None
    runner = Worker(services.db, jobs_for(services), lease_seconds=settings.lease_seconds, name=worker_name())
    task = queue.claim(
        services.db, runner.name, max_running=None, lease_seconds=settings.lease_seconds, task_id=task_id
    )
    if task is None:
        raise click.ClickException(f"task {task_id} was taken by another worker; follow it with get-tasks-info")
    thread = threading.Thread(target=runner.execute, args=(task,), daemon=True)
    thread.start()
    finished = _follow(services.db, task_id, thread)
    if finished.state != TaskState.FINISHED.value:
        raise click.ClickException(f"task {task_id} {finished.state}: {finished.error}")
    for warning in finished.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"task {task_id} finished: {finished.filename}")


def _follow(db: object, task_id: int, thread: threading.Thread) -> Task:
    from hostbackup.db.engine import Database

    assert isinstance(db, Database)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        line = bar.add_task("planning", total=None)
        while thread.is_alive():
            thread.join(0.2)
            with db.session() as session:
                task = session.get(Task, task_id)
                assert task is not None
                bar.update(line, description=task.current_item or "archiving", completed=task.bytes_done,
                           total=task.bytes_estimated or None)  # fmt: skip
    with db.session() as session:
        final = session.get(Task, task_id)
        assert final is not None
        return final
