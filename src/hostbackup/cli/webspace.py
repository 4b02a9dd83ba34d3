"""`hostbackup webspace`: list, add and delete webspaces from the shell, as the administrator.

A thin layer over the accounts layer, like `hostbackup customer`: `add` creates the content
directories under the vhosts root, `del` keeps them unless the server removes content on delete.
"""

from __future__ import annotations

import click

from hostbackup.accounts.users import ADMIN, ADMIN_LOGIN, Role, find_users, resolve_owner, user_by_id
from hostbackup.accounts.webspaces import (
    check_ip_addresses,
    create_webspace,
    delete_webspaces,
    find_webspace,
    leftovers,
    visible_webspaces,
    webspaces_of,
)
from hostbackup.cli.customer import admin_session, echo_rows
from hostbackup.config import Settings
from hostbackup.errors import NotFound


@click.group()
def webspace() -> None:
    """Webspaces (subscriptions)."""


@webspace.command("list")
@click.option("--owner", help="Only the webspaces owned directly by this login.")
@click.pass_obj
def list_webspaces(settings: Settings, owner: str | None) -> None:
    """List webspaces."""
    with admin_session(settings) as session:
        if owner is None:
            webspaces = visible_webspaces(session, ADMIN)
        else:
            owners = find_users(session, ADMIN, None, "login", owner)
            if not owners:
                raise NotFound("User")
            webspaces = webspaces_of(session, owners[0].id)
        rows: list[tuple[object, ...]] = [
            (item.id, item.name, user_by_id(session, item.owner_id).login, item.status, ",".join(item.ip_addresses))
            for item in webspaces
        ]
    echo_rows(("ID", "NAME", "OWNER", "STATUS", "IP"), rows)


@webspace.command("add")
@click.argument("name")
@click.option("--owner", default=ADMIN_LOGIN, show_default=True, help="Login of the owner.")
@click.option("--ip", "ips", multiple=True, help="IP address (one IPv4 and one IPv6 at most; default: the server's).")
@click.pass_obj
def add_webspace(settings: Settings, name: str, owner: str, ips: tuple[str, ...]) -> None:
    """Create webspace NAME with its content directories."""
    with admin_session(settings) as session:
        owner_user = resolve_owner(session, ADMIN, "login", owner, roles=(Role.ADMIN, Role.RESELLER, Role.CUSTOMER))
        addresses = check_ip_addresses(list(ips) or [settings.default_ip_address])
        created = create_webspace(session, settings.vhosts_root, name=name, owner=owner_user, ip_addresses=addresses)
        name, webspace_id = created.name, created.id
    click.echo(f"Webspace {name} created: id {webspace_id}, content in {settings.vhosts_root / name}.")


@webspace.command("del")
@click.argument("name")
@click.confirmation_option(prompt="Delete the webspace with its mail names?")
@click.pass_obj
def delete_webspace(settings: Settings, name: str) -> None:
    """Delete webspace NAME (content stays on disk unless the server removes content on delete)."""
    with admin_session(settings) as session:
        delete_webspaces(session, [find_webspace(session, ADMIN, name=name)], leftovers(settings))
    click.echo(f"Webspace {name} deleted.")
