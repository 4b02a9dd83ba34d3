"""Request packet parsing and schema validation (spec §1.3, §1.5, §2.4, §4, §5).

No server, no network: these tests call ``parse_packet`` / ``validate_packet`` directly.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from hostbackup.xmlapi.packet import OPERATORS, SCHEMA_DIR, PacketError, parse_packet, validate_packet

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
PLESK_XSD = SHARED / "plesk-xsd"
SPEC = SHARED / "spec" / "xml-api.md"

PREFIX = "Parser error: Request is invalid. Error in line "


def check(body: bytes | str) -> None:
    """Parse and validate; raises PacketError."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    validate_packet(parse_packet(data))


def errtext(body: bytes | str) -> str:
    with pytest.raises(PacketError) as info:
        check(body)
    return info.value.errtext


# --------------------------------------------------------------------------------------------
# Request examples of the specification, copied by hand (§4 backup-manager, §5 account operators)
# --------------------------------------------------------------------------------------------

BACKUP_MANAGER_EXAMPLES: list[str] = [
    # 4.2
    "<packet><backup-manager><get-supported-protocols/></backup-manager></packet>",
    # 4.3
    "<packet><backup-manager><get-remote-storage-settings><customer-id>18</customer-id>"
    "<protocol>ftp</protocol></get-remote-storage-settings></backup-manager></packet>",
    # 4.4
    "<packet><backup-manager><set-remote-storage-settings><customer-id>18</customer-id><settings>"
    "<protocol>ftp</protocol><host>ftp.example.net</host><port>21</port><directory>/backups/jdoe</directory>"
    "<login>jdoe</login><password>s3cret-FTP</password><passive-mode>true</passive-mode></settings>"
    "</set-remote-storage-settings></backup-manager></packet>",
    # 4.5
    "<packet><backup-manager><backup-customer><customer-id>18</customer-id><local/>"
    "<description>Standard weekly backup</description><split-size>0</split-size></backup-customer>"
    "</backup-manager></packet>",
    "<packet><backup-manager><backup-customer><customer-id>18</customer-id><local/>"
    "<description>Standard weekly backup</description><split-size>0</split-size><only-configuration/>"
    "</backup-customer></backup-manager></packet>",
    '<packet version="1.6.9.1"><backup-manager><backup-customer><customer-login>jdoe</customer-login>'
    "<remote>ftp</remote><prefix>nightly</prefix><description/><split-size>1048576</split-size><only-hosting/>"
    "</backup-customer></backup-manager></packet>",
    # 4.6
    "<packet><backup-manager><backup-webspace><webspace-name>example.com</webspace-name><remote>ftp</remote>"
    "<prefix>example.com</prefix><description>weekly</description><split-size>0</split-size></backup-webspace>"
    "</backup-manager></packet>",
    # 4.7
    "<packet><backup-manager><backup-reseller><reseller-login>rita</reseller-login><local/>"
    "<description>reseller full</description></backup-reseller></backup-manager></packet>",
    # 4.8
    "<packet><backup-manager><backup-server><local/><description>full server</description>"
    "<only-configuration/></backup-server></backup-manager></packet>",
    # 4.9
    "<packet><backup-manager><get-tasks-info><task-id>2</task-id></get-tasks-info></backup-manager></packet>",
    # 4.10
    "<packet><backup-manager><stop-backup><task-id>5</task-id></stop-backup></backup-manager></packet>",
    # 4.11
    "<packet><backup-manager><get-local-backup-list><customer-login>jdoe</customer-login>"
    "</get-local-backup-list></backup-manager></packet>",
    # 4.12
    "<packet><backup-manager><remove-file><customer-id>18</customer-id><filename>backup_2311141412.tar</filename>"
    "</remove-file></backup-manager></packet>",
    # 4.13
    "<packet><backup-manager><download-file><customer-id>18</customer-id><filename>MyBackup.bak</filename>"
    "</download-file></backup-manager></packet>",
    # 4.15
    "<packet><backup-manager><import-file><customer-id>18</customer-id>"
    "<tmp-filename>/usr/local/psa/tmp/MyBackup_8FZruf</tmp-filename></import-file></backup-manager></packet>",
    # 4.16
    "<packet><backup-manager><get-server-wide-settings/></backup-manager></packet>",
    # 4.17
    "<packet><backup-manager><set-server-wide-settings><settings><max-backup-processes>4</max-backup-processes>"
    "<keep-local-backup>true</keep-local-backup></settings></set-server-wide-settings></backup-manager></packet>",
]

