"""The account operators over real HTTPS: reseller, customer, webspace, mail and secret_key (spec §5).

Each test creates what it needs with the API itself and reads it back with every filter kind;
error paths assert the exact codes and texts of spec §2.5. State-sensitive tests (empty filters,
cascades) use a server of their own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from harness import ADMIN_PASSWORD, Server, start_server
from hostbackup.accounts.users import Caller, Role, create_user, ensure_admin, find_user
from hostbackup.accounts.webspaces import ContentRoots, Leftovers, create_mailbox, create_webspace, delete_account
from hostbackup.db.engine import Database
from hostbackup.db.tables import Mailbox, RemoteStorage, Task, User
from hostbackup.tasks import queue
from hostbackup.tasks.task import TargetKind, TaskRequest

PASSWORD = "Str0ng-Pass!"
ADMIN_GUID = "00000000-0000-4000-8000-000000000001"
CUSTOMER_INFO = [
    "cr_date", "cname", "pname", "login", "status", "phone", "fax", "email", "address", "city", "state",
    "pcode", "country", "locale", "guid", "owner-id", "owner-login", "external-id", "description",
]  # fmt: skip
RESELLER_INFO = [tag.replace("_", "-") for tag in CUSTOMER_INFO if not tag.startswith("owner")]
WEBSPACE_INFO = [
    "cr_date", "name", "ascii-name", "status", "real_size", "owner-id", "owner-login", "dns_ip_address",
    "htype", "guid", "vendor-guid", "external-id",
]  # fmt: skip

Element = etree._Element


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("account-operators") / "home")
    yield running
    running.stop()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def results(answer: Element, path: str) -> list[Element]:
    """The `<result>` elements of `operator/operation`, asserting that the packet mirrors it."""
    assert answer.find("system") is None, etree.tostring(answer)
    return answer.findall(f"{path}/result")


def one(answer: Element, path: str) -> Element:
    found = results(answer, path)
    assert len(found) == 1, etree.tostring(answer)
    return found[0]


def first_result(operation: Element) -> Element:
    result = operation.find("result")
    assert result is not None, etree.tostring(operation)
    return result


def outcome(result: Element) -> tuple[str | None, int | None, str | None]:
    code = result.findtext("errcode")
    return result.findtext("status"), int(code) if code else None, result.findtext("errtext")


def assert_ok(result: Element) -> Element:
    assert result.findtext("status") == "ok", etree.tostring(result)
    return result


def assert_error(result: Element, code: int, text: str | None = None) -> None:
    status, errcode, errtext = outcome(result)
    assert (status, errcode) == ("error", code), etree.tostring(result)
    if text is not None:
        assert errtext == text


def child_tags(element: Element | None) -> list[str]:
    assert element is not None
    return [str(child.tag) for child in element]


def add_reseller(server: Server, login: str, extra: str = "") -> Element:
    packet = (
        f"<packet><reseller><add><gen-info><pname>R {login}</pname><login>{login}</login><passwd>{PASSWORD}</passwd>"
        f"{extra}</gen-info></add></reseller></packet>"
    )
    return assert_ok(one(server.call(packet), "reseller/add"))


def add_customer(server: Server, login: str, owner: str = "", *, as_login: str = "admin", extra: str = "") -> Element:
    credentials = {"login": as_login, "password": ADMIN_PASSWORD if as_login == "admin" else PASSWORD}
    packet = (
        f"<packet><customer><add><gen_info><pname>C {login}</pname><login>{login}</login><passwd>{PASSWORD}</passwd>"
        f"{extra}{owner}</gen_info></add></customer></packet>"
    )
    return one(server.call(packet, **credentials), "customer/add")


def add_webspace(server: Server, name: str, owner_login: str = "", extra: str = "", hosting: str = "") -> Element:
    owner = f"<owner-login>{owner_login}</owner-login>" if owner_login else ""
    setup = f"<gen_setup><name>{name}</name>{owner}{extra}</gen_setup>"
    packet = f"<packet><webspace><add>{setup}{hosting}</add></webspace></packet>"
    return one(server.call(packet), "webspace/add")


def get_customers(server: Server, kind: str, *values: str, **credentials: str) -> list[Element]:
    filters = "".join(f"<{kind}>{value}</{kind}>" for value in values)
    packet = (
        f"<packet><customer><get><filter>{filters}</filter><dataset><gen_info/></dataset></get></customer></packet>"
    )
    return results(server.call(packet, **credentials), "customer/get")


def get_webspaces(server: Server, kind: str, *values: str) -> list[Element]:
    filters = "".join(f"<{kind}>{value}</{kind}>" for value in values)
    packet = (
        f"<packet><webspace><get><filter>{filters}</filter><dataset><hosting/><gen_info/></dataset></get>"
        "</webspace></packet>"
    )
    return results(server.call(packet), "webspace/get")


# --- reseller --------------------------------------------------------------------------------------


def test_reseller_add_get_del_with_every_filter(fresh_server: Server) -> None:
    added = add_reseller(
        fresh_server,
        "rita",
        "<email>rita@example.com</email><external-id>crm-7</external-id><description>top</description>",
    )
    rita_id, guid = added.findtext("id"), added.findtext("guid")
    assert rita_id == "2" and guid and len(guid) == 36 and guid == guid.lower()
    permissions = (
        "<permissions><permission><name>allow_ftp_backups</name><value>false</value></permission>"
        "<permission><name>create_domains</name><value>true</value></permission></permissions>"
    )
    packet = (
        f"<packet><reseller><add><gen-info><pname>Other</pname><login>other</login><passwd>{PASSWORD}</passwd>"
        f"</gen-info>{permissions}</add></reseller></packet>"
    )
    assert_ok(one(fresh_server.call(packet), "reseller/add"))

    for kind, value in (("id", rita_id), ("login", "rita"), ("guid", guid.upper()), ("external-id", "crm-7")):
        selection = f"<filter><{kind}>{value}</{kind}></filter>"
        packet = f"<packet><reseller><get>{selection}<dataset><gen-info/></dataset></get></reseller></packet>"
        result = assert_ok(one(fresh_server.call(packet), "reseller/get"))
        assert child_tags(result) == ["status", "filter-id", "id", "data"]
        assert result.findtext("filter-id") == value and result.findtext("id") == rita_id
        info = result.find("data/gen-info")
        assert child_tags(info) == RESELLER_INFO
        assert info is not None and info.findtext("email") == "rita@example.com" and info.findtext("locale") == "en-US"

    for selection in ("<all/>", ""):
        dataset = "<dataset><permissions/></dataset>"
        packet = f"<packet><reseller><get><filter>{selection}</filter>{dataset}</get></reseller></packet>"
        found = results(fresh_server.call(packet), "reseller/get")
        assert [result.findtext("id") for result in found] == ["2", "3"]
        assert all(result.find("filter-id") is None for result in found)
        values = {p.findtext("name"): p.findtext("value") for p in found[1].iterfind("data/permissions/permission")}
        assert values == {"allow_local_backups": "true", "allow_ftp_backups": "false", "create_domains": "true"}
        names = [p.findtext("name") for p in found[0].iterfind("data/permissions/permission")]
        assert names == ["allow_local_backups", "allow_ftp_backups"]

    deleted = one(
        fresh_server.call("<packet><reseller><del><filter><login>rita</login></filter></del></reseller></packet>"),
        "reseller/del",
    )
    assert child_tags(assert_ok(deleted)) == ["status", "filter-id", "id"]
    packet = (
        "<packet><reseller><get><filter><login>rita</login></filter><dataset><gen-info/></dataset></get>"
        "</reseller></packet>"
    )
    assert_error(one(fresh_server.call(packet), "reseller/get"), 1013, "Reseller does not exist.")


def test_reseller_example_of_the_spec_round_trips(api: Server) -> None:
    login = unique("rs")
    packet = (
        f"<packet><reseller><add><gen-info><pname>Rita Reseller</pname><login>{login}</login>"
        "<passwd>Str0ng-Pass!</passwd></gen-info><permissions><permission><name>allow_ftp_backups</name><value>false</value></permission>"
        "</permissions></add></reseller></packet>"
    )
    answer = api.call(packet)
    assert answer.get("version") == "1.6.7.0"
    assert child_tags(one(answer, "reseller/add")) == ["status", "id", "guid"]
    assert PASSWORD.encode() not in etree.tostring(answer)


# --- customer --------------------------------------------------------------------------------------


def test_customers_of_admin_and_of_a_reseller(api: Server) -> None:
    reseller = unique("rs")
    add_reseller(api, reseller)
    mine = assert_ok(add_customer(api, unique("cu"), as_login=reseller))
    named = assert_ok(add_customer(api, unique("cu"), f"<owner-login>{reseller}</owner-login>"))
    direct = assert_ok(add_customer(api, unique("cu")))
    owners = {
        result.findtext("id"): result.findtext("data/gen_info/owner-login")
        for result in get_customers(api, "id", *(r.findtext("id") or "" for r in (mine, named, direct)))
    }
    assert owners == {mine.findtext("id"): reseller, named.findtext("id"): reseller, direct.findtext("id"): "admin"}


def test_customer_get_answers_each_value_in_request_order(api: Server) -> None:
    first, second = unique("cu"), unique("cu")
    first_id = assert_ok(add_customer(api, first, extra="<external-id>ext-1</external-id>")).findtext("id") or ""
    second_guid = assert_ok(add_customer(api, second)).findtext("guid") or ""

    found = get_customers(api, "login", second, "nobody-here", first)
    assert [outcome(result)[:2] for result in found] == [("ok", None), ("error", 1013), ("ok", None)]
    assert [result.findtext("filter-id") for result in found] == [second, "nobody-here", first]
    assert found[1].findtext("errtext") == "Customer does not exist." and found[1].find("id") is None

    missing = get_customers(api, "id", "999999", first_id)
    assert_error(missing[0], 1013, "Customer does not exist.")
    assert child_tags(missing[0]) == ["status", "errcode", "errtext", "filter-id", "id"]
    assert missing[0].findtext("id") == "999999"
    assert missing[1].findtext("data/gen_info/login") == first

    assert [r.findtext("filter-id") for r in get_customers(api, "guid", second_guid)] == [second_guid]
    assert [r.findtext("id") for r in get_customers(api, "external-id", "ext-1")] == [first_id]
    assert_error(get_customers(api, "external-id", "no-such-ext")[0], 1013)
    assert_error(get_customers(api, "login", "")[0], 1019, "Invalid value of login: ''.")


def test_customer_owner_filters_answer_one_result_per_customer(api: Server) -> None:
    reseller, lonely = unique("rs"), unique("rs")
    reseller_id = add_reseller(api, reseller).findtext("id") or ""
    add_reseller(api, lonely)
    logins = [unique("cu") for _ in range(2)]
    for login in logins:
        assert_ok(add_customer(api, login, f"<owner-id>{reseller_id}</owner-id>"))

    by_login = get_customers(api, "owner-login", reseller)
    assert [r.findtext("data/gen_info/login") for r in by_login] == logins
    assert {r.findtext("filter-id") for r in by_login} == {reseller}
    assert [r.findtext("data/gen_info/login") for r in get_customers(api, "owner-id", reseller_id)] == logins

    bare = get_customers(api, "owner-login", lonely)
    assert len(bare) == 1 and child_tags(bare[0]) == ["status"] and bare[0].findtext("status") == "ok"
    assert_error(get_customers(api, "owner-login", "no-such-owner")[0], 1013, "Owner does not exist.")


def test_customer_gen_info_is_complete_ordered_and_without_password(api: Server) -> None:
    login = unique("cu")
    packet = (
        f"<packet version='1.6.9.1'><customer><add><gen_info><cname>Example Ltd.</cname><pname>John Doe</pname>"
        f"<login>{login}</login><passwd>{PASSWORD}</passwd><status>16</status><email>jdoe@example.com</email>"
        "<country>US</country><locale>de-DE</locale><external-id>crm-1</external-id><description>vip</description>"
        "</gen_info><add-packages-to-customer-pool/></add></customer></packet>"
    )
    answer = api.call(packet)
    assert answer.get("version") == "1.6.9.1"
    assert child_tags(assert_ok(one(answer, "customer/add"))) == ["status", "id", "guid"]
    (found,) = get_customers(api, "login", login)
    info = found.find("data/gen_info")
    assert child_tags(info) == CUSTOMER_INFO
    assert info is not None
    values = {str(child.tag): child.text or "" for child in info}
    assert values["cname"] == "Example Ltd." and values["status"] == "16" and values["locale"] == "de-DE"
    assert values["owner-id"] == "1" and values["owner-login"] == "admin" and values["phone"] == ""
    assert values["external-id"] == "crm-1" and values["description"] == "vip"
    assert PASSWORD not in etree.tostring(found).decode()


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ("<pname>X</pname><login>{taken}</login><passwd>Str0ng-Pass!</passwd>", 1002, "User account already exists."),
        ("<pname>X</pname><login>../evil</login><passwd>Str0ng-Pass!</passwd>", 1019,
         "Invalid value of login: '../evil'."),
        ("<pname>X</pname><login></login><passwd>Str0ng-Pass!</passwd>", 1019, "Invalid value of login: ''."),
        ("<pname>X</pname><login>{new}</login><passwd>Zq9x</passwd>", 1019,
         "Invalid value of passwd: the password must be 5-255 characters."),
        ("<pname> </pname><login>{new}</login><passwd>Str0ng-Pass!</passwd>", 1019, "Invalid value of pname: ''."),
        ("<pname>X</pname><login>{new}</login><passwd>Str0ng-Pass!</passwd><status>5</status>", 1019,
         "Invalid value of status: '5'."),
        ("<pname>X</pname><login>{new}</login><passwd>Str0ng-Pass!</passwd><owner-login>ghost</owner-login>", 1015,
         "Object owner not found."),
        ("<pname>X</pname><login>{new}</login><passwd>Str0ng-Pass!</passwd><owner-login>{taken}</owner-login>", 1015,
         "Object owner not found."),
        ("<pname>" + "x" * 300 + "</pname><login>{new}</login><passwd>Str0ng-Pass!</passwd>", 1019,
         "Invalid value of pname: longer than 255 characters."),
    ],
    ids=["duplicate", "bad-login", "empty-login", "short-password", "empty-pname", "status", "unknown-owner",
         "customer-as-owner", "too-long"],
)  # fmt: skip
def test_customer_add_errors(api: Server, fields: str, code: int, text: str | None) -> None:
    taken = unique("cu")
    assert_ok(add_customer(api, taken))
    info = f"<gen_info>{fields.format(taken=taken, new=unique('cu'))}</gen_info>"
    packet = f"<packet><customer><add>{info}</add></customer></packet>"
    answer = api.call(packet)
    result = one(answer, "customer/add")
    assert_error(result, code, text)
    assert child_tags(result) == ["status", "errcode", "errtext"]
    assert b"Zq9x" not in etree.tostring(answer)  # a refused password is never echoed


def test_customer_delete_by_each_filter(api: Server) -> None:
    logins = [unique("cu") for _ in range(3)]
    added = [assert_ok(add_customer(api, login)) for login in logins]
    packet = (
        f"<packet><customer><del><filter><id>{added[0].findtext('id')}</id><id>999998</id></filter></del>"
        f"<del><filter><login>{logins[1]}</login></filter></del>"
        f"<del><filter><guid>{added[2].findtext('guid')}</guid></filter></del></customer></packet>"
    )
    answer = api.call(packet)
    first, missing = results(answer, "customer/del")[:2]
    assert child_tags(assert_ok(first)) == ["status", "filter-id", "id"]
    assert_error(missing, 1013, "Customer does not exist.")
    assert missing.findtext("id") == "999998"
    assert [outcome(r)[0] for r in answer.findall("customer/del/result")] == ["ok", "error", "ok", "ok"]
    assert all(outcome(r)[1] == 1013 for r in get_customers(api, "login", *logins))


# --- webspace --------------------------------------------------------------------------------------


def test_webspace_add_get_del_with_every_filter(api: Server) -> None:
    customer = unique("cu")
    customer_id = assert_ok(add_customer(api, customer)).findtext("id")
    name = f"{unique('site')}.example.com"
    hosting = (
        "<hosting><vrt_hst><property><name>ftp_login</name><value>ftp" + customer + "</value></property>"
        f"<property><name>ftp_password</name><value>{PASSWORD}</value></property><property><name>php_handler_id</name>"
        "<value>fpm</value></property><ip_address>192.0.2.10</ip_address></vrt_hst></hosting>"
    )
    extra = (
        "<htype>vrt_hst</htype><ip_address>192.0.2.10</ip_address><ip_address>2001:db8::10</ip_address>"
        "<status>0</status><external-id>sub-1</external-id><description>main site</description>"
    )
    added = assert_ok(add_webspace(api, name.upper(), customer, extra, hosting))
    webspace_id, guid = added.findtext("id") or "", added.findtext("guid") or ""
    assert child_tags(added) == ["status", "id", "guid"]
    assert all((api.home / "vhosts" / name / sub).is_dir() for sub in ("httpdocs", "logs", "private"))

    selections = [("id", webspace_id), ("name", name), ("guid", guid), ("external-id", "sub-1"),
                  ("owner-id", customer_id), ("owner-login", customer)]  # fmt: skip
    for kind, value in selections:
        (result,) = get_webspaces(api, kind, value or "")
        assert_ok(result)
        assert result.findtext("filter-id") == value and result.findtext("id") == webspace_id
        assert child_tags(result.find("data")) == ["gen_info", "hosting"]
    (result,) = get_webspaces(api, "id", webspace_id)
    info = result.find("data/gen_info")
    assert child_tags(info) == [*WEBSPACE_INFO[:8], "dns_ip_address", *WEBSPACE_INFO[8:], "description"]
    assert info is not None
    assert [e.text for e in info.iterfind("dns_ip_address")] == ["192.0.2.10", "2001:db8::10"]
    assert (info.findtext("name"), info.findtext("ascii-name")) == (name, name)
    assert info.findtext("owner-login") == customer and info.findtext("vendor-guid") == ADMIN_GUID
    hosting_out = result.find("data/hosting/vrt_hst")
    assert child_tags(hosting_out) == ["property", "ip_address", "ip_address"]
    assert result.findtext("data/hosting/vrt_hst/property/value") == "ftp" + customer
    assert PASSWORD not in etree.tostring(result).decode()

    packet = f"<packet><webspace><del><filter><name>{name}</name></filter></del></webspace></packet>"
    assert child_tags(assert_ok(one(api.call(packet), "webspace/del"))) == ["status", "filter-id", "id"]
    assert_error(get_webspaces(api, "guid", guid)[0], 1013, "Webspace does not exist.")
    kept = [path.name for path in (api.home / "vhosts" / ".deleted").iterdir() if path.name.startswith(f"{name}.")]
    assert len(kept) == 1 and not (api.home / "vhosts" / name).exists()  # content is kept by default, aside


def test_webspace_owned_by_reseller_customer_names_the_reseller_as_vendor(api: Server) -> None:
    reseller = unique("rs")
    reseller_guid = add_reseller(api, reseller).findtext("guid")
    customer = unique("cu")
    assert_ok(add_customer(api, customer, as_login=reseller))
    own, theirs = f"{unique('r')}.test", f"{unique('c')}.test"
    assert_ok(add_webspace(api, own, reseller))
    assert_ok(add_webspace(api, theirs, customer))
    admin_site = f"{unique('a')}.test"
    assert_ok(add_webspace(api, admin_site))
    vendors = {r.findtext("data/gen_info/name"): r.findtext("data/gen_info/vendor-guid")
               for r in get_webspaces(api, "name", own, theirs, admin_site)}  # fmt: skip
    assert vendors == {own: reseller_guid, theirs: reseller_guid, admin_site: ADMIN_GUID}
    (admin_owned,) = get_webspaces(api, "name", admin_site)
    assert admin_owned.findtext("data/gen_info/owner-login") == "admin"
    assert admin_owned.findtext("data/gen_info/dns_ip_address") == "127.0.0.1"  # default_ip_address
    owner_guid = get_customers(api, "login", customer)[0].findtext("data/gen_info/guid") or ""
    assert [r.findtext("data/gen_info/name") for r in get_webspaces(api, "owner-guid", owner_guid)] == [theirs]


def test_internationalised_webspace_name(api: Server) -> None:
    label = unique("m")
    name = f"{label}-münchen.example"
    result = assert_ok(add_webspace(api, name.upper()))
    (found,) = get_webspaces(api, "id", result.findtext("id") or "")
    assert found.findtext("data/gen_info/name") == name
    assert found.findtext("data/gen_info/ascii-name") == name.encode("idna").decode()
    assert (api.home / "vhosts" / name / "httpdocs").is_dir()


@pytest.mark.parametrize(
    ("setup", "hosting", "code", "text"),
    [
        ("<name>{taken}</name>", "", 1007, "Object already exists."),
        ("<name>bad_name!.test</name>", "", 1019, "Invalid value of name: 'bad_name!.test'."),
        ("<name>../etc</name>", "", 1019, None),
        ("<name>{new}</name><name>{new}</name>", "", 1019, "Invalid value of name: given more than once."),
        ("<htype>vrt_hst</htype>", "", 1019, "Invalid value of name: the element is missing."),
        ("<name>{new}</name><owner-login>admin</owner-login><owner-id>1</owner-id>", "", 1019, None),
        ("<name>{new}</name><owner-login>ghost</owner-login>", "", 1015, "Object owner not found."),
        ("<name>{new}</name><status>7</status>", "", 1019, "Invalid value of status: '7'."),
        ("<name>{new}</name><ip_address>300.1.1.1</ip_address>", "", 1019, "Invalid value of ip_address: '300.1.1.1'."),
        ("<name>{new}</name><ip_address>192.0.2.1</ip_address><ip_address>192.0.2.2</ip_address>", "", 1019, None),
        ("<name>{new}</name>", "<property><name>ftp_login</name><value>{ftp}</value></property>", 1007, None),
        ("<name>{new}</name>", "<property><name>ftp_login</name><value>-bad</value></property>", 1019,
         "Invalid value of ftp_login: '-bad'."),
        ("<name>{new}</name>", "<property><name>ftp_password</name><value>Zq9x</value></property>", 1019,
         "Invalid value of ftp_password: the password must be 5-255 characters."),
    ],
    ids=["duplicate", "bad-name", "traversal", "name-twice", "no-name", "two-owners", "unknown-owner", "status",
         "bad-ip", "two-ipv4", "ftp-login-taken", "bad-ftp-login", "short-ftp-password"],
)  # fmt: skip
def test_webspace_add_errors(api: Server, setup: str, hosting: str, code: int, text: str | None) -> None:
    taken, ftp = f"{unique('t')}.test", unique("ftp")
    property_xml = f"<property><name>ftp_login</name><value>{ftp}</value></property>"
    assert_ok(add_webspace(api, taken, hosting=f"<hosting><vrt_hst>{property_xml}</vrt_hst></hosting>"))
    new = f"{unique('n')}.test"
    hosting_xml = f"<hosting><vrt_hst>{hosting.format(ftp=ftp)}</vrt_hst></hosting>" if hosting else ""
    packet = (
        f"<packet><webspace><add><gen_setup>{setup.format(taken=taken, new=new)}</gen_setup>{hosting_xml}</add>"
        "</webspace></packet>"
    )
    answer = api.call(packet)
    assert_error(one(answer, "webspace/add"), code, text)
    assert not (api.home / "vhosts" / new).exists()
    assert b"Zq9x" not in etree.tostring(answer)


def test_webspace_del_removes_content_only_when_configured(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", env={"HOSTBACKUP_REMOVE_CONTENT_ON_DELETE": "true"})
    try:
        webspace_id = assert_ok(add_webspace(server, "gone.test")).findtext("id")
        packet = (
            f"<packet><mail><create><filter><site-id>{webspace_id}</site-id><mailname><name>info</name>"
            "<mailbox><enabled>true</enabled></mailbox></mailname></filter></create></mail></packet>"
        )
        assert_ok(one(server.call(packet), "mail/create"))
        web, mail = server.home / "vhosts" / "gone.test", server.home / "mail" / "gone.test"
        (web / "httpdocs" / "index.html").write_text("hello")
        assert (mail / "info" / "new").is_dir()
        packet = f"<packet><webspace><del><filter><id>{webspace_id}</id></filter></del></webspace></packet>"
        assert_ok(one(server.call(packet), "webspace/del"))
        assert not web.exists() and not mail.exists()
        assert not (server.home / "vhosts" / ".deleted").exists()  # removed, not moved aside
    finally:
        server.stop()


def test_webspace_del_moves_content_aside_so_a_namesake_starts_empty(api: Server) -> None:
    """Without removal (the default), a deleted webspace's files and mail are kept on disk, but not
    under its name: the next webspace of that name, anyone's, would serve and back them up."""
    name = f"{unique('aside')}.test"
    webspace_id = assert_ok(add_webspace(api, name)).findtext("id")
    web, mail = api.home / "vhosts" / name, api.home / "mail" / name
    (web / "httpdocs" / "secret.txt").write_text("the old owner's")
    (mail / "info" / "cur").mkdir(parents=True)
    assert_ok(one(api.call(f"<packet><webspace><del><filter><id>{webspace_id}</id></filter></del></webspace></packet>"),
                  "webspace/del"))  # fmt: skip
    kept = api.home / "vhosts" / ".deleted" / f"{name}.{webspace_id}" / "httpdocs" / "secret.txt"
    assert kept.read_text() == "the old owner's"
    assert (api.home / "mail" / ".deleted" / f"{name}.{webspace_id}" / "info" / "cur").is_dir()
    assert_ok(add_webspace(api, name))
    assert not (web / "httpdocs" / "secret.txt").exists() and not (mail / "info").exists()


