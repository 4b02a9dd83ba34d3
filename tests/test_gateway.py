"""The XML API gateway over real HTTPS: transport, envelope, versions, authentication, hardening."""

from __future__ import annotations

import http.client

import pytest
from lxml import etree

from harness import ADMIN_PASSWORD, ENDPOINT, Server, tls_context
from hostbackup.accounts.keys import create_key
from hostbackup.accounts.users import Role, create_user
from hostbackup.accounts.vault import Vault
from hostbackup.config import Settings
from hostbackup.db.engine import Database

GET_PROTOS = "<packet><server><get_protos/></server></packet>"


def system_error(root: etree._Element) -> tuple[int, str]:
    system = root.find("system")
    assert system is not None, etree.tostring(root)
    assert system.findtext("status") == "error"
    return int(system.findtext("errcode") or 0), system.findtext("errtext") or ""


def raw_post(server: Server, body: bytes, headers: dict[str, str], method: str = "POST") -> http.client.HTTPResponse:
    """http.client sends header names exactly as written (casing tests need that)."""
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=tls_context(), timeout=30)
    connection.request(method, ENDPOINT, body=body, headers=headers)
    return connection.getresponse()


def test_get_protos_lists_advertised_versions_with_default_response_version(server: Server) -> None:
    response = server.post(GET_PROTOS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = etree.fromstring(response.content)
    assert root.get("version") == "1.6.7.0"
    protos = root.findall("server/get_protos/result/protos/proto")
    assert [p.text for p in protos][:2] == ["1.5.2.0", "1.6.0.0"] and protos[-1].text == "1.6.9.1"
    assert root.findtext("server/get_protos/result/status") == "ok"


@pytest.mark.parametrize(
    ("attribute", "answered"),
    [("1.6.3.5", "1.6.3.5"), ("1.6", "1.6.9.1"), ("1.6.5", "1.6.5.0"), ("1.6.4.0", "1.6.4.0")],
)
def test_accepted_versions_are_echoed_resolved(server: Server, attribute: str, answered: str) -> None:
    root = server.call(f"<packet version='{attribute}'><server><get_protos/></server></packet>")
    assert root.get("version") == answered
    assert root.findtext("server/get_protos/result/status") == "ok"


@pytest.mark.parametrize("attribute", ["100.0.0", "1.4.0.0", "abc", "1.6.9.2", "1.7"])
def test_unsupported_version_is_1005_with_the_string_as_sent(server: Server, attribute: str) -> None:
    root = server.call(f'<packet version="{attribute}"><server><get_protos/></server></packet>')
    assert root.get("version") == attribute
    assert system_error(root) == (1005, "XML API protocol version not supported.")


def test_declaration_bom_whitespace_and_spaced_version_attribute_are_accepted(server: Server) -> None:
    bodies = [
        b"<?xml version='1.0' encoding='UTF-8' ?>\n<packet><server><get_protos/></server></packet>",
        b"\xef\xbb\xbf<packet><server><get_protos/></server></packet>",
        b"\n   <packet>\n  <server>\n    <get_protos/>\n  </server>\n</packet>\n",
        b'<packet version ="1.6.3.5"><server><get_protos/></server></packet>',
    ]
    for body in bodies:
        root = server.call(body)
        assert root.findtext("server/get_protos/result/status") == "ok", body


def test_curl_style_form_content_type_is_treated_as_xml(server: Server) -> None:
    root = server.call(GET_PROTOS, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert root.findtext("server/get_protos/result/status") == "ok"


def test_wrong_password_unknown_login_and_no_credentials_are_1001(server: Server) -> None:
    assert system_error(server.call(GET_PROTOS, password="wrong-one")) == (
        1001,
        "Authentication failed - wrong login or password.",
    )
    assert system_error(server.call(GET_PROTOS, login="nobody", password="whatever"))[0] == 1001
    assert system_error(server.call(GET_PROTOS, login=None, password=None)) == (
        1001,
        "Authentication failed - no credentials.",
    )


def test_repeated_failures_lock_the_login_even_for_the_right_password(fresh_server: Server) -> None:
    for _ in range(5):
        assert system_error(fresh_server.call(GET_PROTOS, password="wrong-one"))[0] == 1001
    assert system_error(fresh_server.call(GET_PROTOS)) == (1012, "Login is locked.")


@pytest.mark.parametrize(
    ("login_header", "password_header"),
    [
        ("HTTP_AUTH_LOGIN", "HTTP_AUTH_PASSWD"),
        ("http_auth_login", "http_auth_passwd"),
        ("Http_auth_login", "Http_auth_passwd"),
        ("HTTP-AUTH-LOGIN", "HTTP-AUTH-PASSWD"),
    ],
)
def test_header_names_in_any_case_survive_the_server_stack(
    server: Server, login_header: str, password_header: str
) -> None:
    headers = {login_header: "admin", password_header: ADMIN_PASSWORD, "Content-Type": "TEXT/XML"}
    response = raw_post(server, GET_PROTOS.encode(), headers)
    assert response.status == 200
    assert etree.fromstring(response.read()).findtext("server/get_protos/result/status") == "ok"


def test_pretty_print_header_indents_the_answer(server: Server) -> None:
    response = server.post(GET_PROTOS, headers={"HTTP_PRETTY_PRINT": "TRUE"})
    assert b"\n  <server>\n" in response.content
    assert b"\n" not in server.post(GET_PROTOS).content.split(b"?>", 1)[1].strip()


def _open_home(server: Server) -> tuple[Database, Vault]:
    settings = Settings.load(server.home)
    return Database(settings.effective_database_url), Vault(settings.secret_key_file)


def test_secret_key_authenticates_as_its_user_only_from_bound_ips(fresh_server: Server) -> None:
    db, vault = _open_home(fresh_server)
    with db.session() as session:
        customer = create_user(session, role=Role.CUSTOMER, login="keyuser", password="pass-word-1", owner_id=1)
        good = create_key(session, vault, customer, ["127.0.0.1"], "billing")
        elsewhere = create_key(session, vault, customer, ["192.0.2.10"], "other host")
    db.dispose()
    probe = "<packet><backup-manager><get-tasks-info/></backup-manager></packet>"
    root = fresh_server.call(probe, login=None, password=None, headers={"KEY": good})
    assert root.findtext("backup-manager/get-tasks-info/result/status") == "ok"
    # a non-empty KEY wins over login/password headers, even valid ones
    refused = fresh_server.call(GET_PROTOS, headers={"KEY": elsewhere})
    assert system_error(refused) == (11003, "Secret key validation failed.")
    unknown = fresh_server.call(GET_PROTOS, headers={"Key": "0f3c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"})
    assert system_error(unknown)[0] == 11003


def test_not_well_formed_packet_is_1014_with_libxml2_text(server: Server) -> None:
    root = server.call("<packet><wrongly formatted xml</packet>")
    assert root.get("version") == "1.6.7.0"
    assert system_error(root) == (
        1014,
        "Parser error: Request is invalid. Error in line 1: Specification mandates value for attribute formatted",
    )
    assert system_error(server.call(b""))[1].endswith("Error in line 1: Document is empty")


def test_schema_invalid_packet_reports_the_line(server: Server) -> None:
    body = "<packet>\n<backup-manager>\n<backup-customer>\n<local/>\n</backup-customer>\n</backup-manager>\n</packet>"
    code, text = system_error(server.call(body))
    assert code == 1014
    assert text == (
        "Parser error: Request is invalid. Error in line 4: Element 'local': This element is not expected. "
        "Expected is one of ( customer-id, customer-login )."
    )


def test_check_up_order_parse_then_version_then_auth_then_schema(server: Server) -> None:
    # invalid schema but bad password: authentication is checked first
    bad_schema = "<packet><backup-manager><backup-customer><local/></backup-customer></backup-manager></packet>"
    assert system_error(server.call(bad_schema, password="wrong-one"))[0] == 1001
    # bad version beats bad password
    assert system_error(server.call('<packet version="9"><x/></packet>', password="wrong-one"))[0] == 1005
    # an unknown operator is a schema error
    code, text = system_error(server.call("<packet><client><get/></client></packet>"))
    assert code == 1014 and "Element 'client': This element is not expected." in text


def test_multi_operator_packet_is_answered_in_order(server: Server) -> None:
    body = (
        "<packet><server><get_protos/></server>"
        "<backup-manager><get-supported-protocols/><get-tasks-info/><get-supported-protocols/></backup-manager>"
        "<server><get_protos/><get/></server></packet>"
    )
    root = server.call(body)
    assert [child.tag for child in root] == ["server", "backup-manager", "server"]
    assert [op.tag for op in root[1]] == ["get-supported-protocols", "get-tasks-info", "get-supported-protocols"]
    assert [op.tag for op in root[2]] == ["get_protos", "get"]
    unsupported = root[2][1].find("result")
    assert unsupported is not None and unsupported.findtext("errcode") == "1017"
    assert root[2][0].findtext("result/status") == "ok"


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE packet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<packet><server><get_protos>&xxe;</get_protos></server></packet>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<packet><server><get_protos>&lol9;</get_protos></server></packet>"""


# the probe is skipped for plain ASCII/UTF-8 bodies without `<!`: these must still take it
UTF16_XXE = XXE.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
LATIN1_XXE = XXE.replace(b'version="1.0"', b'version="1.0" encoding="ISO-8859-1"')


@pytest.mark.parametrize(
    "body", [XXE, BILLION_LAUGHS, UTF16_XXE, LATIN1_XXE], ids=["xxe", "billion-laughs", "utf-16", "latin-1"]
)
def test_doctype_attacks_are_refused_and_the_server_stays_fast(server: Server, body: bytes) -> None:
    response = server.post(body)
    assert b"root:" not in response.content
    code, text = system_error(etree.fromstring(response.content))
    assert code == 1014 and text.endswith("DOCTYPE is not allowed")
    assert server.call(GET_PROTOS).findtext("server/get_protos/result/status") == "ok"


def test_oversized_body_is_413_without_xml(server: Server) -> None:
    body = b"<packet>" + b" " * (16 * 1024 * 1024 + 10) + b"</packet>"
    response = server.post(body)
    assert response.status_code == 413
    assert response.content == b""
    assert server.call(GET_PROTOS).findtext("server/get_protos/result/status") == "ok"


def test_other_methods_are_405_and_other_paths_404(server: Server) -> None:
    response = server.client.get(server.url)
    assert response.status_code == 405 and response.headers["allow"] == "POST" and response.content == b""
    assert server.client.put(server.url, content=b"<packet/>").status_code == 405
    other = server.client.post(server.url.replace("agent.php", "other.php"), content=GET_PROTOS)
    assert other.status_code == 404 and other.content == b""


def test_pypleski_talks_to_the_server_over_tls(server: Server) -> None:
    from pypleski.core import PleskApiClient

    client = PleskApiClient("127.0.0.1", server.port, unverified_ssl=True)
    client.set_credentials("admin", ADMIN_PASSWORD)
    root = etree.fromstring(client.request_from_string(GET_PROTOS).encode())
    assert root.findtext("server/get_protos/result/status") == "ok"
    assert "1.6.9.1" in [proto.text for proto in root.iter("proto")]