ACCOUNT_EXAMPLES: list[str] = [
    # 5.1
    "<packet><server><get_protos/></server></packet>",
    # 5.2
    '<packet version="1.6.9.1"><customer><add><gen_info><cname>Example Ltd.</cname><pname>John Doe</pname>'
    "<login>jdoe</login><passwd>Str0ng-Pass!</passwd><status>0</status><email>jdoe@example.com</email>"
    "<country>US</country></gen_info></add></customer></packet>",
    "<packet><customer><get><filter><login>jdoe</login></filter><dataset><gen_info/></dataset></get></customer></packet>",
    "<packet><customer><del><filter><id>18</id></filter></del></customer></packet>",
    # 5.3
    "<packet><reseller><add><gen-info><pname>Rita Reseller</pname><login>rita</login>"
    "<passwd>Str0ng-Pass!</passwd></gen-info><permissions><permission><name>allow_ftp_backups</name><value>false</value></permission>"
    "</permissions></add></reseller></packet>",
    "<packet><reseller><get><filter><id>19</id></filter><dataset><gen-info/><permissions/></dataset></get>"
    "</reseller></packet>",
    # 5.4
    "<packet><webspace><add><gen_setup><name>example.com</name><owner-id>18</owner-id><htype>vrt_hst</htype>"
    "<ip_address>192.0.2.10</ip_address><status>0</status></gen_setup><hosting><vrt_hst><property>"
    "<name>ftp_login</name><value>exftp</value></property><property><name>ftp_password</name>"
    "<value>Str0ng-Pass!</value></property><ip_address>192.0.2.10</ip_address></vrt_hst></hosting></add>"
    "</webspace></packet>",
    "<packet><webspace><get><filter><name>example.com</name></filter><dataset><gen_info/></dataset></get>"
    "</webspace></packet>",
    "<packet><webspace><del><filter><id>7</id></filter></del></webspace></packet>",
    # 5.5
    "<packet><db_server><add><host>db2.example.net</host><port>5432</port><type>postgresql</type>"
    "<admin>postgres</admin><password>Str0ng-Pass!</password></add></db_server></packet>",
    "<packet><db_server><get><filter><id>1</id></filter></get></db_server></packet>",
    "<packet><db_server><get-default><filter><type>mysql</type></filter></get-default></db_server></packet>",
    # 5.6
    "<packet><database><add-db><webspace-id>7</webspace-id><name>wpdb</name><type>mysql</type>"
    "<db-server-id>1</db-server-id></add-db></database></packet>",
    "<packet><database><get-db><filter><webspace-id>7</webspace-id></filter></get-db></database></packet>",
    "<packet><database><del-db><filter><id>12</id></filter></del-db></database></packet>",
    # 5.7
    "<packet><mail><create><filter><site-id>7</site-id><mailname><name>info</name><mailbox><enabled>true</enabled>"
    "</mailbox><password><value>Str0ng-Pass!</value><type>plain</type></password></mailname></filter></create>"
    "</mail></packet>",
    "<packet><mail><get_info><filter><site-id>7</site-id><name>info</name></filter><mailbox/></get_info></mail></packet>",
    # 5.8
    "<packet><secret_key><create><ip_address>192.0.2.50</ip_address><description>billing</description></create>"
    "</secret_key></packet>",
    "<packet><secret_key><get_info><filter><key>0f3c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b</key></filter></get_info>"
    "</secret_key></packet>",
    "<packet><secret_key><delete><filter><key>0f3c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b</key></filter></delete>"
    "</secret_key></packet>",
]

ALL_EXAMPLES = BACKUP_MANAGER_EXAMPLES + ACCOUNT_EXAMPLES


@pytest.mark.parametrize("body", ALL_EXAMPLES)
def test_spec_request_example_validates(body: str) -> None:
    check(body)


@pytest.fixture(scope="module")
def plesk_backup_schema() -> etree.XMLSchema:
    wrapper = PLESK_XSD / "backup_packet_input.xsd"
    if not wrapper.is_file():
        pytest.skip(f"Plesk reference schemas not found at {PLESK_XSD}")
    return etree.XMLSchema(etree.parse(str(wrapper)))


@pytest.mark.parametrize("body", BACKUP_MANAGER_EXAMPLES)
def test_backup_manager_example_matches_plesk_schema(body: str, plesk_backup_schema: etree.XMLSchema) -> None:
    """The same packets are also valid for Plesk's own backup-manager input schema."""
    document = etree.fromstring(body.encode())
    assert plesk_backup_schema.validate(document), plesk_backup_schema.error_log