# --- mail ------------------------------------------------------------------------------------------


def test_mail_create_get_info_remove(api: Server) -> None:
    name = f"{unique('mail')}.test"
    site = assert_ok(add_webspace(api, name)).findtext("id")
    full = (
        "<mailname><name>Info</name><cp-access>true</cp-access><mailbox><enabled>true</enabled><quota>1048576</quota>"
        "</mailbox><forwarding><enabled>true</enabled><address>boss@example.com</address></forwarding>"
        f"<alias>contact</alias><alias>hello</alias><autoresponder/><password><value>{PASSWORD}</value>"
        "<type>plain</type></password><antivir/><description>front desk</description></mailname>"
    )
    forward_only = (
        "<mailname><name>sales</name><forwarding><enabled>true</enabled><address>a@example.com</address>"
        "<address>b@example.com</address></forwarding></mailname>"
    )
    bad, duplicate = "<mailname><name>no way</name></mailname>", "<mailname><name>info</name></mailname>"
    mailnames = full + forward_only + bad + duplicate
    packet = f"<packet><mail><create><filter><site-id>{site}</site-id>{mailnames}</filter></create></mail></packet>"
    created = results(api.call(packet), "mail/create")
    assert [outcome(r)[:2] for r in created] == [("ok", None), ("ok", None), ("error", 1019), ("error", 1007)]
    assert child_tags(created[0].find("mailname")) == ["id", "name"]
    assert created[0].findtext("mailname/name") == "info"
    assert created[3].findtext("errtext") == "Object already exists." and created[3].find("mailname") is None
    maildir = api.home / "mail" / name
    assert all((maildir / "info" / sub).is_dir() for sub in ("cur", "new", "tmp"))
    assert not (maildir / "sales").exists()  # no mailbox, no Maildir

    flags = "<mailbox/><mailbox-usage/><forwarding/><aliases/><autoresponder/>"
    packet = f"<packet><mail><get_info><filter><site-id>{site}</site-id></filter>{flags}</get_info></mail></packet>"
    answer = api.call(packet)
    info, sales = results(answer, "mail/get_info")
    mailname = info.find("mailname")
    assert child_tags(mailname) == ["id", "name", "mailbox", "forwarding", "alias", "alias", "description"]
    assert child_tags(info.find("mailname/mailbox")) == ["enabled", "quota"]
    assert info.findtext("mailname/mailbox/quota") == "1048576"
    assert [e.text for e in sales.iterfind("mailname/forwarding/address")] == ["a@example.com", "b@example.com"]
    assert sales.findtext("mailname/mailbox/enabled") == "false"
    assert PASSWORD not in etree.tostring(answer).decode()

    names = "<name>sales</name><name>nobody</name>"
    packet = f"<packet><mail><get_info><filter><site-id>{site}</site-id>{names}</filter></get_info></mail></packet>"
    found, missing = results(api.call(packet), "mail/get_info")
    assert child_tags(found.find("mailname")) == ["id", "name"]
    assert_error(missing, 1013, "Mail name does not exist.")
    assert child_tags(missing) == ["status", "errcode", "errtext"]

    names = "<name>info</name><name>nobody</name>"
    packet = f"<packet><mail><remove><filter><site-id>{site}</site-id>{names}</filter></remove></mail></packet>"
    removed, unknown = results(api.call(packet), "mail/remove")
    assert assert_ok(removed).findtext("mailname/name") == "info"
    assert_error(unknown, 1013, "Mail name does not exist.")
    assert not (maildir / "info").exists()

    packet = f"<packet><mail><remove><filter><site-id>{site}</site-id></filter></remove></mail></packet>"
    assert [r.findtext("mailname/name") for r in results(api.call(packet), "mail/remove")] == ["sales"]
    packet = f"<packet><mail><get_info><filter><site-id>{site}</site-id></filter></get_info></mail></packet>"
    assert child_tags(one(api.call(packet), "mail/get_info")) == ["status"]


