"""An independent client drives the account operators: `pypleski` (PyPI) over TLS.

pypleski builds its own packets (`PleskRequestPacket`, default version 1.6.7.0, `TEXT/XML`,
`HTTP_PRETTY_PRINT`) and talks `http.client` over TLS, so this checks that what a real Plesk
client library sends is understood and that what the server answers parses on its side.
"""

from __future__ import annotations

from typing import Any

from pypleski.core import PleskApiClient, PleskRequestPacket

from harness import ADMIN_PASSWORD, Server

PASSWORD = "Str0ng-Pass!"


def client_for(server: Server) -> PleskApiClient:
    client = PleskApiClient("127.0.0.1", server.port, unverified_ssl=True)
    client.set_credentials("admin", ADMIN_PASSWORD)
    return client


def result_of(client: PleskApiClient, packet: PleskRequestPacket, operator: str, operation: str) -> dict[str, Any]:
    answer = client.request(packet).to_dict()["packet"]
    assert answer["@version"] == "1.6.7.0"
    result: dict[str, Any] = answer[operator][operation]["result"]
    return result


def test_pypleski_creates_reads_and_deletes_accounts(fresh_server: Server) -> None:
    client = client_for(fresh_server)
    customer = result_of(
        client,
        PleskRequestPacket(
            "customer",
            "add",
            gen_info={"cname": "Example Ltd.", "pname": "John Doe", "login": "jdoe", "passwd": PASSWORD},
        ),
        "customer",
        "add",
    )
    assert customer["status"] == "ok" and customer["id"] == "2"

    webspace = result_of(
        client,
        PleskRequestPacket(
            "webspace",
            "add",
            gen_setup={"name": "example.com", "owner_login": "jdoe", "ip_address": "192.0.2.10"},
            hosting={"vrt_hst": {"property": {"name": "ftp_login", "value": "exftp"}}},
        ),
        "webspace",
        "add",
    )
    assert webspace["status"] == "ok" and len(webspace["guid"]) == 36

    found = result_of(
        client,
        PleskRequestPacket("customer", "get", filter={"login": "jdoe"}, dataset={"gen_info": ""}),
        "customer",
        "get",
    )
    assert found["filter-id"] == "jdoe" and found["data"]["gen_info"]["cname"] == "Example Ltd."
    assert "passwd" not in found["data"]["gen_info"]

    raw = client.request_from_string(
        "<packet><webspace><get><filter><owner-login>jdoe</owner-login></filter>"
        "<dataset><gen_info/><hosting/></dataset></get></webspace></packet>"
    )
    assert "<name>example.com</name>" in raw and "<value>exftp</value>" in raw

    mail = result_of(
        client,
        PleskRequestPacket(
            "mail",
            "create",
            filter={"site-id": webspace["id"], "mailname": {"name": "info", "mailbox": {"enabled": "true"}}},
        ),
        "mail",
        "create",
    )
    assert mail["mailname"]["name"] == "info"

    deleted = result_of(client, PleskRequestPacket("customer", "del", filter={"id": customer["id"]}), "customer", "del")
    assert (deleted["status"], deleted["id"]) == ("ok", customer["id"])
    gone = result_of(
        client,
        PleskRequestPacket("webspace", "get", filter={"name": "example.com"}, dataset={"gen_info": ""}),
        "webspace",
        "get",
    )
    assert (gone["status"], gone["errcode"], gone["errtext"]) == ("error", "1013", "Webspace does not exist.")


def test_pypleski_secret_key_as_access_token(fresh_server: Server) -> None:
    admin = client_for(fresh_server)
    created = result_of(
        admin, PleskRequestPacket("secret_key", "create", description="pypleski"), "secret_key", "create"
    )
    keyed = PleskApiClient("127.0.0.1", fresh_server.port, unverified_ssl=True)
    keyed.set_credentials("", "")  # pypleski deletes the credentials attribute when a token is set
    keyed.set_access_token(created["key"])
    protos = result_of(keyed, PleskRequestPacket("server", "get_protos"), "server", "get_protos")
    assert protos["protos"]["proto"][-1] == "1.6.9.1"
    info = result_of(
        keyed, PleskRequestPacket("secret_key", "get_info", filter={"key": created["key"]}), "secret_key", "get_info"
    )
    assert info["key_info"] == {
        "key": created["key"],
        "ip_address": "127.0.0.1",
        "description": "pypleski",
        "login": "admin",
    }
    deleted = result_of(
        admin, PleskRequestPacket("secret_key", "delete", filter={"key": created["key"]}), "secret_key", "delete"
    )
    assert deleted == {"status": "ok", "key": created["key"]}