def _spec_request_examples() -> list[str]:
    text = SPEC.read_text(encoding="utf-8")
    found: list[str] = []
    for block in re.findall(r"```xml\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if not line.startswith("<packet") or "<result>" in line or "<system>" in line:
                continue
            found.append(line)
    return found


def test_hand_copied_examples_cover_the_spec() -> None:
    """Every request example in the spec is one of the literals above (keeps the copies honest)."""
    if not SPEC.is_file():
        pytest.skip(f"specification not found at {SPEC}")
    spec_requests = _spec_request_examples()
    assert len(spec_requests) >= 30
    missing = [body for body in spec_requests if body not in ALL_EXAMPLES]
    assert missing == []


# --------------------------------------------------------------------------------------------
# §2.4 error texts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "<packet><backup-manager><backup-customer><local/><customer-id>18</customer-id>"
            "<description/></backup-customer></backup-manager></packet>",
            "1: Element 'local': This element is not expected. Expected is one of ( customer-id, customer-login ).",
            id="local-before-customer-id",
        ),
        pytest.param(
            "<packet><backup-manager><backup-customer><customer-id>18</customer-id><local/>"
            "</backup-customer></backup-manager></packet>",
            "1: Element 'backup-customer': Missing child element(s). Expected is one of ( prefix, description ).",
            id="missing-description",
        ),
        pytest.param(
            "<packet><backup-manager><get-tasks-info><customer-id>0</customer-id></get-tasks-info>"
            "</backup-manager></packet>",
            "1: Element 'customer-id': '0' is not a valid value of the atomic type 'id_type'.",
            id="customer-id-zero",
        ),
        pytest.param(
            "<packet><client><get/></client></packet>",
            "1: Element 'client': This element is not expected. Expected is one of ( request-settings, "
            "backup-manager, customer, reseller, webspace, db_server, database, mail, secret_key, server ).",
            id="unknown-operator",
        ),
        pytest.param(
            "<pocket><server><get_protos/></server></pocket>",
            "1: Element 'pocket': No matching global declaration available for the validation root.",
            id="wrong-root",
        ),
        pytest.param(
            "<packet><wrongly formatted xml</packet>",
            "1: Specification mandates value for attribute formatted",
            id="not-well-formed",
        ),
        pytest.param(b"", "1: Document is empty", id="empty-body"),
    ],
)
def test_section_2_4_errtext(body: str | bytes, expected: str) -> None:
    assert errtext(body) == PREFIX + expected


def test_empty_typed_element_reports_its_line() -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<packet version="1.6.3.2">\n'
        "<customer>\n"
        "<add>\n"
        "<gen_info><pname>John Doe</pname><login>jdoe</login><passwd>Str0ng-Pass!</passwd>\n"
        "<owner-id></owner-id>\n"
        "</gen_info>\n"
        "</add>\n"
        "</customer>\n"
        "</packet>\n"
    )
    with pytest.raises(PacketError) as info:
        check(body)
    assert info.value.line == 6
    assert info.value.message == "Element 'owner-id': '' is not a valid value of the atomic type 'int'."
    assert info.value.errtext == (PREFIX + "6: Element 'owner-id': '' is not a valid value of the atomic type 'int'.")


def test_line_numbers_count_leading_blank_lines() -> None:
    body = "\n\n  <packet>\n    <backup-manager>\n      <get-supported-protocols/>\n      <bogus/>\n"
    body += "    </backup-manager>\n  </packet>\n"
    with pytest.raises(PacketError) as info:
        check(body)
    assert info.value.line == 6
    assert info.value.message.startswith("Element 'bogus': This element is not expected.")


def test_syntax_error_line_is_the_line_of_the_body() -> None:
    body = b"<packet>\n<server>\n<get_protos/>\n</serve>\n</packet>"
    with pytest.raises(PacketError) as info:
        parse_packet(body)
    assert info.value.line == 4
    assert "server" in info.value.message
    assert ", line" not in info.value.message


def test_packet_error_shape() -> None:
    error = PacketError(3, "boom")
    assert (error.line, error.message) == (3, "boom")
    assert error.errtext == "Parser error: Request is invalid. Error in line 3: boom"
    assert str(error) == error.errtext


# --------------------------------------------------------------------------------------------
# §1.3 DOCTYPE ban and hardening
# --------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE packet [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<packet><customer><get><filter><login>&lol9;</login></filter><dataset><gen_info/></dataset></get></customer></packet>
"""

XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE packet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<packet><customer><get><filter><login>&xxe;</login></filter><dataset><gen_info/></dataset></get></customer></packet>
"""

EXTERNAL_DTD = (
    b'<?xml version="1.0"?>\n<!-- note -->\n<!DOCTYPE packet SYSTEM "http://192.0.2.1/evil.dtd">\n'
    b"<packet><server><get_protos/></server></packet>"
)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        pytest.param(BILLION_LAUGHS, 2, id="billion-laughs"),
        pytest.param(XXE, 2, id="xxe-file"),
        pytest.param(EXTERNAL_DTD, 3, id="external-dtd"),
        pytest.param(b"<!DOCTYPE packet><packet><server><get_protos/></server></packet>", 1, id="bare-doctype"),
        pytest.param(
            b'<!DOCTYPE packet [<!ENTITY a "b">]><packet><server><get_protos/></server></packet>',
            1,
            id="unused-entity",
        ),
    ],
)
def test_doctype_is_refused(body: bytes, line: int) -> None:
    started = time.monotonic()
    with pytest.raises(PacketError) as info:
        parse_packet(body)
    assert time.monotonic() - started < 2
    assert info.value.message == "DOCTYPE is not allowed"
    assert info.value.line == line
    assert info.value.errtext == f"{PREFIX}{line}: DOCTYPE is not allowed"