def test_mail_on_a_missing_webspace(api: Server) -> None:
    names = "<mailname><name>a</name></mailname><mailname><name>b</name></mailname>"
    packet = f"<packet><mail><create><filter><site-id>999999</site-id>{names}</filter></create></mail></packet>"
    created = results(api.call(packet), "mail/create")
    assert len(created) == 2
    for result in created:
        assert_error(result, 1013, "Webspace does not exist.")
    packet = "<packet><mail><get_info><filter><site-id>999999</site-id></filter><mailbox/></get_info></mail></packet>"
    assert_error(one(api.call(packet), "mail/get_info"), 1013, "Webspace does not exist.")
    packet = "<packet><mail><remove><filter><site-id>abc</site-id><name>a</name></filter></remove></mail></packet>"
    assert_error(one(api.call(packet), "mail/remove"), 1019, "Invalid value of site-id: 'abc'.")


# --- secret_key ------------------------------------------------------------------------------------


def key_call(server: Server, key: str, packet: str) -> Element:
    return server.call(packet, login=None, password=None, headers={"KEY": key})


def test_secret_key_create_use_get_info_delete(api: Server) -> None:
    packet = "<packet><secret_key><create><description>billing</description></create></secret_key></packet>"
    key = assert_ok(one(api.call(packet), "secret_key/create")).findtext("key") or ""
    assert str(uuid.UUID(key)) == key and uuid.UUID(key).version == 4

    protos = key_call(api, key, "<packet><server><get_protos/></server></packet>")
    assert_ok(one(protos, "server/get_protos"))
    reseller = unique("rs")
    assert_ok(one(key_call(api, key, f"<packet><reseller><add><gen-info><pname>K</pname><login>{reseller}</login>"
                                     f"<passwd>{PASSWORD}</passwd></gen-info></add></reseller></packet>"),
                  "reseller/add"))  # fmt: skip

    keys = f"<key>{key.upper()}</key><key>{uuid.uuid4()}</key>"
    packet = f"<packet><secret_key><get_info><filter>{keys}</filter></get_info></secret_key></packet>"
    found, missing = results(api.call(packet), "secret_key/get_info")
    assert child_tags(found.find("key_info")) == ["key", "ip_address", "description", "login"]
    assert [found.findtext(f"key_info/{tag}") for tag in ("key", "ip_address", "description", "login")] == [
        key, "127.0.0.1", "billing", "admin"]  # fmt: skip
    assert_error(missing, 1013, "Secret key does not exist.")
    assert child_tags(missing) == ["status", "errcode", "errtext", "key"]

    listing = one(
        api.call("<packet><secret_key><get_info><filter/></get_info></secret_key></packet>"), "secret_key/get_info"
    )
    assert key in [info.findtext("key") for info in listing.iterfind("key_info")]

    delete = f"<delete><filter><key>{key}</key></filter></delete>"
    packet = f"<packet><secret_key>{delete}{delete}</secret_key></packet>"
    deleted, again = (one_op.find("result") for one_op in api.call(packet).findall("secret_key/delete"))
    assert deleted is not None and again is not None
    assert child_tags(assert_ok(deleted)) == ["status", "key"] and deleted.findtext("key") == key
    assert_error(again, 1013, "Secret key does not exist.")
    refused = key_call(api, key, "<packet><server><get_protos/></server></packet>")
    assert refused.findtext("system/errcode") == "11003"


