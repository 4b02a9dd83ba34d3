"""The configuration dump: the first member of every backup, describing what it holds.

An XML document with the accounts (customer, reseller), their webspaces, mailboxes and
databases, the options and the description — enough to re-create the accounts on restore.
Passwords appear only as their one-way hashes, never in clear; database server passwords not at
all (a restore names its target server and that server's own credentials).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from lxml import etree
from sqlalchemy.orm import Session

from hostbackup.accounts.databases import databases_of
from hostbackup.accounts.webspaces import mailboxes_of
from hostbackup.db.tables import DbServer, Task, User, Webspace
from hostbackup.xmlapi.packet import PacketError, parse_packet
from hostbackup.xmlapi.results import E, boolean

MEMBER_NAME = "backup-info.xml"
FORMAT = "hostbackup/1"
#: A larger configuration dump is refused when reading a backup (`TarReader.read_all`): it is read into memory.
MAX_BYTES = 64 << 20
_USER_FIELDS = ("pname", "cname", "phone", "fax", "email", "address", "city", "state", "pcode", "country",
                "locale", "external_id", "description")  # fmt: skip
_WEBSPACE_FIELDS = ("external_id", "description", "admin_description", "reseller_description")


def _fields(record: User | Webspace, names: Iterable[str]) -> list[etree._Element]:
    return [E(name.replace("_", "-"), getattr(record, name)) for name in names if getattr(record, name)]


def user_element(user: User, children: Iterable[etree._Element] = ()) -> etree._Element:
    element = E(user.kind, None, *_fields(user, _USER_FIELDS))
    element.attrib.update(dict(id=str(user.id), login=user.login, guid=user.guid, status=str(user.status),
                          created=user.created.isoformat()))  # fmt: skip
    element.append(E("password-hash", user.password_hash))
    permissions = E("permissions")
    for name, value in sorted(user.permissions.items()):
        permissions.append(E("permission", None, E("name", name), E("value", boolean(value))))
    element.append(permissions)
    element.extend(children)
    return element


def webspace_element(session: Session, webspace: Webspace, content: dict[str, bool]) -> etree._Element:
    """`content` says whether mail and database content are in the archive (`mail`, `databases`)."""
    element = E("webspace", None, *_fields(webspace, _WEBSPACE_FIELDS))
    element.attrib.update(dict(id=str(webspace.id), name=webspace.name, guid=webspace.guid, htype=webspace.htype,
                          status=str(webspace.status), created=webspace.created.isoformat()))  # fmt: skip
    element.extend(E("ip-address", address) for address in webspace.ip_addresses)
    if webspace.ftp_login:
        element.append(E("ftp-login", webspace.ftp_login))
    for mailbox in mailboxes_of(session, webspace.id):
        mail = E("mailname", None, E("mailbox", None, E("enabled", boolean(mailbox.mailbox_enabled))))
        mail.set("name", mailbox.name)
        if mailbox.quota is not None:
            mail[0].append(E("quota", mailbox.quota))
        forwarding = E("forwarding", None, E("enabled", boolean(mailbox.forwarding_enabled)))
        forwarding.extend(E("address", address) for address in mailbox.forwarding_addresses)
        mail.append(forwarding)
        mail.extend(E("alias", alias) for alias in mailbox.aliases)
        if mailbox.password_hash:
            mail.append(E("password-hash", mailbox.password_hash))
        if mailbox.description:
            mail.append(E("description", mailbox.description))
        mail.set("content", boolean(content["mail"]))
        element.append(mail)
    element.extend(_database_elements(session, webspace, with_dumps=content["databases"]))
    return element


def _database_elements(session: Session, webspace: Webspace, *, with_dumps: bool) -> list[etree._Element]:
    """`<database name type server-host server-port server-type content/>` per database."""
    elements = []
    for record in databases_of(session, webspace.id):
        server = session.get(DbServer, record.db_server_id)
        element = E("database")
        element.attrib.update({"name": record.name, "type": record.type})
        if server is not None:
            element.attrib.update({"server-host": server.host, "server-port": str(server.port),
                                   "server-type": server.type})  # fmt: skip
        element.set("content", boolean(with_dumps))
        elements.append(element)
    return elements


def dump(task: Task, accounts: etree._Element, content: dict[str, bool]) -> bytes:
    """The document: `<backup-info>` with the task's options, description and the accounts tree."""
    info = E("backup-info")
    info.attrib.update({"format": FORMAT, "level": task.target_kind, "created": str(int(time.time())),
                        "task": str(task.id)})  # fmt: skip
    info.append(E("description", task.description))
    options = E("options")
    for name, value in sorted(task.options.items()):
        options.set(name.replace("_", "-"), str(value).lower() if isinstance(value, bool) else str(value))
    for name, included in content.items():
        options.set(f"include-{name}", boolean(included))
    info.append(options)
    info.append(accounts)
    return etree.tostring(info, encoding="UTF-8", xml_declaration=True, pretty_print=True)


class DumpRefused(ValueError):
    """A configuration dump that is not well-formed or declares a DOCTYPE."""


def parse(document: bytes) -> etree._Element:
    """Parse a backup's configuration dump without trusting it: an upload may be as hostile as a request,
    so it goes through the request parser (DOCTYPE refused before any entity is read, no network).
    Its size is bounded where it is read from the archive (`MAX_BYTES`)."""
    try:
        return parse_packet(document)
    except PacketError as err:
        raise DumpRefused(f"{MEMBER_NAME}: {err.message} (line {err.line})") from None