def test_doctype_text_inside_content_is_not_a_doctype() -> None:
    body = "<packet><backup-manager><backup-server><local/>"
    body += "<description>&lt;!DOCTYPE x&gt; <![CDATA[<!DOCTYPE y>]]></description>"
    body += "</backup-server></backup-manager></packet>"
    root = parse_packet(body.encode())
    validate_packet(root)
    assert root.findtext("backup-manager/backup-server/description") == "<!DOCTYPE x> <!DOCTYPE y>"


def test_undeclared_entity_is_not_well_formed() -> None:
    with pytest.raises(PacketError) as info:
        parse_packet(b"<packet><server><get_protos>&xxe;</get_protos></server></packet>")
    assert info.value.message == "Entity 'xxe' not defined"


# --------------------------------------------------------------------------------------------
# §1.3 / Appendix B tolerated variants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'<?xml version="1.0" encoding="UTF-8"?>\n<packet><server><get_protos/></server></packet>',
            id="decl",
        ),
        pytest.param(
            b"<?xml version='1.0' encoding='UTF-8' ?>\n<packet><server><get_protos/></server></packet>",
            id="single-quotes",
        ),
        pytest.param(b"\xef\xbb\xbf<packet><server><get_protos/></server></packet>", id="bom"),
        pytest.param(
            b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?><packet><server><get_protos/></server></packet>',
            id="bom-and-decl",
        ),
        pytest.param(b"\n    <packet>\n  <server><get_protos/></server>\n</packet>\n", id="leading-whitespace"),
        pytest.param(b'<packet version ="1.6.3.5"><server><get_protos/></server></packet>', id="space-before-equals"),
        pytest.param(
            b"<packet>\n  <backup-manager>\n    <get-supported-protocols/>\n  </backup-manager>\n</packet>",
            id="indented",
        ),
        pytest.param(
            (
                '<?xml version="1.0" encoding="ISO-8859-1"?><packet><backup-manager><backup-server><local/>'
                "<description>Sauvegarde compl\u00e8te</description>"
                "</backup-server></backup-manager></packet>"
            ).encode("iso-8859-1"),
            id="latin-1-declared",
        ),
        pytest.param(
            "<packet><server><get_protos/></server></packet>".encode("utf-16"),
            id="utf-16-with-bom",
        ),
    ],
)
def test_tolerated_variants(body: bytes) -> None:
    check(body)


def test_version_attribute_is_kept() -> None:
    root = parse_packet(b'<packet version ="1.6.3.5"><server><get_protos/></server></packet>')
    assert root.get("version") == "1.6.3.5"


def test_encoding_from_declaration() -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><packet><backup-manager><backup-server><local/>'
    body += "<description>compl\u00e8te</description></backup-server></backup-manager></packet>"
    root = parse_packet(body.encode("iso-8859-1"))
    assert root.findtext("backup-manager/backup-server/description") == "compl\u00e8te"


def test_invalid_utf8_without_declaration_is_a_syntax_error() -> None:
    with pytest.raises(PacketError) as info:
        parse_packet(b"<packet><server><get_protos>\xe9</get_protos></server></packet>")
    assert info.value.line == 1


def test_request_settings_first_only() -> None:
    check(
        "<packet><request-settings><setting><name>a</name><value>b</value></setting><setting><name>c</name>"
        "</setting></request-settings><server><get_protos/></server></packet>"
    )
    message = errtext(
        "<packet><server><get_protos/></server><request-settings><setting><name>a</name></setting>"
        "</request-settings></packet>"
    )
    assert message == PREFIX + "1: Element 'request-settings': This element is not expected."


def test_packet_needs_an_operator() -> None:
    assert errtext("<packet/>").startswith(
        PREFIX
        + "1: Element 'packet': Missing child element(s). "
        + "Expected is one of ( request-settings, backup-manager,"
    )


def test_operators_in_any_order_and_repeated() -> None:
    check(
        "<packet><server><get_protos/></server><backup-manager><get-supported-protocols/><get-tasks-info/>"
        "</backup-manager><server><get_protos/><get_protos/></server>"
        "<x-backup-manager><get-task-progress><task-id>1</task-id></get-task-progress></x-backup-manager>"
        "<backup-manager><get-server-wide-settings/></backup-manager></packet>"
    )


def test_operators_constant_matches_schema() -> None:
    xs = "{http://www.w3.org/2001/XMLSchema}"
    schema = etree.parse(str(SCHEMA_DIR / "packet.xsd"))
    choice = schema.find(f"{xs}element[@name='packet']/{xs}complexType/{xs}sequence/{xs}choice")
    assert choice is not None
    assert tuple(element.get("name") for element in choice.iterfind(f"{xs}element")) == OPERATORS
    assert OPERATORS[-1] == "x-backup-manager"