def test_secret_key_bound_to_another_address_is_refused(api: Server) -> None:
    packet = (
        "<packet><secret_key><create><ip_address>192.0.2.50, 2001:db8::50</ip_address></create></secret_key></packet>"
    )
    key = assert_ok(one(api.call(packet), "secret_key/create")).findtext("key") or ""
    refused = key_call(api, key, "<packet><server><get_protos/></server></packet>")
    assert child_tags(refused.find("system")) == ["status", "errcode", "errtext"]
    assert refused.findtext("system/errtext") == "Secret key validation failed."
    packet = f"<packet><secret_key><get_info><filter><key>{key}</key></filter></get_info></secret_key></packet>"
    assert one(api.call(packet), "secret_key/get_info").findtext("key_info/ip_address") == "192.0.2.50,2001:db8::50"


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ("<ip_address>not-an-ip</ip_address>", 1019, "Invalid value of ip_address: 'not-an-ip'."),
        ("<login>ghost</login>", 1013, "User does not exist."),
        ("<login></login>", 1019, "Invalid value of login: ''."),
    ],
)
def test_secret_key_create_errors(api: Server, body: str, code: int, text: str) -> None:
    result = one(api.call(f"<packet><secret_key><create>{body}</create></secret_key></packet>"), "secret_key/create")
    assert_error(result, code, text)


