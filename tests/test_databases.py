"""Database content end to end: real PostgreSQL and MariaDB, backed up over HTTPS, restored by hand.

The servers are registered with `db_server/add` (password authentication, so the stored
credentials are what the dump tools run with), the databases created with `database/add-db`
and filled with awkward data: every byte value in a binary column, non-ASCII text, a trigger
and a routine. The backup is extracted with `cat | zstd -d | tar -x`, each dump is loaded into a
FRESH database with the server's own client, and every row is compared with the original.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from dbservers import DbServerHandle, add_db, extract, mariadb_server, postgres_password_server, register
from harness import Server, progress_of, seed_customer, start_backup, start_server, wait_for_task
from test_backup_customer import backup_packet, listing, volumes_of

TEXT = "Grüße, 東京, emoji 🎉"
ALL_BYTES_HEX = bytes(range(256)).hex()
PG_SCHEMA = f"""
CREATE TABLE items (id integer PRIMARY KEY, label text NOT NULL, payload bytea, price numeric(10, 2));
INSERT INTO items VALUES (1, '{TEXT}', decode('{ALL_BYTES_HEX}', 'hex'), 9.99);
INSERT INTO items VALUES (2, 'quote '' and backslash \\ and tab\t', '\\x00'::bytea, NULL);
INSERT INTO items SELECT g, 'row ' || g, sha256(g::text::bytea), g / 7.0 FROM generate_series(3, 2000) AS g;
"""
PG_ROWS = "SELECT id, label, encode(payload, 'hex'), price FROM items ORDER BY id"
MARIA_SCHEMA = f"""
CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(200) NOT NULL, payload BLOB, price DECIMAL(10, 2))
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE audit (item_id INT, note VARCHAR(50)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'inserted');
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
INSERT INTO items VALUES (1, '{TEXT}', UNHEX('{ALL_BYTES_HEX}'), 9.99);
INSERT INTO items VALUES (2, 'quote '' and backslash \\\\ and tab\t', UNHEX('00'), NULL);
INSERT INTO items SELECT seq, CONCAT('row ', seq), UNHEX(SHA2(seq, 256)), seq / 7 FROM seq_3_to_2000;
"""
MARIA_ROWS = "SELECT id, label, HEX(payload), price FROM items ORDER BY id; SELECT * FROM audit ORDER BY item_id"
MAILBOX = "info"
MESSAGE = "1700000000.M1P1.host:2,RS"


@dataclass(frozen=True)
class Site:
    """A customer with one webspace holding a PostgreSQL and a MariaDB database and a mailbox."""

    login: str
    webspace: str
    pg_db: str
    maria_db: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("databases") / "home")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[DbServerHandle]:
    with postgres_password_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def maria() -> Iterator[DbServerHandle]:
    with mariadb_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def site(api: Server, pg: DbServerHandle, maria: DbServerHandle) -> Site:
    pg_id, maria_id = register(api, pg, default=True), register(api, maria)
    seeded = seed_customer(api, "dbowner", ("shop.example",), (MAILBOX,))
    webspace_id = seeded.webspaces["shop.example"]
    for name, db_type, server_id in (("shop", "postgresql", None), ("blog", "mysql", maria_id)):
        result = add_db(api, webspace_id, name, db_type, server_id)
        assert result.findtext("status") == "ok", etree.tostring(result).decode()
    assert pg_id > 1
    pg.sql("shop", PG_SCHEMA)
    maria.sql("blog", MARIA_SCHEMA)
    (seeded.vhosts / "shop.example" / "httpdocs" / "index.html").write_text("<h1>shop</h1>\n")
    (seeded.mail / "shop.example" / MAILBOX / "cur" / MESSAGE).write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
    return Site(seeded.login, "shop.example", "shop", "blog")


def back_up(api: Server, login: str, *options: str) -> etree._Element:
    task_id = start_backup(api, backup_packet(login, *options, selector="customer-login"))
    return wait_for_task(api, task_id)


def newest_backup(api: Server, login: str, destination: Path) -> Path:
    backups = listing(api, login)
    assert backups, "no backup listed"
    return extract(volumes_of(api, login, backups[-1]), destination)


def members(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_full_backup_restores_every_row(api: Server, site: Site, pg: DbServerHandle, maria: DbServerHandle,
                                        tmp_path: Path) -> None:  # fmt: skip
    task = back_up(api, site.login)
    assert task.findtext("status") == "finished", etree.tostring(task).decode()
    root = newest_backup(api, site.login, tmp_path / "restore")
    dumps = root / "domains" / site.webspace / "databases"
    assert sorted(path.name for path in dumps.iterdir()) == ["blog.sql", "shop.sql"]
    for handle, database, query in ((pg, site.pg_db, PG_ROWS), (maria, site.maria_db, MARIA_ROWS)):
        restored = fresh_name(f"restored_{database}")
        handle.create_database(restored)
        handle.restore(restored, dumps / f"{database}.sql")
        original = handle.sql(database, query)
        assert handle.sql(restored, query) == original
        assert TEXT in original and ALL_BYTES_HEX.upper() in original.upper()
        assert len(original.splitlines()) >= 2000
    restored_maria = fresh_name("triggers")
    maria.create_database(restored_maria)
    maria.restore(restored_maria, dumps / "blog.sql")
    maria.sql(restored_maria, "INSERT INTO items VALUES (5000, 'after restore', NULL, 1)")
    assert maria.sql(restored_maria, "SELECT note, twice(21) FROM audit WHERE item_id = 5000").split() == [
        "inserted", "42",
    ]  # fmt: skip


def test_backup_info_lists_databases_without_passwords(api: Server, site: Site, pg: DbServerHandle,
                                                       maria: DbServerHandle, tmp_path: Path) -> None:  # fmt: skip
    assert back_up(api, site.login, "<only-configuration/>").findtext("status") == "finished"
    root = newest_backup(api, site.login, tmp_path / "config")
    assert not any(name.endswith(".sql") for name in members(root))
    info = (root / "backup-info.xml").read_bytes()
    for secret in (pg.password, maria.password):
        assert secret.encode() not in info
    assert not any(secret in path.read_text(errors="replace") for path in api.home.rglob("*.json") for secret in
                   (pg.password, maria.password))  # fmt: skip
    databases = etree.fromstring(info).findall(".//webspace/database")
    found = [(element.get("name"), element.get("type"), element.get("server-port"), element.get("content"))
             for element in databases]  # fmt: skip
    assert found == [("shop", "postgresql", str(pg.port), "false"), ("blog", "mysql", str(maria.port), "false")]
    assert all(element.get("server-host") == "127.0.0.1" for element in databases)
    assert [element.get("server-type") for element in databases] == ["postgresql", "mysql"]


@pytest.mark.parametrize(
    ("option", "files", "dumps", "mail"),
    [("<only-hosting/>", True, True, False), ("<only-mail/>", False, False, True)],
    ids=["only-hosting", "only-mail"],
)
def test_only_options_choose_content(api: Server, site: Site, tmp_path: Path, option: str, files: bool, dumps: bool,
                                     mail: bool) -> None:  # fmt: skip
    assert back_up(api, site.login, option).findtext("status") == "finished"
    names = members(newest_backup(api, site.login, tmp_path / "only"))
    prefix = f"domains/{site.webspace}"
    assert (f"{prefix}/files/httpdocs/index.html" in names) is files
    assert ({f"{prefix}/databases/shop.sql", f"{prefix}/databases/blog.sql"} <= names) is dumps
    assert any(name.startswith(f"{prefix}/databases/") for name in names) is dumps
    assert (f"{prefix}/mail/{MAILBOX}/cur/{MESSAGE}" in names) is mail
    assert any(name.startswith(f"{prefix}/mail/") for name in names) is mail


def failure_of(api: Server, login: str, task: etree._Element) -> str:
    """The error text of a failed task, after checking that it left no backup behind."""
    assert task.findtext("status") == "failed", etree.tostring(task).decode()
    assert listing(api, login) == []
    return progress_of(api, int(task.findtext("id") or 0)).findtext("error") or ""


def test_a_stopped_database_server_fails_the_task(api: Server, tmp_path: Path) -> None:
    with mariadb_server() as doomed:
        server_id = register(api, doomed)
        seeded = seed_customer(api, "stopped", ("stopped.example",), (MAILBOX,))
        result = add_db(api, seeded.webspaces["stopped.example"], "gone", "mysql", server_id)
        assert result.findtext("status") == "ok", etree.tostring(result).decode()
        doomed.sql("gone", "CREATE TABLE t (id INT); INSERT INTO t VALUES (1);")
        doomed.stop()
        task = back_up(api, "stopped")
    text = failure_of(api, "stopped", task)
    assert "database gone" in text and f"mysql server 127.0.0.1:{doomed.port}" in text, text
    assert "Can't connect" in text, text
    assert doomed.password not in text


def test_a_dump_tool_error_fails_the_task(api: Server, pg: DbServerHandle, site: Site) -> None:
    seeded = seed_customer(api, "dropped", ("dropped.example",))
    result = add_db(api, seeded.webspaces["dropped.example"], "vanishing", "postgresql")
    assert result.findtext("status") == "ok", etree.tostring(result).decode()
    pg.drop_database("vanishing")
    task = back_up(api, "dropped")
    text = failure_of(api, "dropped", task)
    assert "database vanishing" in text and 'database "vanishing" does not exist' in text, text
