"""Ownership over the XML API (spec §3.2, §3.3): what a reseller and a customer may not touch.

One world is built once: resellers `rita` and `other`; customers `jdoe` (administrator's),
`bob` (rita's) and `carl` (other's); a webspace with a mailbox for each of them and for the
administrator. Every operation is then tried by `rita` and by `bob` against objects that are not
theirs; each must be refused with the code of the matrix, and the world must be unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from lxml import etree

from harness import ADMIN_PASSWORD, Server, start_server

PASSWORD = "Str0ng-Pass!"
RESELLERS = {"rita": None, "other": None}
CUSTOMERS = {"jdoe": "admin", "bob": "rita", "carl": "other"}
SITES = {"admin.test": "admin", "rita.test": "rita", "jdoe.test": "jdoe", "bob.test": "bob", "carl.test": "carl"}
CALLERS = {"reseller": "rita", "customer": "bob"}

Element = etree._Element


@dataclass(frozen=True)
class World:
    server: Server
    ids: dict[str, str]  # login or webspace name → id


def fill(text: str, values: dict[str, str]) -> str:
    """Replace `{name}` placeholders (names may contain dots, so `str.format` will not do)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def call(server: Server, packet: str, login: str = "admin") -> Element:
    answer = server.call(packet, login=login, password=ADMIN_PASSWORD if login == "admin" else PASSWORD)
    assert answer.find("system") is None, etree.tostring(answer)
    return answer


def first_result(answer: Element) -> Element:
    result = answer.find("*/*/result")
    assert result is not None, etree.tostring(answer)
    return result


def created_id(answer: Element) -> str:
    result = first_result(answer)
    assert result.findtext("status") == "ok", etree.tostring(answer)
    return result.findtext("id") or ""


def build(server: Server) -> dict[str, str]:
    ids = {"admin": "1"}
    for login in RESELLERS:
        info = f"<gen-info><pname>{login}</pname><login>{login}</login><passwd>{PASSWORD}</passwd></gen-info>"
        ids[login] = created_id(call(server, f"<packet><reseller><add>{info}</add></reseller></packet>"))
    for login, owner in CUSTOMERS.items():
        info = (
            f"<gen_info><pname>{login}</pname><login>{login}</login><passwd>{PASSWORD}</passwd>"
            f"<owner-login>{owner}</owner-login></gen_info>"
        )
        ids[login] = created_id(call(server, f"<packet><customer><add>{info}</add></customer></packet>"))
    for name, owner in SITES.items():
        setup = f"<gen_setup><name>{name}</name><owner-login>{owner}</owner-login></gen_setup>"
        ids[name] = created_id(call(server, f"<packet><webspace><add>{setup}</add></webspace></packet>"))
        mailname = "<mailname><name>info</name><mailbox><enabled>true</enabled></mailbox></mailname>"
        create = f"<create><filter><site-id>{ids[name]}</site-id>{mailname}</filter></create>"
        assert first_result(call(server, f"<packet><mail>{create}</mail></packet>")).findtext("status") == "ok"
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = start_server(tmp_path_factory.mktemp("roles") / "home")
    try:
        yield World(server, build(server))
    finally:
        server.stop()


def snapshot(world: World) -> list[str]:
    """Everything that exists, as the administrator sees it."""
    server = world.server
    packet = (
        "<packet><reseller><get><filter/><dataset><gen-info/></dataset></get></reseller>"
        "<customer><get><filter/><dataset><gen_info/></dataset></get></customer>"
        "<webspace><get><filter/><dataset><gen_info/></dataset></get></webspace></packet>"
    )
    answer = call(server, packet)
    names = [f"{op.tag}:{r.findtext('id')}" for op in answer for r in op.iterfind("*/result")]
    for name in SITES:
        packet = (
            f"<packet><mail><get_info><filter><site-id>{world.ids[name]}</site-id></filter></get_info></mail></packet>"
        )
        names += [f"mail:{name}:{r.findtext('mailname/name')}" for r in call(server, packet).iterfind("mail/*/result")]
    keys = call(server, "<packet><secret_key><get_info><filter/></get_info></secret_key></packet>")
    return names + [f"key:{info.findtext('login')}" for info in keys.iterfind("secret_key/get_info/result/key_info")]


NOT_FOUND = {
    "customer": "Customer does not exist.",
    "reseller": "Reseller does not exist.",
    "webspace": "Webspace does not exist.",
    "owner": "Owner does not exist.",
}
DENIED = (1006, "Permission denied.")


@dataclass(frozen=True)
class Case:
    """A packet (`{name}` placeholders → ids) and the answer each role must get: (code, errtext)."""

    packet: str
    reseller: tuple[int, str]
    customer: tuple[int, str]


def gone(what: str) -> tuple[int, str]:
    return 1013, NOT_FOUND[what]


def customer_get(kind: str, value: str) -> str:
    return f"<customer><get><filter><{kind}>{value}</{kind}></filter><dataset><gen_info/></dataset></get></customer>"