# --- cascades, mirroring, unsupported operations ---------------------------------------------------


def hold_task(db: Database, kind: TargetKind, target_id: int) -> int:
    """A task that looks like it runs on some worker, so only the deletion can touch it."""
    with db.session() as session:
        task = queue.enqueue(session, TaskRequest(kind, target_id, f"{kind}-{target_id}", 1))
        task.state, task.worker, task.lease_until = "running", "test-holder", time.time() + 3600
        task.started_at = time.time()
        return task.id


def remote_storage(db: Database, kind: TargetKind, owner_id: int) -> None:
    with db.session() as session:
        session.add(RemoteStorage(owner_kind=kind.value, owner_id=owner_id, host="ftp.example.net", login="x"))


def test_reseller_deletion_cascades_and_stops_tasks(fresh_server: Server) -> None:
    server = fresh_server
    reseller_id = int(add_reseller(server, "rita").findtext("id") or 0)
    customer_id = int(assert_ok(add_customer(server, "bob", as_login="rita")).findtext("id") or 0)
    bystander_id = int(assert_ok(add_customer(server, "jdoe")).findtext("id") or 0)
    sites = {name: int(assert_ok(add_webspace(server, name, owner)).findtext("id") or 0)
             for name, owner in (("rita.test", "rita"), ("bob.test", "bob"), ("jdoe.test", "jdoe"))}  # fmt: skip
    packet = (
        f"<packet><mail><create><filter><site-id>{sites['bob.test']}</site-id><mailname><name>info</name>"
        "<mailbox><enabled>true</enabled></mailbox></mailname></filter></create></mail>"
        "<secret_key><create><login>bob</login></create></secret_key></packet>"
    )
    answer = server.call(packet)
    assert_ok(one(answer, "mail/create"))
    bob_key = assert_ok(one(answer, "secret_key/create")).findtext("key") or ""

    db = Database(f"sqlite:///{server.home / 'hostbackup.db'}")
    held = {
        "reseller": hold_task(db, TargetKind.RESELLER, reseller_id),
        "customer": hold_task(db, TargetKind.CUSTOMER, customer_id),
        "webspace": hold_task(db, TargetKind.WEBSPACE, sites["bob.test"]),
        "own-site": hold_task(db, TargetKind.WEBSPACE, sites["rita.test"]),
        "bystander": hold_task(db, TargetKind.CUSTOMER, bystander_id),
    }
    for kind, owner_id in ((TargetKind.RESELLER, reseller_id), (TargetKind.CUSTOMER, customer_id),
                           (TargetKind.WEBSPACE, sites["bob.test"]), (TargetKind.CUSTOMER, bystander_id)):  # fmt: skip
        remote_storage(db, kind, owner_id)
    try:
        deleted = one(
            server.call(f"<packet><reseller><del><filter><id>{reseller_id}</id></filter></del></reseller></packet>"),
            "reseller/del",
        )
        assert_ok(deleted)
        assert_error(get_customers(server, "login", "bob")[0], 1013)
        remaining = [r.findtext("data/gen_info/name") for r in get_webspaces(server, "name", *sites)]
        assert remaining == [None, None, "jdoe.test"]
        selection = f"<filter><site-id>{sites['bob.test']}</site-id></filter>"
        packet = f"<packet><mail><get_info>{selection}</get_info></mail></packet>"
        assert_error(one(server.call(packet), "mail/get_info"), 1013, "Webspace does not exist.")
        assert (
            key_call(server, bob_key, "<packet><server><get_protos/></server></packet>").findtext("system/errcode")
            == "11003"
        )
        kept = server.home / "vhosts" / ".deleted" / f"bob.test.{sites['bob.test']}" / "httpdocs"
        assert kept.is_dir() and not (server.home / "vhosts" / "bob.test").exists()  # content kept by default, aside
        with db.session() as session:
            stopping = {name: session.get(Task, task_id) for name, task_id in held.items()}
            assert all(task is not None for task in stopping.values())
            flags = {name: task.cancel_requested for name, task in stopping.items() if task is not None}
        assert flags == {"reseller": True, "customer": True, "webspace": True, "own-site": True, "bystander": False}
        with db.session() as session:
            left = [(row.owner_kind, row.owner_id) for row in session.scalars(select(RemoteStorage))]
        assert left == [("customer", bystander_id)]
    finally:
        db.dispose()


