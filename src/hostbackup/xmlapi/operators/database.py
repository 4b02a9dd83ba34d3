"""Operator `database`: add-db / get-db / del-db (spec §5.6) for the databases of webspaces.

A database belongs to a webspace, so the caller sees exactly the databases of the webspaces it
may see (§3.2); anything else answers 1013 as if it did not exist. `add-db` registers a database
for backup and creates it on its server when it does not exist there yet; `del-db` only
unregisters it: the data on the server is never dropped through this API.
"""

from __future__ import annotations

from collections.abc import Sequence

from hostbackup.accounts.databases import (
    NewDatabase,
    add_database,
    databases_of,
    delete_database,
    find_database,
    visible_databases,
)
from hostbackup.accounts.webspaces import find_webspace
from hostbackup.db.tables import HostedDatabase, stored_id
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import Filter, Selector, answer_each, child, non_empty, parse_id
from hostbackup.xmlapi.results import E, child_text, ok


@operation("database", "add-db")
def add_db(ctx: Context, request: Element) -> list[Element]:
    webspace_id = parse_id("webspace-id", child_text(request, "webspace-id") or "")
    webspace = find_webspace(ctx.session, ctx.caller, id=webspace_id)
    server_id = child_text(request, "db-server-id")
    new = NewDatabase(
        name=child_text(request, "name") or "",
        type=child_text(request, "type") or "",
        server_id=stored_id(int(server_id)) if server_id is not None else None,
    )
    record = add_database(ctx.session, ctx.services.vault, webspace, new, adopt=ctx.caller.is_admin)
    return [ok(E("id", record.id))]


def _selector(ctx: Context) -> Selector[HostedDatabase]:
    session, caller = ctx.session, ctx.caller

    def by_id(value: str) -> Sequence[HostedDatabase]:
        return [find_database(session, caller, parse_id("id", value))]

    def by_webspace_id(value: str) -> Sequence[HostedDatabase]:
        return databases_of(session, find_webspace(session, caller, id=parse_id("webspace-id", value)).id)

    def by_webspace_name(value: str) -> Sequence[HostedDatabase]:
        webspace = find_webspace(session, caller, name=non_empty("webspace-name", value))
        return databases_of(session, webspace.id)

    finders = {"id": by_id, "webspace-id": by_webspace_id, "webspace-name": by_webspace_name}
    return Selector(finders, lambda: visible_databases(session, caller))


def _info(record: HostedDatabase) -> list[Element]:
    """get-db: name → type → webspace-id → db-server-id (after the echoed filter-id and id)."""
    return [
        E("name", record.name),
        E("type", record.type),
        E("webspace-id", record.webspace_id),
        E("db-server-id", record.db_server_id),
    ]


@operation("database", "get-db")
def get_db(ctx: Context, request: Element) -> list[Element]:
    return answer_each(Filter.of(child(request, "filter")), _selector(ctx), _info)


@operation("database", "del-db")
def del_db(ctx: Context, request: Element) -> list[Element]:
    def act(record: HostedDatabase) -> list[Element]:
        delete_database(ctx.session, record)
        return []

    return answer_each(Filter.of(child(request, "filter")), _selector(ctx), act)
