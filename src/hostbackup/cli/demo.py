"""`hostbackup demo`: seed demo accounts and content into a home."""

from __future__ import annotations

import click

from hostbackup.config import Settings
from hostbackup.demo import seed_demo
from hostbackup.home import open_home


@click.command()
@click.option("--port", default=8443, show_default=True, type=int, help="Port used in the printed curl command.")
@click.pass_obj
def demo(settings: Settings, port: int) -> None:
    """Create a demo reseller, customers, webspaces with web content and mailboxes with mail."""
    seed_demo(open_home(settings), click.echo, port=port, https=True)