def test_operations_are_mirrored_in_order(api: Server) -> None:
    login = unique("cu")
    packet = (
        f"<packet><customer><get><filter><login>{login}</login></filter><dataset><gen_info/></dataset></get>"
        f"<add><gen_info><pname>M</pname><login>{login}</login><passwd>{PASSWORD}</passwd></gen_info></add>"
        f"<get><filter><login>{login}</login></filter><dataset><gen_info/></dataset></get></customer>"
        "<server><get_protos/></server>"
        f"<customer><del><filter><login>{login}</login></filter></del></customer></packet>"
    )
    answer = api.call(packet)
    assert [str(op.tag) for op in answer] == ["customer", "server", "customer"]
    assert [str(op.tag) for op in answer[0]] == ["get", "add", "get"]
    assert [outcome(first_result(op))[1] for op in answer[0]] == [1013, None, None]
    assert [str(op.tag) for op in answer[2]] == ["del"]
    assert_ok(first_result(answer[2][0]))


@pytest.mark.parametrize(
    "packet",
    [
        "<packet><customer><set><filter><id>1</id></filter><values><gen_info/></values></set></customer></packet>",
        "<packet><webspace><set><anything/></set></webspace></packet>",
        "<packet><reseller><set/></reseller></packet>",
        "<packet><mail><update><add><filter/></add></update></mail></packet>",
    ],
)
def test_unimplemented_operations_answer_1017(api: Server, packet: str) -> None:
    answer = api.call(packet)
    (operation,) = answer[0]
    assert_error(first_result(operation), 1017, "Operation is not supported.")


