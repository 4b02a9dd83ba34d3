"""`hostbackup customer`: list, add and delete customers from the shell, as the administrator.

For operators without an XML client. The commands call the same accounts layer as the XML API,
so the same rules hold: the same validation, and on delete the same cascade (webspaces and mail
go, their tasks are stopped, content stays on disk unless the server is set to remove it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session

from hostbackup.accounts.users import (
    ADMIN,
    ADMIN_LOGIN,
    Role,
    create_user,
    find_user,
    resolve_owner,
    user_by_id,
    visible_users,
)
from hostbackup.accounts.webspaces import delete_account, leftovers
from hostbackup.config import Settings
from hostbackup.errors import ApiError
from hostbackup.home import open_home


@contextmanager
def admin_session(settings: Settings) -> Iterator[Session]:
    """A committed unit of work on the home; account errors become a one-line CLI error."""
    services = open_home(settings)
    try:
        with services.db.session() as session:
            yield session
    except ApiError as err:
        raise click.ClickException(err.text) from None
    finally:
        services.db.dispose()


def echo_rows(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    """Tab-separated, with a header line: readable, and easy for `cut` and `awk`."""
    for row in [header, *rows]:
        click.echo("\t".join(str(cell) for cell in row))


@click.group()
def customer() -> None:
    """Customer accounts."""


@customer.command("list")
@click.pass_obj
def list_customers(settings: Settings) -> None:
    """List all customers."""
    with admin_session(settings) as session:
        rows: list[tuple[object, ...]] = [
            (user.id, user.login, user_by_id(session, user.owner_id).login, user.status, user.pname)
            for user in visible_users(session, ADMIN, Role.CUSTOMER)
        ]
    echo_rows(("ID", "LOGIN", "OWNER", "STATUS", "NAME"), rows)


@customer.command("add")
@click.argument("login")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="5-255 characters.")
@click.option("--name", "pname", required=True, help="Contact name.")
@click.option("--company", "cname", default="", help="Company name.")
@click.option("--email", default="", help="Contact e-mail address.")
@click.option("--owner", default=ADMIN_LOGIN, show_default=True, help="Login of the owner: admin or a reseller.")
@click.pass_obj
def add_customer(settings: Settings, login: str, password: str, pname: str, cname: str, email: str, owner: str) -> None:
    """Create customer LOGIN."""
    if not pname.strip():
        raise click.BadParameter("must not be empty", param_hint="--name")
    with admin_session(settings) as session:
        owner_user = resolve_owner(session, ADMIN, "login", owner, roles=(Role.ADMIN, Role.RESELLER))
        user = create_user(
            session,
            role=Role.CUSTOMER,
            login=login,
            password=password,
            owner_id=owner_user.id,
            pname=pname.strip(),
            cname=cname,
            email=email,
        )
        created = (user.id, user.guid)
    click.echo(f"Customer {login} created: id {created[0]}, guid {created[1]}.")


@customer.command("del")
@click.argument("login")
@click.confirmation_option(prompt="Delete the customer with its webspaces and mail names?")
@click.pass_obj
def delete_customer(settings: Settings, login: str) -> None:
    """Delete customer LOGIN with its webspaces and mail names."""
    with admin_session(settings) as session:
        delete_account(session, find_user(session, ADMIN, Role.CUSTOMER, login=login), leftovers(settings))
    click.echo(f"Customer {login} deleted.")
