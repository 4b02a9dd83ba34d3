"""Operator `secret_key`: create / get_info / delete (spec §5.8), for the administrator only.

A key lets a client authenticate with the `KEY` header as the key's user, and only from the
addresses it is bound to; a key created without addresses is bound to the address that asked
for it. Keys are answered in full by `get_info`, which is why they are stored encrypted.
"""

from __future__ import annotations

from hostbackup.accounts.keys import all_keys, create_key, delete_key, find_key, key_text, parse_ip_list
from hostbackup.accounts.users import find_users, user_by_id
from hostbackup.db.tables import SecretKey, User
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import Echo, Filter, Selector, answer_each, child, non_empty, required
from hostbackup.xmlapi.results import E, child_text, ok, texts

KEY_ECHO = Echo(lambda value, object_id: [], lambda kind, value: [E("key", value)])
"""A key that matches nothing is answered with the key as sent; found keys carry their own `key`."""


def _selector(ctx: Context) -> Selector[SecretKey]:
    def find(value: str) -> list[SecretKey]:
        record = find_key(ctx.session, value)
        return list(required("Secret key", [record] if record is not None else []))

    return Selector({"key": find}, lambda: all_keys(ctx.session))


def _key_selection(request: Element) -> Filter:
    keys = tuple(texts(child(request, "filter"), "key"))
    return Filter("key", keys) if keys else Filter(None)


def _key_info(ctx: Context, record: SecretKey) -> Element:
    return E(
        "key_info",
        None,
        E("key", key_text(ctx.services.vault, record)),
        E("ip_address", ",".join(record.ip_addresses)),
        E("description", record.description),
        E("login", user_by_id(ctx.session, record.user_id).login),
    )


def _key_user(ctx: Context, login: str | None) -> User:
    """The user the key will authenticate as: the named one, or the sender (spec §3.4)."""
    if login is None:
        return user_by_id(ctx.session, ctx.caller.id)
    return required("User", find_users(ctx.session, ctx.caller, None, "login", non_empty("login", login)))[0]


@operation("secret_key", "create")
def create(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    addresses = parse_ip_list(child_text(request, "ip_address") or ctx.client_ip)
    user = _key_user(ctx, child_text(request, "login"))
    key = create_key(ctx.session, ctx.services.vault, user, addresses, child_text(request, "description") or "")
    return [ok(E("key", key))]


@operation("secret_key", "get_info")
def get_info(ctx: Context, request: Element) -> list[Element]:
    """With keys: one result per key. Without: one result listing every key (spec §5.8)."""
    ctx.require_admin()
    selection = _key_selection(request)
    if selection.kind is None:
        return [ok(*(_key_info(ctx, record) for record in all_keys(ctx.session)))]
    return answer_each(selection, _selector(ctx), lambda record: [_key_info(ctx, record)], KEY_ECHO)


@operation("secret_key", "delete")
def delete(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()

    def remove(record: SecretKey) -> list[Element]:
        answer = E("key", key_text(ctx.services.vault, record))
        delete_key(ctx.session, record)
        return [answer]

    return answer_each(_key_selection(request), _selector(ctx), remove, KEY_ECHO)
