"""`hostbackup backup`: run a backup now, in this process, with a progress bar.

For operators without an XML client. The task is recorded like an API task (it shows in
get-tasks-info and its backup in get-local-backup-list), but it is claimed and run right here,
as the administrator, instead of waiting for a worker.
"""

from __future__ import annotations

import click

from hostbackup.accounts.users import ADMIN, ADMIN_ID, Role, find_user
from hostbackup.cli.running import run_here
from hostbackup.config import Settings
from hostbackup.errors import ApiError
from hostbackup.home import open_home
from hostbackup.tasks.task import TargetKind, TaskRequest


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
    except ApiError as err:
        raise click.ClickException(err.text) from None
    run_here(services, request)
