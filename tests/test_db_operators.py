"""The `db_server` and `database` operators over real HTTPS (spec §5.5, §5.6), against real servers.

Every error path asserts the exact code and text of spec §2.5; role tests check that only the
administrator manages database servers (1006) and that databases are visible exactly with their
webspaces (1013 otherwise, the same answer as for a database that does not exist).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from lxml import etree

from dbservers import DbServerHandle, add_db, api_result, mariadb_server, postgres_password_server, register
from harness import Server, free_port, seed_customer, start_server
from hostbackup.accounts.vault import Vault
from hostbackup.config import Settings
from hostbackup.db.engine import Database
from hostbackup.db.tables import DbServer

Element = etree._Element
CUSTOMER_PASSWORD = "Customer-Pass-1"
RESELLER_PASSWORD = "Reseller-Pass-1"
DATA_TAGS = ["host", "port", "type", "admin", "status", "db_num"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("db-operators") / "home")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def maria() -> Iterator[DbServerHandle]:
    with mariadb_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def pg() -> Iterator[DbServerHandle]:
    with postgres_password_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def maria_id(api: Server, maria: DbServerHandle) -> int:
    return register(api, maria)


@pytest.fixture(scope="module")
def pg_id(api: Server, pg: DbServerHandle) -> int:
    return register(api, pg, default=True)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def assert_error(result: Element, code: int, text: str) -> None:
    found = (result.findtext("status"), result.findtext("errcode"), result.findtext("errtext"))
    assert found == ("error", str(code), text), etree.tostring(result).decode()


def assert_ok(result: Element) -> Element:
    assert result.findtext("status") == "ok", etree.tostring(result).decode()
    return result


def all_results(server: Server, operator: str, operation: str, body: str, **credentials: str) -> list[Element]:
    answer = server.call(f"<packet><{operator}><{operation}>{body}</{operation}></{operator}></packet>", **credentials)  # type: ignore[arg-type]
    assert answer.find("system") is None, etree.tostring(answer).decode()
    return answer.findall(f"{operator}/{operation}/result")


def add_server(api: Server, host: str, port: str, db_type: str = "mysql", extra: str = "") -> Element:
    body = f"<host>{host}</host><port>{port}</port><type>{db_type}</type><admin>root</admin>{extra}"
    return api_result(api, "db_server", "add", body)


def get_server(api: Server, server_id: int) -> Element:
    return api_result(api, "db_server", "get", f"<filter><id>{server_id}</id></filter>")


def get_default(api: Server, *types: str) -> list[Element]:
    body = "<filter>" + "".join(f"<type>{db_type}</type>" for db_type in types) + "</filter>"
    return all_results(api, "db_server", "get-default", body)


def reseller(api: Server) -> tuple[int, str]:
    login = unique("res")
    body = f"<gen-info><pname>R</pname><login>{login}</login><passwd>{RESELLER_PASSWORD}</passwd></gen-info>"
    result = assert_ok(api_result(api, "reseller", "add", body))
    return int(result.findtext("id") or 0), login


def as_customer(login: str) -> dict[str, str]:
    return {"login": login, "password": CUSTOMER_PASSWORD}


# --- db_server ------------------------------------------------------------------------------------


def test_seeded_default_server_is_answered_as_specified(fresh_server: Server) -> None:
    result = assert_ok(get_server(fresh_server, 1))
    assert [child.tag for child in result] == ["status", "id", "data"]
    data = result.find("data")
    assert data is not None
    assert [child.tag for child in data] == [*DATA_TAGS, "default", "local"]
    assert [child.text for child in data][:6] == ["localhost", "3306", "mysql", "admin", "NO_ERROR", "0"]
    [mysql] = get_default(fresh_server, "mysql")
    assert [(child.tag, child.text) for child in mysql] == [("status", "ok"), ("type", "mysql"), ("id", "1")]
    [everything] = get_default(fresh_server)
    assert everything.findtext("type") == "mysql"
    [postgres] = get_default(fresh_server, "postgresql")
    assert_error(postgres, 14009, "Database server is not configured.")
    assert postgres.findtext("type") == "postgresql"
    [oracle] = get_default(fresh_server, "oracle")
    assert_error(oracle, 14008, "Wrong database server type.")
    [all_servers] = all_results(fresh_server, "db_server", "get", "<filter/>")
    assert all_servers.findtext("id") == "1"


def test_add_stores_the_password_encrypted_and_never_answers_it(api: Server, pg: DbServerHandle, pg_id: int) -> None:
    server_id = pg_id
    answer = api.post(f"<packet><db_server><get><filter><id>{server_id}</id></filter></get></db_server></packet>")
    assert pg.password not in answer.text
    data = assert_ok(get_server(api, server_id)).find("data")
    assert data is not None
    assert [child.tag for child in data] == [*DATA_TAGS, "default"]
    assert data.findtext("port") == str(pg.port) and data.findtext("admin") == "postgres"
    settings = Settings.load(api.home)
    db = Database(settings.effective_database_url)
    try:
        with db.session() as session:
            row = session.get(DbServer, server_id)
            assert row is not None and pg.password not in row.admin_password_encrypted
            assert Vault(settings.secret_key_file).decrypt(row.admin_password_encrypted) == pg.password
    finally:
        db.dispose()
    assert pg.password not in api.log.read_text(errors="replace")


@pytest.mark.parametrize("port", ["0", "65536", "abc", "-1", ""])
def test_add_rejects_a_bad_port(api: Server, port: str) -> None:
    assert_error(add_server(api, "db.example.net", port), 1019, f"Invalid value of port: '{port}'.")


def test_add_errors(api: Server, maria: DbServerHandle, maria_id: int) -> None:
    assert_error(add_server(api, "db.example.net", "3306", "oracle"), 14008, "Wrong database server type.")
    assert_error(add_server(api, maria.host, str(maria.port)), 1007, "Object already exists.")
    assert_error(add_server(api, "", "3306"), 1019, "Invalid value of host: ''.")
    assert_error(add_server(api, "bad host/x", "3306"), 1019, "Invalid value of host: 'bad host/x'.")
    assert_ok(add_server(api, maria.host, str(maria.port), "postgresql"))  # another type: another server
    [unknown] = all_results(api, "db_server", "get", "<filter><id>9999</id></filter>")
    assert_error(unknown, 1013, "Database server does not exist.")
    assert unknown.findtext("id") == "9999"


def test_default_moves_to_the_last_server_added_with_default(fresh_server: Server) -> None:
    first = int(assert_ok(add_server(fresh_server, "one.example", "3307", extra="<default/>")).findtext("id") or 0)
    assert get_server(fresh_server, 1).find("data/default") is None
    second = int(assert_ok(add_server(fresh_server, "two.example", "3307", extra="<default/>")).findtext("id") or 0)
    assert get_default(fresh_server, "mysql")[0].findtext("id") == str(second)
    assert get_server(fresh_server, first).find("data/default") is None
    assert get_server(fresh_server, second).find("data/default") is not None


def test_only_the_administrator_manages_database_servers(api: Server) -> None:
    reseller_id, reseller_login = reseller(api)
    customer = seed_customer(api, unique("cust"), ())
    callers = [{"login": reseller_login, "password": RESELLER_PASSWORD}, as_customer(customer.login)]
    operations = [
        ("add", "<host>h.example</host><port>1</port><type>mysql</type><admin>a</admin>"),
        ("get", "<filter><id>1</id></filter>"),
        ("get-default", "<filter/>"),
    ]
    for credentials in callers:
        for operation, body in operations:
            assert_error(api_result(api, "db_server", operation, body, **credentials), 1006, "Permission denied.")
    assert reseller_id > 1


# --- database -------------------------------------------------------------------------------------


def test_add_db_creates_a_missing_database_and_registers_an_existing_one(
    api: Server, maria: DbServerHandle, maria_id: int
) -> None:
    seeded = seed_customer(api, unique("dbc"), (f"{unique('site')}.example",))
    [webspace_id] = seeded.webspaces.values()
    fresh, existing = unique("new_"), unique("old_")
    maria.create_database(existing)
    maria.sql(existing, "CREATE TABLE kept (id INT); INSERT INTO kept VALUES (42);")
    for name in (fresh, existing):
        assert_ok(add_db(api, webspace_id, name, "mysql", maria_id))
    assert {fresh, existing} <= maria.databases()
    assert maria.sql(existing, "SELECT id FROM kept").split() == ["42"]  # registered, not re-created
    listed = all_results(api, "database", "get-db", f"<filter><webspace-id>{webspace_id}</webspace-id></filter>")
    assert [result.findtext("name") for result in listed] == [fresh, existing]
    assert [child.tag for child in listed[0]] == [
        "status", "filter-id", "id", "name", "type", "webspace-id", "db-server-id",
    ]  # fmt: skip
    assert listed[0].findtext("db-server-id") == str(maria_id) and listed[0].findtext("type") == "mysql"
    db_num = get_server(api, maria_id).findtext("data/db_num")
    assert db_num is not None and int(db_num) >= 2


def test_only_the_administrator_registers_a_database_that_already_exists(
    api: Server, maria: DbServerHandle, maria_id: int, pg: DbServerHandle, pg_id: int
) -> None:
    """A customer who could register `mysql`, or another tenant's unregistered database, could back it
    up and restore over it: customers only create new databases."""
    seeded = seed_customer(api, unique("adopt"), (f"{unique('site')}.example",))
    [webspace_id] = seeded.webspaces.values()
    theirs = unique("theirs_")
    maria.create_database(theirs)
    for name, db_type, server_id in (("mysql", "mysql", maria_id), (theirs, "mysql", maria_id),
                                     ("postgres", "postgresql", pg_id)):  # fmt: skip
        result = add_db(api, webspace_id, name, db_type, server_id, **as_customer(seeded.login))
        refusal = f"Database {name} already exists on the server: only the administrator registers it."
        assert_error(result, 1007, refusal)
    listed = all_results(api, "database", "get-db", f"<filter><webspace-id>{webspace_id}</webspace-id></filter>")
    assert [result.findtext("name") for result in listed if result.findtext("name")] == []  # nothing registered
    assert_ok(add_db(api, webspace_id, theirs, "mysql", maria_id))  # the administrator adopts it


def test_add_db_errors(api: Server, maria: DbServerHandle, maria_id: int) -> None:
    seeded = seed_customer(api, unique("dbe"), (f"{unique('err')}.example",))
    [webspace_id] = seeded.webspaces.values()
    name = unique("dup_")
    assert_ok(add_db(api, webspace_id, name, "mysql", maria_id))
    assert_error(add_db(api, webspace_id, name, "mysql", maria_id), 1007, "Object already exists.")
    assert_error(add_db(api, webspace_id, "bad name", "mysql", maria_id), 1019, "Invalid value of name: 'bad name'.")
    assert_error(add_db(api, webspace_id, "x" * 65, "mysql", maria_id), 1019, f"Invalid value of name: '{'x' * 65}'.")
    assert_error(add_db(api, webspace_id, "ok", "oracle", maria_id), 14008, "Wrong database server type.")
    assert_error(add_db(api, webspace_id, "ok", "postgresql", maria_id), 14008, "Wrong database server type.")
    assert_error(add_db(api, webspace_id, "ok", "mysql", 9999), 1013, "Database server does not exist.")
    assert_error(add_db(api, 99999, "ok", "mysql", maria_id), 1013, "Webspace does not exist.")


def test_add_db_without_a_default_server_of_the_type(fresh_server: Server) -> None:
    seeded = seed_customer(fresh_server, "nodefault", ("nodefault.example",))
    webspace_id = seeded.webspaces["nodefault.example"]
    assert_error(add_db(fresh_server, webspace_id, "wp", "postgresql"), 14009, "Database server is not configured.")


def test_add_db_on_an_unreachable_server_fails_and_registers_nothing(api: Server) -> None:
    port = free_port()
    server_id = int(
        assert_ok(add_server(api, "127.0.0.1", str(port), extra="<password>x-y-z-1</password>")).findtext("id") or 0
    )
    seeded = seed_customer(api, unique("unr"), (f"{unique('unr')}.example",))
    [webspace_id] = seeded.webspaces.values()
    result = add_db(api, webspace_id, "lost", "mysql", server_id)
    assert result.findtext("errcode") == "1023"
    errtext = result.findtext("errtext") or ""
    assert errtext.startswith(f"Operation failed: mysql server 127.0.0.1:{port}: ") and "x-y-z-1" not in errtext
    listed = all_results(api, "database", "get-db", f"<filter><webspace-id>{webspace_id}</webspace-id></filter>")
    assert [child.tag for child in listed[0]] == ["status"]  # nothing registered: one bare ok


def test_get_db_and_del_db_filters(api: Server, pg_id: int) -> None:
    name = f"{unique('flt')}.example"
    seeded = seed_customer(api, unique("flt"), (name,))
    webspace_id = seeded.webspaces[name]
    db_id = int(assert_ok(add_db(api, webspace_id, unique("pg_"), "postgresql", pg_id)).findtext("id") or 0)
    for kind, value in (("id", db_id), ("webspace-id", webspace_id), ("webspace-name", name)):
        [result] = all_results(api, "database", "get-db", f"<filter><{kind}>{value}</{kind}></filter>")
        assert_ok(result)
        assert (result.findtext("filter-id"), result.findtext("id")) == (str(value), str(db_id))
    everything = all_results(api, "database", "get-db", "<filter/>")
    assert str(db_id) in [result.findtext("id") for result in everything]
    assert all(result.find("filter-id") is None for result in everything)
    [bad] = all_results(api, "database", "get-db", "<filter><id>abc</id></filter>")
    assert_error(bad, 1019, "Invalid value of id: 'abc'.")
    [missing] = all_results(api, "database", "get-db", "<filter><id>99999</id></filter>")
    assert_error(missing, 1013, "Database does not exist.")
    assert (missing.findtext("filter-id"), missing.findtext("id")) == ("99999", "99999")
    [no_webspace] = all_results(
        api, "database", "del-db", "<filter><webspace-name>none.example</webspace-name></filter>"
    )
    assert_error(no_webspace, 1013, "Webspace does not exist.")
    [deleted] = all_results(api, "database", "del-db", f"<filter><id>{db_id}</id></filter>")
    assert [(child.tag, child.text) for child in deleted] == [
        ("status", "ok"),
        ("filter-id", str(db_id)),
        ("id", str(db_id)),
    ]
    [gone] = all_results(api, "database", "get-db", f"<filter><id>{db_id}</id></filter>")
    assert_error(gone, 1013, "Database does not exist.")


def test_databases_are_visible_exactly_with_their_webspaces(api: Server, maria_id: int) -> None:
    reseller_id, reseller_login = reseller(api)
    as_reseller = {"login": reseller_login, "password": RESELLER_PASSWORD}
    mine = seed_customer(api, unique("own"), (f"{unique('own')}.example",), owner_id=reseller_id)
    other = seed_customer(api, unique("oth"), (f"{unique('oth')}.example",))
    [my_webspace], [other_webspace] = mine.webspaces.values(), other.webspaces.values()
    mine_db = assert_ok(add_db(api, my_webspace, unique("mine_"), "mysql", maria_id, **as_customer(mine.login)))
    other_db = assert_ok(add_db(api, other_webspace, unique("oth_"), "mysql", maria_id)).findtext("id")
    denied = add_db(api, other_webspace, unique("no_"), "mysql", maria_id, **as_customer(mine.login))
    assert_error(denied, 1013, "Webspace does not exist.")
    for credentials in (as_customer(mine.login), as_reseller):
        visible = all_results(api, "database", "get-db", "<filter/>", **credentials)
        assert [result.findtext("id") for result in visible] == [mine_db.findtext("id")]
        for operation in ("get-db", "del-db"):
            [hidden] = all_results(api, "database", operation, f"<filter><id>{other_db}</id></filter>", **credentials)
            assert_error(hidden, 1013, "Database does not exist.")
        [hidden_webspace] = all_results(
            api, "database", "get-db", f"<filter><webspace-id>{other_webspace}</webspace-id></filter>", **credentials
        )
        assert_error(hidden_webspace, 1013, "Webspace does not exist.")
    [still_there] = all_results(api, "database", "get-db", f"<filter><id>{other_db}</id></filter>")
    assert_ok(still_there)