def test_unknown_attribute_is_refused() -> None:
    message = errtext("<packet lang='en'><server><get_protos/></server></packet>")
    assert message == PREFIX + "1: Element 'packet', attribute 'lang': The attribute 'lang' is not allowed."


# --------------------------------------------------------------------------------------------
# Operation structures
# --------------------------------------------------------------------------------------------


def test_customer_add_1_6_9_1_with_packages_to_pool() -> None:
    check(
        '<packet version="1.6.9.1"><customer><add><gen_info><pname>John Doe</pname><login>jdoe</login>'
        "<passwd>Str0ng-Pass!</passwd></gen_info><add-packages-to-customer-pool><package><name>wordpress</name>"
        "</package></add-packages-to-customer-pool></add></customer></packet>"
    )
    check(
        '<packet version="1.6.9.1"><customer><add><gen_info><pname>John Doe</pname><login>jdoe</login>'
        "<passwd>Str0ng-Pass!</passwd></gen_info><add-packages-to-customer-pool/></add></customer></packet>"
    )


def test_customer_add_full_gen_info() -> None:
    check(
        "<packet><customer><add><gen_info><cname>C</cname><pname>P</pname><login>l</login><passwd>secret</passwd>"
        "<status>16</status><phone>1</phone><fax>2</fax><email>a@b.c</email><address>x</address><city>y</city>"
        "<state>z</state><pcode>1</pcode><country>DE</country><locale>de-DE</locale>"
        "<owner-login>rita</owner-login><external-id>e</external-id><description>d</description></gen_info></add>"
        "</customer></packet>"
    )


@pytest.mark.parametrize(
    "body",
    [
        "<packet><customer><set><filter><id>abc</id></filter><values><gen_info><bogus x='1'>text</bogus>"
        "</gen_info></values></set></customer></packet>",
        "<packet><customer><change-owner>anything <at/> all</change-owner></customer></packet>",
        "<packet><customer><get-domain-list><filter><login>jdoe</login></filter></get-domain-list></customer></packet>",
        "<packet><webspace><set><filter><name>example.com</name></filter><values><hosting/></values></set></webspace>"
        "</packet>",
        "<packet><webspace><db-servers><list><filter/></list></db-servers></webspace></packet>",
        "<packet><server><get><gen_info/><stat/></get></server></packet>",
        "<packet><server><reboot/></server></packet>",
        "<packet><reseller><set><filter><all/></filter><values/></set></reseller></packet>",
        "<packet><reseller><ippool-add-ip whatever='1'/></reseller></packet>",
        "<packet><mail><update><add><filter><site-id>x</site-id></filter></add></update></mail></packet>",
        "<packet><mail><remove><filter><site-id>7</site-id><name>info</name></filter></remove></mail></packet>",
        "<packet><database><add-db-user><db-id>zz</db-id></add-db-user></database></packet>",
        "<packet><database><assign-to-subscription/></database></packet>",
        "<packet><db_server><del><filter><id>-3</id></filter></del></db_server></packet>",
        "<packet><db_server><get-supported-types/></db_server></packet>",
    ],
)
def test_unimplemented_operations_pass_unchecked(body: str) -> None:
    check(body)


def test_unimplemented_operation_between_implemented_ones() -> None:
    check(
        "<packet><customer><get><filter/><dataset><gen_info/></dataset></get><set>x</set>"
        "<del><filter><login>a</login><login>b</login></filter></del></customer></packet>"
    )


def test_db_server_holds_exactly_one_operation() -> None:
    message = errtext(
        "<packet><db_server><get><filter/></get><get-default><filter/></get-default></db_server></packet>"
    )
    assert message == PREFIX + "1: Element 'get-default': This element is not expected."
    assert errtext("<packet><db_server/></packet>").startswith(
        PREFIX + "1: Element 'db_server': Missing child element(s). Expected is one of ( add, get, get-default,"
    )
    check(
        "<packet><db_server><get><filter/></get></db_server><db_server><get-default><filter/></get-default>"
        "</db_server></packet>"
    )


def test_get_tasks_info_takes_at_most_one_selector() -> None:
    message = errtext(
        "<packet><backup-manager><get-tasks-info><customer-id>3</customer-id><task-id>2</task-id>"
        "</get-tasks-info></backup-manager></packet>"
    )
    assert message == PREFIX + "1: Element 'task-id': This element is not expected."
    check("<packet><backup-manager><get-tasks-info/></backup-manager></packet>")
    check("<packet><backup-manager><get-tasks-info><server/></get-tasks-info></backup-manager></packet>")
    check("<packet><backup-manager><get-tasks-info><task-id>-1</task-id></get-tasks-info></backup-manager></packet>")


