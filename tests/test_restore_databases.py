"""Round trip with real database servers: back up, wipe everything, restore, compare every row."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from content import build_site, snapshot
from dbservers import DbServerHandle, add_db, register
from harness import Server, seed_customer
from test_databases import MARIA_ROWS, MARIA_SCHEMA, PG_ROWS, PG_SCHEMA, api, back_up, maria, pg  # noqa: F401
from test_restore import _member, _plant_backup, delete_webspace, run_restore


def test_wipe_and_restore_files_mail_and_databases(api: Server, pg: DbServerHandle, maria: DbServerHandle) -> None:  # noqa: F811
    pg_id, maria_id = register(api, pg), register(api, maria)
    seeded = seed_customer(api, "roundtrip", ("round.example",), ("info",))
    webspace_id = seeded.webspaces["round.example"]
    for name, db_type, server_id in (("rt_shop", "postgresql", pg_id), ("rt_blog", "mysql", maria_id)):
        assert add_db(api, webspace_id, name, db_type, server_id).findtext("status") == "ok"
    pg.sql("rt_shop", PG_SCHEMA)
    maria.sql("rt_blog", MARIA_SCHEMA)
    build_site(seeded.vhosts / "round.example")
    (seeded.mail / "round.example" / "info" / "cur" / "1700000000.M1P1.host:2,RS").write_bytes(
        b"Subject: x\r\n\r\nhi\r\n"
    )
    rows = (pg.sql("rt_shop", PG_ROWS), maria.sql("rt_blog", MARIA_ROWS))
    files, mail = snapshot(seeded.vhosts / "round.example"), snapshot(seeded.mail / "round.example")
    task = back_up(api, "roundtrip")
    assert task.findtext("status") == "finished", etree.tostring(task).decode()
    name = task.findtext("filename") or ""
    # wipe: the databases on their servers, the webspace with its registrations, all content
    pg.drop_database("rt_shop")
    maria.drop_database("rt_blog")
    delete_webspace(api, "round.example")
    assert not (seeded.vhosts / "round.example").exists()  # moved aside with the webspace
    assert not (seeded.mail / "round.example").exists()
    progress = run_restore(api, "roundtrip", name)
    assert progress.findtext("state") == "finished", progress.findtext("error")
    summary = progress.findtext("summary") or ""
    assert "database rt_shop restored" in summary and "database rt_blog restored" in summary
    assert (pg.sql("rt_shop", PG_ROWS), maria.sql("rt_blog", MARIA_ROWS)) == rows
    files.pop(b"httpdocs/link-absolute")  # points outside: reported, not re-created
    assert snapshot(seeded.vhosts / "round.example") == files
    assert snapshot(seeded.mail / "round.example") == mail
    # keep leaves a database with tables alone; overwrite replaces it
    pg.sql("rt_shop", "UPDATE items SET label = 'changed' WHERE id = 1")
    kept = run_restore(api, "roundtrip", name, "<component>databases</component>")
    assert "database rt_shop kept" in " ".join(w.text or "" for w in kept.iter("warning"))
    assert "changed" in pg.sql("rt_shop", PG_ROWS)
    run_restore(api, "roundtrip", name, "<component>databases</component><conflict>overwrite</conflict>")
    assert pg.sql("rt_shop", PG_ROWS) == rows[0]


def test_a_forged_dump_cannot_take_over_a_database_the_webspace_does_not_have(
    api: Server,  # noqa: F811
    maria: DbServerHandle,  # noqa: F811
) -> None:
    """A backup a customer edited names `mysql` as its webspace's database: restoring it with overwrite
    must not register the server's own database to the customer, let alone load the dump into it."""
    servers = api.call("<packet><db_server><get><filter/></get></db_server></packet>")
    if str(maria.port) not in [result.findtext("data/port") for result in servers.iter("result")]:
        register(api, maria)  # unless the round trip above did
    seed_customer(api, "dbforger", ("dbforger.test",))
    described = (f'<database name="mysql" type="mysql" server-host="{maria.host}" server-port="{maria.port}" '
                 'server-type="mysql" content="true"/>')  # fmt: skip
    accounts = f'<customer login="dbforger"><webspace name="dbforger.test">{described}</webspace></customer>'
    info = f'<backup-info format="hostbackup/1" level="customer"><accounts>{accounts}</accounts></backup-info>'
    dump = _member("domains/dbforger.test/databases/mysql.sql")
    name = _plant_backup(api, "dbforger", [(dump, b"CREATE TABLE pwned (x INT);\n")], info.encode(), ("dbforger.test",))
    progress = run_restore(api, "dbforger", name, "<conflict>overwrite</conflict>", login="dbforger",
                           password="Customer-Pass-1")  # fmt: skip
    assert progress.findtext("state") == "finished", progress.findtext("error")
    warnings = [w.text or "" for w in progress.iter("warning")]
    assert "database mysql was not restored: Database mysql already exists on the server" in " ".join(warnings)
    assert "pwned" not in maria.sql("mysql", "SHOW TABLES")


