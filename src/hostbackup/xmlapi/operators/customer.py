"""Operator `customer`: add / get / del (spec §5.2; who may do what: §3.3).

Customers belong to the administrator or to a reseller. A reseller manages only its own
customers and cannot give one to anybody else; a customer cannot use this operator at all.
Customer and reseller accounts carry the same contact fields under slightly different element
names, so the helpers that read and write those fields live here and `reseller` reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostbackup.accounts.users import (
    Role,
    check_status_value,
    create_user,
    find_users,
    resolve_owner,
    user_by_id,
    users_owned_by,
    visible_users,
)
from hostbackup.accounts.webspaces import delete_account, leftovers
from hostbackup.db.tables import User
from hostbackup.errors import InvalidValue, PermissionDenied
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import (
    Filter,
    Keys,
    Selector,
    answer_each,
    child,
    optional_fields,
    owner_finders,
    owner_reference,
)
from hostbackup.xmlapi.results import E, child_text, ok

CONTACT_FIELDS = ("phone", "fax", "email", "address", "city", "state", "pcode", "country")
OPTIONAL_FIELDS = ("cname", *CONTACT_FIELDS, "external-id", "description")
USER_KEYS = ("id", "login", "guid", "external-id")
DEFAULT_LOCALE = "en-US"


@dataclass(frozen=True)
class NewAccount:
    login: str
    password: str
    fields: dict[str, object]


def read_new_account(info: Element) -> NewAccount:
    """The account elements that customer `gen_info` and reseller `gen-info` share (1019 on bad values)."""
    pname = child_text(info, "pname") or ""
    if not pname:
        raise InvalidValue("pname", pname)
    fields = optional_fields(info, OPTIONAL_FIELDS)
    fields.update(pname=pname, locale=child_text(info, "locale") or DEFAULT_LOCALE)
    status = child_text(info, "status")
    if status is not None:
        fields["status"] = check_status_value(status)
    return NewAccount(child_text(info, "login") or "", child_text(info, "passwd") or "", fields)


def account_info(user: User, date_tag: str, owner: User | None = None) -> list[Element]:
    """The account fields in the order the server writes them (spec §5.2, §5.3); never the password."""
    children = [
        E(date_tag, user.created.isoformat()),
        E("cname", user.cname),
        E("pname", user.pname),
        E("login", user.login),
        E("status", user.status),
        *(E(tag, getattr(user, tag)) for tag in CONTACT_FIELDS),
        E("locale", user.locale),
        E("guid", user.guid),
    ]
    if owner is not None:
        children += [E("owner-id", owner.id), E("owner-login", owner.login)]
    return [*children, E("external-id", user.external_id), E("description", user.description)]


def _require_manager(ctx: Context) -> None:
    if ctx.caller.role is Role.CUSTOMER:
        raise PermissionDenied()


def _selector(ctx: Context) -> Selector[User]:
    session, caller = ctx.session, ctx.caller
    keys = Keys("Customer", lambda key, value: find_users(session, caller, Role.CUSTOMER, key, value), USER_KEYS)
    owners = owner_finders(
        ("owner-id", "owner-login"),
        lambda key, value: find_users(session, caller, None, key, value),
        lambda owner: users_owned_by(session, owner.id, Role.CUSTOMER),
    )
    return Selector({**keys.finders(), **owners}, lambda: visible_users(session, caller, Role.CUSTOMER))


@operation("customer", "add")
def add(ctx: Context, request: Element) -> list[Element]:
    _require_manager(ctx)
    info = child(request, "gen_info")
    key, value = owner_reference(info)
    owner = resolve_owner(ctx.session, ctx.caller, key, value, roles=(Role.ADMIN, Role.RESELLER))
    account = read_new_account(info)
    user = create_user(
        ctx.session,
        role=Role.CUSTOMER,
        login=account.login,
        password=account.password,
        owner_id=owner.id,
        **account.fields,
    )
    return [ok(E("id", user.id), E("guid", user.guid))]


@operation("customer", "get")
def get(ctx: Context, request: Element) -> list[Element]:
    _require_manager(ctx)
    dataset = request.find("dataset")
    with_info = dataset is not None and dataset.find("gen_info") is not None

    def data(user: User) -> list[Element]:
        if not with_info:
            return [E("data")]
        info = account_info(user, "cr_date", user_by_id(ctx.session, user.owner_id))
        return [E("data", None, E("gen_info", None, *info))]

    return answer_each(Filter.in_request(request), _selector(ctx), data)


def delete_selected(ctx: Context, request: Element, selector: Selector[User]) -> list[Element]:
    """`del` of customers or resellers: each selected account with everything below it (spec §5.0)."""
    on_disk = leftovers(ctx.settings)

    def remove(user: User) -> list[Element]:
        delete_account(ctx.session, user, on_disk)
        return []

    return answer_each(Filter.in_request(request), selector, remove)


@operation("customer", "del")
def delete(ctx: Context, request: Element) -> list[Element]:
    _require_manager(ctx)
    return delete_selected(ctx, request, _selector(ctx))
