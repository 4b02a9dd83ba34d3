"""Operator `db_server`: add / get / get-default (spec §5.5), for the administrator only.

A database server is where the databases of webspaces live; registering it stores the
administrator login the backups dump with (the password encrypted, never answered). Every
other caller gets 1006 whatever it asks, so the answer reveals nothing about the servers.
"""

from __future__ import annotations

from hostbackup.accounts.databases import (
    DB_TYPES,
    NewDbServer,
    add_db_server,
    all_db_servers,
    check_db_type,
    database_count,
    default_db_server,
    find_db_server,
)
from hostbackup.db.tables import DbServer, stored_id
from hostbackup.errors import ApiError
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import Echo, Filter, Selector, answer_each, child
from hostbackup.xmlapi.results import E, child_text, error, ok, texts

ID_ECHO = Echo(lambda value, object_id: [E("id", object_id)], lambda kind, value: [E("id", value)])
"""`get` results: `id` after status, also on a 1013 (no `filter-id` in this operator)."""


@operation("db_server", "add")
def add(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    new = NewDbServer(
        host=child_text(request, "host") or "",
        port=child_text(request, "port") or "",
        type=child_text(request, "type") or "",
        admin=child_text(request, "admin") or "",
        password=child_text(request, "password") or None,
        default=request.find("default") is not None,
    )
    server = add_db_server(ctx.session, ctx.services.vault, new)
    return [ok(E("id", server.id))]


def _data(ctx: Context, server: DbServer) -> Element:
    """`data`: host → port → type → admin → status → db_num → default → local; never the password."""
    data = E(
        "data",
        None,
        E("host", server.host),
        E("port", server.port),
        E("type", server.type),
        E("admin", server.admin_login),
        E("status", "NO_ERROR"),  # the project does not probe servers
        E("db_num", database_count(ctx.session, server)),
    )
    data.extend(E(tag) for tag, flag in (("default", server.is_default), ("local", server.is_local)) if flag)
    return data


@operation("db_server", "get")
def get(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    selector = Selector(
        {"id": lambda value: [find_db_server(ctx.session, stored_id(int(value)))]}, lambda: all_db_servers(ctx.session)
    )
    return answer_each(Filter.in_request(request), selector, lambda server: [_data(ctx, server)], ID_ECHO)


@operation("db_server", "get-default")
def get_default(ctx: Context, request: Element) -> list[Element]:
    """One result per type asked for; none asked: every type that has a default."""
    ctx.require_admin()
    asked = texts(child(request, "filter"), "type")
    if not asked:
        return [_default_of(ctx, db_type) for db_type in DB_TYPES if _has_default(ctx, db_type)] or [ok()]
    return [_default_of(ctx, db_type) for db_type in asked]


def _has_default(ctx: Context, db_type: str) -> bool:
    try:
        default_db_server(ctx.session, db_type)
    except ApiError:
        return False
    return True


def _default_of(ctx: Context, asked: str) -> Element:
    try:
        server = default_db_server(ctx.session, check_db_type(asked))
    except ApiError as err:
        return error(err, E("type", asked))
    return ok(E("type", server.type), E("id", server.id))