def test_delete_account_cascades_on_both_databases(database: Database, tmp_path: Path) -> None:
    """The accounts layer itself, on SQLite and PostgreSQL: one statement deletes a reseller's tree."""
    admin = Caller(1, Role.ADMIN, "admin")
    with database.session() as session:
        ensure_admin(session, ADMIN_PASSWORD)
        rita = create_user(session, role=Role.RESELLER, login="rita", password=PASSWORD, owner_id=1)
        bob = create_user(session, role=Role.CUSTOMER, login="bob", password=PASSWORD, owner_id=rita.id)
        site = create_webspace(session, tmp_path / "vhosts", name="bob.test", owner=bob)
        create_mailbox(session, tmp_path / "mail", site, name="info")
        site_id = site.id
    task_id = hold_task(database, TargetKind.WEBSPACE, site_id)
    with database.session() as session:
        delete_account(
            session,
            find_user(session, admin, Role.RESELLER, login="rita"),
            Leftovers(tmp_path / "dumps", ContentRoots(tmp_path / "vhosts", tmp_path / "mail")),
        )
    with database.session() as session:
        assert session.scalars(select(User.login)).all() == ["admin"]
        assert session.scalars(select(Mailbox.id)).all() == []
        task = session.get(Task, task_id)
        assert task is not None and task.cancel_requested
    assert not (tmp_path / "vhosts" / "bob.test").exists() and not (tmp_path / "mail" / "bob.test").exists()


