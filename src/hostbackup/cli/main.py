"""The `hostbackup` command: one module per command group, each a thin layer over the library."""

from __future__ import annotations

from pathlib import Path

import click

from hostbackup.cli import admin, backup, demo, restore, serve, verify, worker
from hostbackup.cli.customer import customer
from hostbackup.cli.ftp import ftp_check
from hostbackup.cli.webspace import webspace
from hostbackup.config import Settings


@click.group()
@click.option("--home", type=click.Path(path_type=Path), help="Data directory (default: $HOSTBACKUP_HOME or ./var).")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Backup manager for web-hosting accounts, driven by the Plesk XML API."""
    ctx.obj = Settings.load(home)


cli.add_command(serve.serve)
cli.add_command(admin.admin)
cli.add_command(demo.demo)
cli.add_command(worker.worker)
cli.add_command(backup.backup)
cli.add_command(verify.verify)
cli.add_command(restore.restore)
cli.add_command(customer)
cli.add_command(webspace)
cli.add_command(ftp_check)


def main() -> None:
    cli(auto_envvar_prefix="HOSTBACKUP")