def test_dumps_of_an_uploaded_backup_are_loaded_for_the_administrator_only(
    api: Server,  # noqa: F811
    maria: DbServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A dump's SQL runs as the database server's administrator, so one the customer wrote (an upload)
    is not loaded for the customer; the administrator, who vouches for it, can restore it."""
    servers = api.call("<packet><db_server><get><filter/></get></db_server></packet>")
    if str(maria.port) not in [result.findtext("data/port") for result in servers.iter("result")]:
        register(api, maria)
    seed_customer(api, "uploader", ("uploader.test",))
    described = (f'<database name="up_db" type="mysql" server-host="{maria.host}" server-port="{maria.port}" '
                 'server-type="mysql" content="true"/>')  # fmt: skip
    accounts = f'<customer login="uploader"><webspace name="uploader.test">{described}</webspace></customer>'
    info = f'<backup-info format="hostbackup/1" level="customer"><accounts>{accounts}</accounts></backup-info>'
    dump = (_member("domains/uploader.test/databases/up_db.sql"), b"CREATE TABLE from_upload (x INT);\n")
    name = _plant_backup(api, "uploader", [dump], info.encode(), ("uploader.test",),
                         options={"imported": True, "intact": True})  # fmt: skip
    progress = run_restore(api, "uploader", name, login="uploader", password="Customer-Pass-1")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert [w.text for w in progress.iter("warning")] == [
        "database up_db was not restored: the backup was uploaded, and only the administrator restores databases "
        "from uploaded backups"
    ]
    assert "up_db" not in maria.databases()
    progress = run_restore(api, "uploader", name)  # the administrator's request
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert "from_upload" in maria.sql("up_db", "SHOW TABLES")
    escape = tmp_path / "shell-was-here"  # even then, the client runs no shell command (--sandbox)
    shell = (_member("domains/uploader.test/databases/up_db.sql"), f"\\! touch {escape}\n".encode())
    name = _plant_backup(api, "uploader", [shell], info.encode(), ("uploader.test",), options={"imported": True})
    progress = run_restore(api, "uploader", name, "<conflict>overwrite</conflict>")
    assert progress.findtext("state") == "failed" and "sandbox" in (progress.findtext("error") or "")
    assert not escape.exists()


def test_a_database_left_on_its_server_comes_back_when_the_administrator_restores(
    api: Server,  # noqa: F811
    maria: DbServerHandle,  # noqa: F811
) -> None:
    """Deleting a webspace leaves its databases on their server, unregistered: registering an existing
    database is the administrator's right, so the customer's own restore says so, and the
    administrator's brings it back (registered again, its tables replaced from the dump)."""
    servers = api.call("<packet><db_server><get><filter/></get></db_server></packet>")
    ports = {result.findtext("data/port"): result.findtext("id") for result in servers.iter("result")}
    maria_id = int(ports.get(str(maria.port)) or register(api, maria))
    seeded = seed_customer(api, "leftdb", ("leftdb.example",))
    assert add_db(api, seeded.webspaces["leftdb.example"], "left_db", "mysql", maria_id).findtext("status") == "ok"
    maria.sql("left_db", MARIA_SCHEMA)
    rows = maria.sql("left_db", MARIA_ROWS)
    name = back_up(api, "leftdb").findtext("filename") or ""
    delete_webspace(api, "leftdb.example")
    maria.sql("left_db", "DELETE FROM items")  # still on its server, and changed since the backup
    as_customer = {"login": "leftdb", "password": "Customer-Pass-1"}
    progress = run_restore(api, "leftdb", name, "<conflict>overwrite</conflict>", **as_customer)
    assert progress.findtext("state") == "finished", progress.findtext("error")
    warnings = " ".join(w.text or "" for w in progress.iter("warning"))
    assert "database left_db was not restored" in warnings and "A restore the administrator starts" in warnings
    progress = run_restore(api, "leftdb", name, "<conflict>overwrite</conflict>")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert maria.sql("left_db", MARIA_ROWS) == rows


def test_sandbox_is_asked_of_clients_that_know_it(tmp_path: Path) -> None:
    """`--sandbox` came with MariaDB 10.5.25, 10.6.18 and 10.11.8: an older client would refuse it and
    fail every database restore, so it is asked only of a client whose help lists it."""
    from hostbackup.restore.databases import _sandbox

    helps = {"new-client": "  --sandbox           Disallow commands", "old-client": "  --safe-updates"}
    for name, help_text in helps.items():
        tool = tmp_path / name
        tool.write_text(f"#!/bin/sh\necho '{help_text}'\n")
        tool.chmod(0o755)
        assert _sandbox(str(tool)) == (["--sandbox"] if name == "new-client" else [])
    assert _sandbox(str(tmp_path / "missing")) == []