HUGE = "99999999999999999999999"  # beyond any SQL BIGINT
HUGE_ID_PACKETS = {
    "backup-manager/get-tasks-info": f"<backup-manager><get-tasks-info><task-id>{HUGE}</task-id></get-tasks-info>"
    "</backup-manager>",
    "backup-manager/stop-backup": f"<backup-manager><stop-backup><task-id>{HUGE}</task-id></stop-backup>"
    "</backup-manager>",
    "x-backup-manager/get-task-progress": f"<x-backup-manager><get-task-progress><task-id>{HUGE}</task-id>"
    "</get-task-progress></x-backup-manager>",
    "backup-manager/backup-customer": f"<backup-manager><backup-customer><customer-id>{HUGE}</customer-id><local/>"
    "<description>d</description></backup-customer></backup-manager>",
    "backup-manager/get-local-backup-list": f"<backup-manager><get-local-backup-list><customer-id>{HUGE}</customer-id>"
    "</get-local-backup-list></backup-manager>",
    "customer/get": f"<customer><get><filter><id>{HUGE}</id></filter><dataset><gen_info/></dataset></get></customer>",
    "webspace/get": f"<webspace><get><filter><id>{HUGE}</id></filter><dataset><gen_info/></dataset></get></webspace>",
    "database/get-db": f"<database><get-db><filter><id>{HUGE}</id></filter></get-db></database>",
    "db_server/get": f"<db_server><get><filter><id>{HUGE}</id></filter></get></db_server>",
    "customer/get owner-id": f"<customer><get><filter><owner-id>{HUGE}</owner-id></filter><dataset><gen_info/>"
    "</dataset></get></customer>",
    "webspace/get owner-id": f"<webspace><get><filter><owner-id>{HUGE}</owner-id></filter><dataset><gen_info/>"
    "</dataset></get></webspace>",
}


@pytest.mark.parametrize("operation", HUGE_ID_PACKETS)
def test_an_id_beyond_any_row_is_unknown_not_a_failure(api: Server, operation: str) -> None:
    """An id too large for the database names nothing: 1013, not 1023 with a Python class name."""
    answer = api.call(f"<packet>{HUGE_ID_PACKETS[operation]}</packet>")
    result = one(answer, operation.split()[0])
    assert result.findtext("errcode") == "1013", etree.tostring(answer)
    assert "Error" not in (result.findtext("errtext") or "")
    assert "Traceback" not in api.log.read_text(errors="replace")
