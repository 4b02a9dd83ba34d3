"""Operator `webspace`: add / get / del (spec §5.4; who may do what: §3.3).

A webspace (subscription) is what a backup mostly consists of: its directory under the vhosts
root is created on `add`. `gen_setup` takes its children in any order, so how often each may
occur is checked here rather than by the schema. `del` removes the content directories only
when the server is configured to; by default the files stay on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostbackup.accounts.users import (
    Role,
    check_status_value,
    find_users,
    provider_guid,
    resolve_owner,
    user_by_id,
)
from hostbackup.accounts.webspaces import (
    ascii_name,
    check_ip_addresses,
    create_webspace,
    delete_webspaces,
    find_webspaces,
    ftp_account,
    leftovers,
    visible_webspaces,
    webspaces_of,
)
from hostbackup.db.tables import Webspace
from hostbackup.errors import InvalidValue, PermissionDenied
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import (
    OWNER_KEYS,
    Filter,
    Keys,
    Selector,
    answer_each,
    child,
    optional_fields,
    owner_finders,
    owner_reference,
)
from hostbackup.xmlapi.results import E, child_text, ok, texts

SETUP_ONCE = ("name", "htype", "status", "external-id", "description", "admin-description", "reseller-description")
DESCRIPTIONS = ("description", "admin-description", "reseller-description")
WEBSPACE_KEYS = ("id", "name", "guid", "external-id")


@dataclass(frozen=True)
class Setup:
    """What `gen_setup` asks for, checked."""

    name: str
    owner_key: str | None
    owner_value: str
    ip_addresses: list[str]
    fields: dict[str, object]


def _read_setup(setup: Element) -> Setup:
    tags = [str(item.tag) for item in setup if isinstance(item.tag, str)]
    for tag in SETUP_ONCE:
        if tags.count(tag) > 1:
            raise InvalidValue(tag, "", f"Invalid value of {tag}: given more than once.")
    if "name" not in tags:
        raise InvalidValue("name", "", "Invalid value of name: the element is missing.")
    owner_key, owner_value = owner_reference(setup, once=True)
    fields: dict[str, object] = {"htype": child_text(setup, "htype") or "vrt_hst"}
    status = child_text(setup, "status")
    if status is not None:
        fields["status"] = check_status_value(status)
    fields.update(optional_fields(setup, ("external-id", *DESCRIPTIONS)))
    name = child_text(setup, "name") or ""
    return Setup(name, owner_key, owner_value, texts(setup, "ip_address"), fields)


def _read_hosting(hosting: Element | None) -> tuple[dict[str, object], list[str]]:
    """FTP account fields and addresses of `hosting/vrt_hst`; other hosting types are ignored."""
    virtual = hosting.find("vrt_hst") if hosting is not None else None
    if virtual is None:
        return {}, []
    properties = {child_text(item, "name"): child_text(item, "value") for item in virtual.findall("property")}
    return ftp_account(properties.get("ftp_login"), properties.get("ftp_password")), texts(virtual, "ip_address")


@operation("webspace", "add")
def add(ctx: Context, request: Element) -> list[Element]:
    setup = _read_setup(child(request, "gen_setup"))
    owner = resolve_owner(
        ctx.session, ctx.caller, setup.owner_key, setup.owner_value, roles=(Role.ADMIN, Role.RESELLER, Role.CUSTOMER)
    )
    ftp_fields, hosting_ips = _read_hosting(request.find("hosting"))
    addresses = check_ip_addresses(setup.ip_addresses or hosting_ips or [ctx.settings.default_ip_address])
    webspace = create_webspace(
        ctx.session,
        ctx.settings.vhosts_root,
        name=setup.name,
        owner=owner,
        ip_addresses=addresses,
        **setup.fields,
        **ftp_fields,
    )
    return [ok(E("id", webspace.id), E("guid", webspace.guid))]


def _gen_info(ctx: Context, webspace: Webspace) -> Element:
    """The strict sequence of spec §5.4; `real_size` is not measured (0) and `sb-site-uuid` never written."""
    owner = user_by_id(ctx.session, webspace.owner_id)
    children = [
        E("cr_date", webspace.created.isoformat()),
        E("name", webspace.name),
        E("ascii-name", ascii_name(webspace.name)),
        E("status", webspace.status),
        E("real_size", 0),
        E("owner-id", owner.id),
        E("owner-login", owner.login),
        *(E("dns_ip_address", address) for address in webspace.ip_addresses),
        E("htype", webspace.htype),
        E("guid", webspace.guid),
        E("vendor-guid", provider_guid(ctx.session, owner)),
        E("external-id", webspace.external_id),
    ]
    for tag in DESCRIPTIONS:
        value = getattr(webspace, tag.replace("-", "_"))
        if value:
            children.append(E(tag, value))
    return E("gen_info", None, *children)


def _hosting(webspace: Webspace) -> Element:
    if webspace.htype != "vrt_hst":
        return E("hosting", None, E("none"))
    ftp_login = E("property", None, E("name", "ftp_login"), E("value", webspace.ftp_login or ""))
    addresses = (E("ip_address", address) for address in webspace.ip_addresses)
    return E("hosting", None, E("vrt_hst", None, ftp_login, *addresses))


def _selection(ctx: Context, request: Element) -> Filter:
    """The filter; customers may not select by owner (spec §3.3)."""
    selection = Filter.in_request(request)
    if ctx.caller.role is Role.CUSTOMER and selection.kind in OWNER_KEYS:
        raise PermissionDenied()
    return selection


def _selector(ctx: Context) -> Selector[Webspace]:
    session, caller = ctx.session, ctx.caller
    keys = Keys("Webspace", lambda key, value: find_webspaces(session, caller, key, value), WEBSPACE_KEYS)
    owners = owner_finders(
        tuple(OWNER_KEYS),
        lambda key, value: find_users(session, caller, None, key, value),
        lambda owner: webspaces_of(session, owner.id),
    )
    return Selector({**keys.finders(), **owners}, lambda: visible_webspaces(session, caller))


@operation("webspace", "get")
def get(ctx: Context, request: Element) -> list[Element]:
    selection = _selection(ctx, request)
    dataset = request.find("dataset")
    wanted = {str(item.tag) for item in dataset} if dataset is not None else set()

    def data(webspace: Webspace) -> list[Element]:
        parts = [_gen_info(ctx, webspace)] if "gen_info" in wanted else []
        if "hosting" in wanted:
            parts.append(_hosting(webspace))
        return [E("data", None, *parts)]

    return answer_each(selection, _selector(ctx), data)


@operation("webspace", "del")
def delete(ctx: Context, request: Element) -> list[Element]:
    selection = _selection(ctx, request)
    on_disk = leftovers(ctx.settings)

    def remove(webspace: Webspace) -> list[Element]:
        delete_webspaces(ctx.session, [webspace], on_disk)
        return []

    return answer_each(selection, _selector(ctx), remove)
