"""Operator `reseller`: add / get / del (spec §5.3), for the administrator only (§3.3).

Resellers always belong to the administrator. Besides the account fields they share with
customers (read and written by the `customer` module's helpers), a reseller carries
permissions; the two backup permissions decide what its customers may back up (§3.2), so
they are always answered, other permission names are kept as given.
"""

from __future__ import annotations

from hostbackup.accounts.users import ADMIN_ID, BACKUP_PERMISSIONS, Role, create_user, find_users, visible_users
from hostbackup.db.tables import User
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import Filter, Keys, Selector, answer_each, child, non_empty
from hostbackup.xmlapi.operators.customer import USER_KEYS, account_info, delete_selected, read_new_account
from hostbackup.xmlapi.results import E, boolean, child_text, ok, parse_bool


def _selector(ctx: Context) -> Selector[User]:
    session, caller = ctx.session, ctx.caller
    keys = Keys("Reseller", lambda key, value: find_users(session, caller, Role.RESELLER, key, value), USER_KEYS)
    return Selector(keys.finders(), lambda: visible_users(session, caller, Role.RESELLER))


def read_permissions(request: Element) -> dict[str, bool]:
    permissions = request.find("permissions")
    if permissions is None:
        return {}
    return {
        non_empty("permission", child_text(item, "name") or ""): parse_bool(child_text(item, "value"))
        for item in permissions.findall("permission")
    }


def permissions_element(user: User) -> Element:
    """Both backup permissions first (default true), then any other stored permission."""
    names = [*BACKUP_PERMISSIONS, *(name for name in user.permissions if name not in BACKUP_PERMISSIONS)]
    return E(
        "permissions",
        None,
        *(
            E("permission", None, E("name", name), E("value", boolean(user.permissions.get(name, True))))
            for name in names
        ),
    )


@operation("reseller", "add")
def add(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    account = read_new_account(child(request, "gen-info"))
    permissions = read_permissions(request)
    user = create_user(
        ctx.session,
        role=Role.RESELLER,
        login=account.login,
        password=account.password,
        owner_id=ADMIN_ID,
        **account.fields,
    )
    user.permissions = {**user.permissions, **permissions}
    return [ok(E("id", user.id), E("guid", user.guid))]


@operation("reseller", "get")
def get(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    dataset = request.find("dataset")
    wanted = {str(item.tag) for item in dataset} if dataset is not None else set()

    def data(user: User) -> list[Element]:
        parts = [E("gen-info", None, *account_info(user, "cr-date"))] if "gen-info" in wanted else []
        if "permissions" in wanted:
            parts.append(permissions_element(user))
        return [E("data", None, *parts)]

    return answer_each(Filter.in_request(request), _selector(ctx), data)


@operation("reseller", "del")
def delete(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    return delete_selected(ctx, request, _selector(ctx))