def test_task_id_type() -> None:
    message = errtext(
        "<packet><backup-manager><stop-backup><task-id>x1</task-id></stop-backup></backup-manager></packet>"
    )
    assert message.startswith(PREFIX + "1: Element 'task-id': [facet 'pattern'] The value 'x1' is not accepted")


def test_backup_customer_selectors_are_untyped() -> None:
    for value in ("abc", "0", "-1", ""):
        check(
            f"<packet><backup-manager><backup-customer><customer-id>{value}</customer-id><local/><description/>"
            "</backup-customer></backup-manager></packet>"
        )
    check(
        "<packet><backup-manager><backup-reseller><reseller-id>x</reseller-id><remote>sftp</remote>"
        "<description/><only-mail>ignored</only-mail><only-configuration>ignored</only-configuration>"
        "</backup-reseller></backup-manager></packet>"
    )


def test_backup_webspace_selector_is_typed() -> None:
    message = errtext(
        "<packet><backup-manager><backup-webspace><webspace-id>abc</webspace-id><local/><description/>"
        "</backup-webspace></backup-manager></packet>"
    )
    assert message == PREFIX + "1: Element 'webspace-id': 'abc' is not a valid value of the atomic type 'id_type'."


def test_split_size_is_int() -> None:
    message = errtext(
        "<packet><backup-manager><backup-server><local/><description/><split-size>1G</split-size>"
        "</backup-server></backup-manager></packet>"
    )
    assert message == PREFIX + "1: Element 'split-size': '1G' is not a valid value of the atomic type 'int'."
    check(
        "<packet><backup-manager><backup-server><local/><description/><split-size> -1 </split-size>"
        "</backup-server></backup-manager></packet>"
    )


def test_local_must_be_empty() -> None:
    message = errtext(
        "<packet><backup-manager><backup-server><local>x</local><description/></backup-server></backup-manager></packet>"
    )
    assert message == (
        PREFIX + "1: Element 'local': Character content is not allowed, because the content type is empty."
    )


def test_backup_options_order() -> None:
    check(
        "<packet><backup-manager><backup-webspace><webspace-id>7</webspace-id><remote>ftp</remote><prefix>p</prefix>"
        "<description>d</description><split-size>10</split-size><only-mail/><only-configuration/>"
        "</backup-webspace></backup-manager></packet>"
    )
    message = errtext(
        "<packet><backup-manager><backup-server><local/><description/><only-hosting/><only-mail/>"
        "</backup-server></backup-manager></packet>"
    )
    assert (
        message == PREFIX + "1: Element 'only-mail': This element is not expected. Expected is ( only-configuration )."
    )


def test_remote_storage_settings_with_all_fields() -> None:
    check(
        "<packet xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'><backup-manager><set-remote-storage-settings>"
        "<server/><settings><protocol>ftp</protocol><host>h</host><port>2121</port><directory>/d</directory>"
        "<login>l</login><password xsi:nil='true'/><passive-mode>1</passive-mode><use-ftps>true</use-ftps>"
        "</settings></set-remote-storage-settings></backup-manager></packet>"
    )
    check(
        "<packet><backup-manager><set-remote-storage-settings><settings><protocol>ftp</protocol><password/>"
        "</settings></set-remote-storage-settings><get-remote-storage-settings><protocol>ftp</protocol>"
        "</get-remote-storage-settings></backup-manager></packet>"
    )
    message = errtext(
        "<packet><backup-manager><set-remote-storage-settings><settings><protocol>ftp</protocol>"
        "<use-ftps>yes</use-ftps></settings></set-remote-storage-settings></backup-manager></packet>"
    )
    assert message == PREFIX + "1: Element 'use-ftps': 'yes' is not a valid value of the atomic type 'boolean'."


def test_import_file_ignore_sign() -> None:
    check(
        "<packet><backup-manager><import-file><webspace-name>example.com</webspace-name><tmp-filename>/tmp/x"
        "</tmp-filename><ignore-sign>true</ignore-sign></import-file></backup-manager></packet>"
    )
    message = errtext(
        "<packet><backup-manager><import-file><tmp-filename>/tmp/x</tmp-filename></import-file></backup-manager>"
        "</packet>"
    )
    assert message.startswith(PREFIX + "1: Element 'tmp-filename': This element is not expected. Expected is one of (")


def test_get_local_backup_list_requires_owner() -> None:
    message = errtext("<packet><backup-manager><get-local-backup-list/></backup-manager></packet>")
    assert message == (
        PREFIX + "1: Element 'get-local-backup-list': Missing child element(s). Expected is one of ( webspace-id, "
        "webspace-name, customer-id, customer-login, reseller-id, reseller-login, server )."
    )