def webspace_get(kind: str, value: str) -> str:
    return f"<webspace><get><filter><{kind}>{value}</{kind}></filter><dataset><gen_info/></dataset></get></webspace>"


def new_customer(owner: str) -> str:
    info = f"<pname>New</pname><login>newbie</login><passwd>{PASSWORD}</passwd><owner-login>{owner}</owner-login>"
    return f"<customer><add><gen_info>{info}</gen_info></add></customer>"


def new_webspace(owner: str) -> str:
    setup = f"<gen_setup><name>new.test</name><owner-login>{owner}</owner-login></gen_setup>"
    return f"<webspace><add>{setup}</add></webspace>"


def mail(operation: str, site: str, body: str = "") -> str:
    return f"<mail><{operation}><filter><site-id>{{{site}}}</site-id>{body}</filter></{operation}></mail>"


CASES = {
    "customer-get-admins": Case(customer_get("login", "jdoe"), gone("customer"), DENIED),
    "customer-get-other-resellers": Case(customer_get("id", "{carl}"), gone("customer"), DENIED),
    "customer-get-by-other-owner": Case(customer_get("owner-id", "{other}"), gone("owner"), DENIED),
    "customer-get-by-foreign-owner": Case(customer_get("owner-login", "admin"), gone("owner"), DENIED),
    "customer-del": Case("<customer><del><filter><id>{jdoe}</id></filter></del></customer>", gone("customer"), DENIED),
    "customer-del-other-resellers": Case(
        "<customer><del><filter><login>carl</login></filter></del></customer>", gone("customer"), DENIED
    ),
    "customer-add-for-other-owner": Case(new_customer("other"), DENIED, DENIED),
    "customer-add-for-admin": Case(new_customer("admin"), DENIED, DENIED),
    "reseller-get": Case("<reseller><get><filter/><dataset><gen-info/></dataset></get></reseller>", DENIED, DENIED),
    "reseller-del": Case("<reseller><del><filter><id>{other}</id></filter></del></reseller>", DENIED, DENIED),
    "reseller-add": Case(
        f"<reseller><add><gen-info><pname>X</pname><login>x</login><passwd>{PASSWORD}</passwd></gen-info></add></reseller>",
        DENIED,
        DENIED,
    ),
    "webspace-get-admins": Case(webspace_get("name", "admin.test"), gone("webspace"), gone("webspace")),
    "webspace-get-customers": Case(webspace_get("id", "{jdoe.test}"), gone("webspace"), gone("webspace")),
    "webspace-get-other-resellers": Case(webspace_get("name", "carl.test"), gone("webspace"), gone("webspace")),
    "webspace-get-by-owner": Case(webspace_get("owner-login", "carl"), gone("owner"), DENIED),
    "webspace-del": Case(
        "<webspace><del><filter><name>jdoe.test</name></filter></del></webspace>", gone("webspace"), gone("webspace")
    ),
    "webspace-del-by-owner": Case(
        "<webspace><del><filter><owner-id>{carl}</owner-id></filter></del></webspace>", gone("owner"), DENIED
    ),
    "webspace-add-for-foreign-owner": Case(new_webspace("carl"), DENIED, DENIED),
    "webspace-add-for-admin": Case(new_webspace("admin"), DENIED, DENIED),
    "mail-create": Case(
        mail("create", "jdoe.test", "<mailname><name>sneaky</name></mailname>"), gone("webspace"), gone("webspace")
    ),
    "mail-get-info": Case(mail("get_info", "carl.test"), gone("webspace"), gone("webspace")),
    "mail-remove": Case(mail("remove", "admin.test", "<name>info</name>"), gone("webspace"), gone("webspace")),
    "secret-key-create": Case("<secret_key><create><login>bob</login></create></secret_key>", DENIED, DENIED),
    "secret-key-get-info": Case("<secret_key><get_info><filter/></get_info></secret_key>", DENIED, DENIED),
    "secret-key-delete": Case("<secret_key><delete><filter/></delete></secret_key>", DENIED, DENIED),
}


@pytest.mark.parametrize("role", CALLERS)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_foreign_objects_cannot_be_read_changed_or_deleted(world: World, case: Case, role: str) -> None:
    before = snapshot(world)
    assert {"customer:" + world.ids["jdoe"], "webspace:" + world.ids["carl.test"], "mail:admin.test:info"} <= set(
        before
    )
    packet = "<packet>" + fill(case.packet, world.ids) + "</packet>"
    result = first_result(call(world.server, packet, CALLERS[role]))
    expected = case.reseller if role == "reseller" else case.customer
    assert (result.findtext("status"), int(result.findtext("errcode") or 0), result.findtext("errtext")) == (
        "error",
        *expected,
    ), etree.tostring(result)
    assert not [child.tag for child in result if child.tag in ("data", "guid", "key", "mailname")]
    assert snapshot(world) == before


