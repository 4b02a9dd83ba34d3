"""`hostbackup admin`: the administrator account."""

from __future__ import annotations

import click

from hostbackup.accounts.users import ADMIN_LOGIN, set_password
from hostbackup.config import Settings
from hostbackup.errors import ApiError
from hostbackup.home import open_home


@click.group()
def admin() -> None:
    """Administrator account."""


@admin.command("set-password")
@click.password_option("--password", prompt="New administrator password")
@click.pass_obj
def set_password_command(settings: Settings, password: str) -> None:
    """Change the administrator's password."""
    services = open_home(settings)
    try:
        with services.db.session() as session:
            set_password(session, ADMIN_LOGIN, password)
    except ApiError as err:
        raise click.ClickException(err.text) from None
    click.echo("Administrator password changed.")