def test_server_wide_settings() -> None:
    check(
        "<packet><backup-manager><set-server-wide-settings><settings><max-backup-files>-1</max-backup-files>"
        "<max-backup-processes>2</max-backup-processes><low-priority>false</low-priority>"
        "<do-not-compress>0</do-not-compress><allow-local-ftp-backup>false</allow-local-ftp-backup>"
        "<keep-local-backup>true</keep-local-backup></settings></set-server-wide-settings></backup-manager></packet>"
    )
    check(
        "<packet><backup-manager><set-server-wide-settings><settings/></set-server-wide-settings></backup-manager></packet>"
    )
    message = errtext(
        "<packet><backup-manager><get-server-wide-settings>x</get-server-wide-settings></backup-manager></packet>"
    )
    assert "content type is empty" in message


def test_webspace_gen_setup_any_order_up_to_ten() -> None:
    check(
        "<packet><webspace><add><gen_setup><status>0</status><ip_address>2001:db8::1</ip_address><htype>none</htype>"
        "<owner-login>jdoe</owner-login><name>example.org</name><ip_address>192.0.2.1</ip_address></gen_setup>"
        "</add></webspace></packet>"
    )
    ten = "<description>d</description>" * 9 + "<name>example.org</name>"
    check(f"<packet><webspace><add><gen_setup>{ten}</gen_setup></add></webspace></packet>")
    message = errtext(
        f"<packet><webspace><add><gen_setup>{ten}<status>0</status></gen_setup></add></webspace></packet>"
    )
    assert message == PREFIX + "1: Element 'status': This element is not expected."
    message = errtext("<packet><webspace><add><gen_setup/></add></webspace></packet>")
    assert message.startswith(PREFIX + "1: Element 'gen_setup': Missing child element(s). Expected is one of ( name,")
    message = errtext("<packet><webspace><add><gen_setup><htype>xx</htype></gen_setup></add></webspace></packet>")
    assert "[facet 'enumeration'] The value 'xx' is not an element of the set" in message


def test_webspace_add_optional_parts() -> None:
    check(
        "<packet><webspace><add><gen_setup><name>example.org</name></gen_setup><hosting><std_fwd><dest_url>x"
        "</dest_url></std_fwd></hosting><limits><limit/></limits><prefs/><performance/><permissions/>"
        "<php-settings/><plan-name>Unlimited</plan-name><mail/></add></webspace></packet>"
    )


def test_webspace_dataset_any_order_each_once() -> None:
    check(
        "<packet><webspace><get><filter><owner-login>jdoe</owner-login></filter><dataset><hosting/><gen_info/>"
        "<mail/><resource-usage/></dataset></get></webspace></packet>"
    )
    message = errtext(
        "<packet><webspace><get><filter/><dataset><hosting/><hosting/></dataset></get></webspace></packet>"
    )
    assert message == PREFIX + "1: Element 'hosting': This element is not expected."


def test_filters_hold_one_kind_of_selector() -> None:
    check("<packet><customer><del><filter><id>1</id><id>2</id></filter></del></customer></packet>")
    message = errtext("<packet><customer><del><filter><id>1</id><login>a</login></filter></del></customer></packet>")
    assert message == PREFIX + "1: Element 'login': This element is not expected. Expected is ( id )."
    check("<packet><reseller><del><filter><all/></filter></del></reseller></packet>")
    check("<packet><reseller><get><filter/><dataset/></get></reseller></packet>")
    check("<packet><database><get-db><filter><id>abc</id></filter></get-db></database></packet>")


def test_reseller_add_all_parts() -> None:
    check(
        "<packet><reseller><add><gen-info><cname>c</cname><pname>p</pname><login>l</login><passwd>secret</passwd>"
        "<status>0</status><locale>en-US</locale><external-id>x</external-id><description>d</description>"
        "<power-user>false</power-user></gen-info><limits><limit><name>max_dom</name><value>-1</value></limit>"
        "</limits><permissions><permission><name>allow_local_backups</name><value>true</value></permission>"
        "</permissions><plan-guid>g</plan-guid></add></reseller></packet>"
    )
    message = errtext(
        "<packet><reseller><add><gen_info><pname>p</pname><login>l</login><passwd>s</passwd></gen_info></add>"
        "</reseller></packet>"
    )
    assert message == PREFIX + "1: Element 'gen_info': This element is not expected. Expected is ( gen-info )."


def test_mail_create_full_mailname() -> None:
    check(
        "<packet><mail><create><filter><site-id>7</site-id><mailname><name>a</name><cp-access>false</cp-access>"
        "<mailbox><enabled>true</enabled><quota>-1</quota></mailbox><forwarding><enabled>true</enabled>"
        "<address>x@example.org</address><address>y@example.org</address></forwarding><alias>b</alias>"
        "<alias>c</alias><autoresponder><enabled>false</enabled></autoresponder><password><value>secret</value>"
        "</password><antivir>inout</antivir><outgoing-messages-mbox-limit>default</outgoing-messages-mbox-limit>"
        "<description>d</description></mailname><mailname><name>b</name></mailname></filter></create></mail></packet>"
    )
    message = errtext(
        "<packet><mail><create><filter><site-id>7</site-id><mailname><name>a</name><password><value>s</value>"
        "<type>md5</type></password></mailname></filter></create></mail></packet>"
    )
    assert "[facet 'enumeration'] The value 'md5' is not an element of the set {'plain', 'crypt', 'sym'}" in message