def test_customer_cannot_even_read_itself_through_customer_operator(world: World) -> None:
    result = first_result(call(world.server, "<packet>" + customer_get("login", "bob") + "</packet>", "bob"))
    assert (result.findtext("errcode"), result.findtext("errtext")) == ("1006", "Permission denied.")


@pytest.mark.parametrize(
    ("packet", "existing", "missing"),
    [
        (customer_get("id", "{value}"), "{jdoe}", "987654"),
        (webspace_get("id", "{value}"), "{carl.test}", "987654"),
        (webspace_get("name", "{value}"), "admin.test", "nowhere.test"),
        (mail("get_info", "value"), "{jdoe.test}", "987654"),
    ],
)
def test_invisible_objects_look_exactly_like_missing_ones(
    world: World, packet: str, existing: str, missing: str
) -> None:
    def answer(value: str) -> Element:
        text = packet.replace("{value}", fill(value, world.ids))
        result = first_result(call(world.server, f"<packet>{text}</packet>", "rita"))
        for echo in result.findall("filter-id") + result.findall("id"):
            result.remove(echo)  # the echoed value differs by construction
        return result

    assert etree.tostring(answer(existing)) == etree.tostring(answer(missing))


def test_reseller_manages_its_own_customers_and_webspaces(world: World) -> None:
    server = world.server
    info = f"<gen_info><pname>Own</pname><login>rita-own</login><passwd>{PASSWORD}</passwd></gen_info>"
    own_id = created_id(call(server, f"<packet><customer><add>{info}</add></customer></packet>", "rita"))
    visible = call(
        server, "<packet><customer><get><filter/><dataset><gen_info/></dataset></get></customer></packet>", "rita"
    )
    owners = {
        r.findtext("data/gen_info/login"): r.findtext("data/gen_info/owner-login")
        for r in visible.iterfind("*/*/result")
    }
    assert owners == {"bob": "rita", "rita-own": "rita"}  # add forced the owner to the reseller itself
    site = created_id(
        call(server, "<packet>" + new_webspace("rita-own").replace("new.test", "own.test") + "</packet>", "rita")
    )
    sites = call(
        server, "<packet><webspace><get><filter/><dataset><gen_info/></dataset></get></webspace></packet>", "rita"
    )
    assert sorted(r.findtext("data/gen_info/name") or "" for r in sites.iterfind("*/*/result")) == [
        "bob.test",
        "own.test",
        "rita.test",
    ]
    by_owner = call(server, "<packet>" + webspace_get("owner-login", "bob") + "</packet>", "rita")
    assert [r.findtext("data/gen_info/name") for r in by_owner.iterfind("*/*/result")] == ["bob.test"]
    deleted = call(
        server, f"<packet><customer><del><filter><id>{own_id}</id></filter></del></customer></packet>", "rita"
    )
    assert first_result(deleted).findtext("status") == "ok"
    gone_site = call(server, "<packet>" + webspace_get("id", site) + "</packet>")
    assert first_result(gone_site).findtext("errcode") == "1013"


def test_customer_manages_its_own_webspaces_and_mail(world: World) -> None:
    server = world.server
    add = "<packet><webspace><add><gen_setup><name>bob-own.test</name></gen_setup></add></webspace></packet>"
    site = created_id(call(server, add, "bob"))
    (owner,) = call(server, "<packet>" + webspace_get("id", site) + "</packet>", "bob").iterfind(
        "*/*/result/data/gen_info"
    )
    assert owner.findtext("owner-login") == "bob"
    create = "<mailname><name>me</name><mailbox><enabled>true</enabled></mailbox></mailname>"
    mail_answer = call(server, "<packet>" + fill(mail("create", "site", create), {"site": site}) + "</packet>", "bob")
    assert first_result(mail_answer).findtext("mailname/name") == "me"
    listing = call(server, "<packet>" + fill(mail("get_info", "site"), {"site": site}) + "</packet>", "bob")
    assert [r.findtext("mailname/name") for r in listing.iterfind("*/*/result")] == ["me"]
    deleted = call(server, f"<packet><webspace><del><filter><id>{site}</id></filter></del></webspace></packet>", "bob")
    assert first_result(deleted).findtext("status") == "ok"


def test_a_key_acts_with_the_rights_of_its_user(world: World) -> None:
    server = world.server
    key_answer = call(server, "<packet><secret_key><create><login>bob</login></create></secret_key></packet>")
    key = first_result(key_answer).findtext("key") or ""
    packet = "<packet>" + customer_get("login", "bob") + webspace_get("name", "bob.test") + "</packet>"
    answer = server.call(packet, login=None, password=None, headers={"KEY": key})
    denied, own = answer.findall("*/*/result")
    assert denied.findtext("errcode") == "1006" and own.findtext("status") == "ok"
    call(server, f"<packet><secret_key><delete><filter><key>{key}</key></filter></delete></secret_key></packet>")
