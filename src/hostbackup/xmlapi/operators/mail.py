"""Operator `mail`: create / get_info / remove (spec §5.7; `site-id` is the webspace id).

Mail names belong to a webspace, so every operation first finds the webspace the caller may
see. A mail name with an enabled mailbox gets its Maildir under `<mail root>/<webspace>/<name>/`
on `create`; `remove` deletes the Maildir once the removal is committed. Mail results carry no
`filter-id`: the `mailname` element identifies them, and error results carry nothing (§5.7).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hostbackup.accounts.webspaces import (
    MAILNAME_RE,
    create_mailbox,
    delete_mailbox,
    find_mailbox,
    find_webspace,
    mailbox_password_hash,
    mailboxes_of,
)
from hostbackup.db.tables import Mailbox, Webspace
from hostbackup.errors import ApiError, InvalidValue
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.filters import NO_ECHO, Filter, Selector, answer_each, child, parse_id
from hostbackup.xmlapi.results import E, boolean, child_text, error, ok, parse_bool, texts

ADDRESS_RE = re.compile(r"[^@\s]+@[^@\s]+")
UNLIMITED = -1


def _webspace(ctx: Context, mail_filter: Element) -> Webspace:
    site_id = parse_id("site-id", child_text(mail_filter, "site-id") or "")
    return find_webspace(ctx.session, ctx.caller, id=site_id)


def _quota(text: str | None) -> int | None:
    if text is None or int(text) == UNLIMITED:
        return None
    if int(text) < 0:
        raise InvalidValue("quota", text)
    return int(text)


def _aliases(mailname: Element) -> list[str]:
    aliases = [alias.lower() for alias in texts(mailname, "alias")]
    for alias in aliases:
        if not MAILNAME_RE.fullmatch(alias) or alias in (".", ".."):
            raise InvalidValue("alias", alias)
    return aliases


def _forwarding(mailname: Element) -> dict[str, object]:
    forwarding = mailname.find("forwarding")
    if forwarding is None:
        return {}
    addresses = texts(forwarding, "address")
    for address in addresses:
        if not ADDRESS_RE.fullmatch(address):
            raise InvalidValue("address", address)
    return {"forwarding_enabled": parse_bool(child_text(forwarding, "enabled")), "forwarding_addresses": addresses}


def _read_mailname(mailname: Element) -> dict[str, object]:
    """The stored fields of one `mailname` (1019 on bad values); ignored elements are dropped."""
    mailbox = mailname.find("mailbox")
    fields: dict[str, object] = {
        "mailbox_enabled": mailbox is not None and parse_bool(child_text(mailbox, "enabled")),
        "quota": _quota(child_text(mailbox, "quota")) if mailbox is not None else None,
        "aliases": _aliases(mailname),
        "description": child_text(mailname, "description") or "",
        **_forwarding(mailname),
    }
    password = mailname.find("password")
    if password is not None:
        kind = child_text(password, "type") or "plain"
        fields["password_hash"] = mailbox_password_hash(child_text(password, "value") or "", kind)
    return fields


def _mailname(mailbox: Mailbox) -> Element:
    """`mailname` of `create` and `remove` answers: `id` → `name`."""
    return E("mailname", None, E("id", mailbox.id), E("name", mailbox.name))


def _mailname_info(mailbox: Mailbox, flags: set[str]) -> Element:
    """`mailname` of `get_info`: id → name → what the flags ask for → description; never the password."""
    info = _mailname(mailbox)
    if "mailbox" in flags:
        quota = [E("quota", mailbox.quota)] if mailbox.quota is not None else []
        info.append(E("mailbox", None, E("enabled", boolean(mailbox.mailbox_enabled)), *quota))
    if "forwarding" in flags:
        addresses = (E("address", address) for address in mailbox.forwarding_addresses)
        info.append(E("forwarding", None, E("enabled", boolean(mailbox.forwarding_enabled)), *addresses))
    if "aliases" in flags:
        info.extend(E("alias", alias) for alias in mailbox.aliases)
    if mailbox.description:
        info.append(E("description", mailbox.description))
    return info


@operation("mail", "create")
def create(ctx: Context, request: Element) -> list[Element]:
    mail_filter = child(request, "filter")
    mailnames = mail_filter.findall("mailname")
    try:
        webspace = _webspace(ctx, mail_filter)
    except ApiError as err:
        return [error(err) for _ in mailnames] or [error(err)]
    return [_create_one(ctx, webspace, mailname) for mailname in mailnames] or [ok()]


def _create_one(ctx: Context, webspace: Webspace, mailname: Element) -> Element:
    try:
        fields = _read_mailname(mailname)
        name = child_text(mailname, "name") or ""
        mailbox = create_mailbox(ctx.session, ctx.settings.mail_root, webspace, name=name, password="", **fields)
    except ApiError as err:
        return error(err)
    return ok(_mailname(mailbox))


def _answer_names(ctx: Context, request: Element, act: Callable[[Webspace, Mailbox], list[Element]]) -> list[Element]:
    """One result per named mail name (none named: every mail name of the webspace)."""
    mail_filter = child(request, "filter")
    webspace = _webspace(ctx, mail_filter)
    names = tuple(texts(mail_filter, "name"))
    selector = Selector(
        {"name": lambda name: [find_mailbox(ctx.session, webspace, name)]},
        lambda: mailboxes_of(ctx.session, webspace.id),
    )
    selection = Filter("name", names) if names else Filter(None)
    return answer_each(selection, selector, lambda mailbox: act(webspace, mailbox), NO_ECHO)


@operation("mail", "get_info")
def get_info(ctx: Context, request: Element) -> list[Element]:
    flags = {str(item.tag) for item in request if isinstance(item.tag, str) and item.tag != "filter"}
    return _answer_names(ctx, request, lambda webspace, mailbox: [_mailname_info(mailbox, flags)])


@operation("mail", "remove")
def remove(ctx: Context, request: Element) -> list[Element]:
    def act(webspace: Webspace, mailbox: Mailbox) -> list[Element]:
        answer = _mailname(mailbox)
        delete_mailbox(ctx.session, ctx.settings.mail_root, webspace, mailbox)
        return [answer]

    return _answer_names(ctx, request, act)