def test_mail_get_info_flags_in_order() -> None:
    check(
        "<packet><mail><get_info><filter><site-id>7</site-id></filter><mailbox/><mailbox-usage/><forwarding/>"
        "<aliases/><autoresponder/></get_info></mail></packet>"
    )
    message = errtext(
        "<packet><mail><get_info><filter><site-id>7</site-id></filter><aliases/><mailbox/></get_info></mail></packet>"
    )
    assert message == PREFIX + "1: Element 'mailbox': This element is not expected. Expected is ( autoresponder )."


def test_secret_key_create_all_optional() -> None:
    check("<packet><secret_key><create/></secret_key></packet>")
    check(
        "<packet><secret_key><create><ip_address>192.0.2.1, 192.0.2.2</ip_address><login>jdoe</login>"
        "</create>"
        "<get_info><filter/></get_info><delete><filter/></delete></secret_key></packet>"
    )


def test_db_server_add_values_are_business_rules() -> None:
    check(
        "<packet><db_server><add><host>h</host><port>99999</port><type>mssql</type><admin>a</admin><default/>"
        "</add></db_server></packet>"
    )


# --------------------------------------------------------------------------------------------
# x-backup-manager (§4.19 extension)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        "<get-task-progress><task-id>12</task-id></get-task-progress>",
        "<verify><customer-id>18</customer-id><filename>backup_2311141412.tar</filename></verify>",
        "<verify><server/><filename>backup_2311141412.tar</filename><deep/></verify>",
        "<restore><customer-login>jdoe</customer-login><filename>backup_2311141412.tar</filename></restore>",
        "<restore><customer-id>18</customer-id><filename>b.tar</filename><webspace-name>example.com</webspace-name>"
        "<component>files</component><path>httpdocs/index.php</path><target-directory>restored</target-directory>"
        "<conflict>keep</conflict></restore>",
        "<restore><webspace-name>example.com</webspace-name><filename>b.tar</filename><component>databases</component>"
        "<conflict>overwrite</conflict></restore>",
    ],
)
def test_x_backup_manager_valid(operation: str) -> None:
    check(f"<packet><x-backup-manager>{operation}</x-backup-manager></packet>")


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            "<get-task-progress/>",
            "Element 'get-task-progress': Missing child element(s). Expected is ( task-id ).",
        ),
        (
            "<verify><filename>b.tar</filename></verify>",
            "Element 'filename': This element is not expected. "
            "Expected is one of ( webspace-id, webspace-name, customer-id, customer-login, "
            "reseller-id, reseller-login, server ).",
        ),
        (
            "<verify><server/><filename>b.tar</filename><deep>yes</deep></verify>",
            "Element 'deep': Character content is not allowed, because the content type is empty.",
        ),
        (
            "<restore><server/><filename>b.tar</filename><component>dns</component></restore>",
            "Element 'component': [facet 'enumeration'] The value 'dns' is not an element of the set "
            "{'files', 'databases', 'mail'}.",
        ),
        (
            "<restore><server/><filename>b.tar</filename><conflict>rename</conflict></restore>",
            "Element 'conflict': [facet 'enumeration'] The value 'rename' is not an element of the set "
            "{'overwrite', 'keep'}.",
        ),
        (
            "<restore><server/><filename>b.tar</filename><conflict>keep</conflict><path>x</path></restore>",
            "Element 'path': This element is not expected.",
        ),
        (
            "<list-backups/>",
            "Element 'list-backups': This element is not expected. "
            "Expected is one of ( get-task-progress, verify, restore ).",
        ),
    ],
)
def test_x_backup_manager_invalid(operation: str, expected: str) -> None:
    assert errtext(f"<packet><x-backup-manager>{operation}</x-backup-manager></packet>") == PREFIX + "1: " + expected


# --------------------------------------------------------------------------------------------
# Concurrency: each validation reports its own error
# --------------------------------------------------------------------------------------------


def test_concurrent_validations_report_their_own_errors() -> None:
    def run(index: int) -> str:
        if index % 2:
            check(ALL_EXAMPLES[index % len(ALL_EXAMPLES)])
            return "ok"
        return errtext(
            f"<packet><backup-manager><stop-backup><task-id>x{index}</task-id></stop-backup></backup-manager></packet>"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(200)))
    for index, result in enumerate(results):
        if index % 2:
            assert result == "ok"
        else:
            assert f"'x{index}'" in result
