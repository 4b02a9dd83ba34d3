"""The rest of backup-manager over HTTPS: stop, remove, download, upload + import, settings, levels."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard
from lxml import etree

from content import assert_same_tree, build_site, snapshot
from harness import (
    Server,
    assert_plesk_valid,
    bm,
    progress_of,
    result_of,
    seed_customer,
    start_backup,
    start_server,
    wait_for_task,
)
from test_restore import run_restore
from test_task_durability import big_site, slow_server, wait_until_running  # noqa: F401 (fixture)

CUSTOMER = {"password": "Customer-Pass-1"}


def packet(login: str, *, split: int = 0, extra: str = "", description: str = "ops") -> str:
    return (
        f"<backup-customer><customer-login>{login}</customer-login><local/><description>{description}</description>"
        f"<split-size>{split}</split-size>{extra}</backup-customer>"
    )


def backup_now(server: Server, login: str, **kwargs: object) -> list[str]:
    """Run a customer backup to the end; returns its file names."""
    task_id = start_backup(server, packet(login, **kwargs))  # type: ignore[arg-type]
    task = wait_for_task(server, task_id)
    assert task.findtext("status") == "finished", progress_of(server, task_id).findtext("error")
    return [name.text or "" for name in listed(server, f"<customer-login>{login}</customer-login>")[-1].iter("name")]


def listed(server: Server, selector: str, **kwargs: object) -> list[etree._Element]:
    result = result_of(bm(server, f"<get-local-backup-list>{selector}</get-local-backup-list>", **kwargs))
    assert result.findtext("status") == "ok", etree.tostring(result)
    return result.findall("backup")


def error_pair(result: etree._Element) -> tuple[str | None, str | None]:
    assert result.findtext("status") == "error"
    return result.findtext("errcode"), result.findtext("errtext")


def download(server: Server, selector: str, name: str, **kwargs: object) -> httpx.Response:
    operation = f"<download-file>{selector}<filename>{name}</filename></download-file>"
    return server.post(f"<packet><backup-manager>{operation}</backup-manager></packet>", **kwargs)  # type: ignore[arg-type]


def upload(server: Server, name: str, data: bytes, **kwargs: object) -> etree._Element:
    headers = {"HTTP_AUTH_LOGIN": str(kwargs.get("login", "admin")), "HTTP_AUTH_PASSWD": str(kwargs.get("password"))}
    if "password" not in kwargs:
        from harness import ADMIN_PASSWORD

        headers["HTTP_AUTH_PASSWD"] = ADMIN_PASSWORD
    response = server.client.post(server.url, files={"file": (name, data)}, headers=headers)
    assert response.status_code == 200
    return etree.fromstring(response.content)


def import_file(server: Server, selector: str, reference: str, extra: str = "", **kwargs: object) -> etree._Element:
    body = f"<import-file>{selector}<tmp-filename>{reference}</tmp-filename>{extra}</import-file>"
    return result_of(bm(server, body, **kwargs))


# --- stop-backup ------------------------------------------------------------------------------


@pytest.fixture
def stoppable_server(tmp_path: Path) -> Iterator[Server]:
    """Level 9: slow enough to catch a backup running, without level 19's long zstd jobs to drain."""
    running = start_server(tmp_path / "home", env={"HOSTBACKUP_ZSTD_LEVEL": "9"})
    yield running
    running.stop()


def test_stop_backup_stops_a_running_task_and_leaves_nothing(stoppable_server: Server) -> None:
    seeded = seed_customer(stoppable_server, "stopme", ("stopme.test",))
    big_site(seeded.vhosts / "stopme.test", 512)
    task_id = start_backup(stoppable_server, packet("stopme", split=1024))
    wait_until_running(stoppable_server, task_id)
    answer = result_of(bm(stoppable_server, f"<stop-backup><task-id>{task_id}</task-id></stop-backup>"))
    assert answer.findtext("status") == "ok"
    assert wait_for_task(stoppable_server, task_id).findtext("status") == "stopped"
    folder = stoppable_server.home / "dumps" / "clients" / "stopme"
    assert list(folder.iterdir()) == []
    again = result_of(bm(stoppable_server, f"<stop-backup><task-id>{task_id}</task-id></stop-backup>"))
    assert error_pair(again) == ("1025", f"Task {task_id} is not running.")


def test_stop_backup_of_queued_and_finished_and_unknown_tasks(server: Server) -> None:
    seed_customer(server, "stopper", ("stopper.test",))
    finished = start_backup(server, packet("stopper", extra="<only-configuration/>"))
    assert wait_for_task(server, finished).findtext("status") == "finished"
    answer = result_of(bm(server, f"<stop-backup><task-id>{finished}</task-id></stop-backup>"))
    assert error_pair(answer) == ("1025", f"Task {finished} is not running.")
    unknown = result_of(bm(server, "<stop-backup><task-id>999999</task-id></stop-backup>"))
    assert error_pair(unknown) == ("1013", "Task does not exist.")


# --- remove-file and download-file ------------------------------------------------------------


def test_remove_file_removes_the_whole_backup_and_nothing_else(server: Server) -> None:
    seeded = seed_customer(server, "remover", ("remover.test",))
    build_site(seeded.vhosts / "remover.test")
    names = backup_now(server, "remover", split=512)
    assert len(names) > 1
    sentinel = server.home / "dumps" / "clients" / "sentinel.txt"
    sentinel.write_text("keep me")
    for hostile in ("../sentinel.txt", "../../clients/sentinel.txt", "/etc/passwd", ".", ".."):
        body = f"<remove-file><customer-login>remover</customer-login><filename>{hostile}</filename></remove-file>"
        assert error_pair(result_of(bm(server, body))) == ("1013", f"The file {hostile} does not exist")
    assert sentinel.read_text() == "keep me"
    body = f"<remove-file><customer-login>remover</customer-login><filename>{names[1]}</filename></remove-file>"
    assert result_of(bm(server, body)).findtext("status") == "ok"
    assert listed(server, "<customer-login>remover</customer-login>") == []
    assert list((server.home / "dumps" / "clients" / "remover").iterdir()) == []
    gone = result_of(bm(server, body))
    assert error_pair(gone) == ("1013", f"The file {names[1]} does not exist")


def test_download_file_streams_the_volume_with_plesk_headers(server: Server) -> None:
    seeded = seed_customer(server, "loader", ("loader.test",))
    build_site(seeded.vhosts / "loader.test")
    names = backup_now(server, "loader", split=300)
    for name in names:
        response = download(server, "<customer-login>loader</customer-login>", name)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == f"attachment; filename={name}"
        assert response.headers["pragma"] == "no-cache"
        expected = (server.home / "dumps" / "clients" / "loader" / name).read_bytes()
        assert int(response.headers["content-length"]) == len(expected)
        assert response.content == expected
    missing = download(server, "<customer-login>loader</customer-login>", "MyBackup.bak")
    root = etree.fromstring(missing.content)
    assert_plesk_valid(root)
    assert error_pair(root.find("backup-manager/download-file/result")) == (  # type: ignore[arg-type]
        "1013",
        "The file MyBackup.bak does not exist",
    )
    combined = bm(
        server,
        f"<download-file><customer-login>loader</customer-login><filename>{names[0]}</filename></download-file>"
        "<get-supported-protocols/>",
    )
    assert error_pair(result_of(combined, 0)) == ("1017", "Operation is not supported.")
    assert result_of(combined, 1).findtext("protocol") == "ftp"


def test_backups_of_deleted_accounts_stay_on_disk_out_of_reach_of_a_new_namesake(server: Server) -> None:
    """Storage folders are named by login and domain name: a new customer or webspace of a deleted
    one's name must start with no backups (spec §5.0: kept on disk, unreachable through the API)."""
    old = seed_customer(server, "namesake", ("namesake.test",))
    build_site(old.vhosts / "namesake.test")
    [customer_backup] = backup_now(server, "namesake")
    options = "<local/><description>d</description><split-size>0</split-size>"
    webspace = start_backup(
        server, f"<backup-webspace><webspace-name>namesake.test</webspace-name>{options}</backup-webspace>"
    )
    assert wait_for_task(server, webspace).findtext("status") == "finished"
    [webspace_backup] = listed(server, "<webspace-name>namesake.test</webspace-name>")
    deleted = server.call("<packet><customer><del><filter><login>namesake</login></filter></del></customer></packet>")
    assert deleted.findtext("customer/del/result/status") == "ok"

    seed_customer(server, "namesake", ("namesake.test",))  # someone else, same names
    assert listed(server, "<customer-login>namesake</customer-login>") == []
    assert listed(server, "<webspace-name>namesake.test</webspace-name>") == []
    as_new = {"login": "namesake", "password": "Customer-Pass-1"}
    response = download(server, "<customer-login>namesake</customer-login>", customer_backup, **as_new)
    answer = etree.fromstring(response.content).find("backup-manager/download-file/result")
    assert answer is not None and error_pair(answer)[0] == "1013"
    retired = server.home / "dumps" / ".deleted"
    assert (retired / "clients" / f"namesake.{old.customer_id}" / customer_backup).is_file()  # kept on disk
    webspace_file = webspace_backup.findtext("file/name") or ""
    webspace_id = old.webspaces["namesake.test"]
    assert (retired / "domains" / f"namesake.test.{webspace_id}" / webspace_file).is_file()


# --- upload and import ------------------------------------------------------------------------


def test_download_upload_import_as_another_owner_and_restore(server: Server, tmp_path: Path) -> None:
    source = seed_customer(server, "origin", ("origin.test",), ("info",))
    seed_customer(server, "target", ("target.test",))
    build_site(source.vhosts / "origin.test")
    names = backup_now(server, "origin", split=400, description="to be moved")
    volumes = [download(server, "<customer-login>origin</customer-login>", name).content for name in names]
    for number, (name, data) in enumerate(zip(names, volumes, strict=True)):
        answer = upload(server, name, data)
        assert answer.get("version") == "1.6.7.0"
        result = answer.find("upload/result")
        assert result is not None and result.findtext("status") == "ok"
        assert result.findtext("name") == name
        imported = import_file(server, "<customer-login>target</customer-login>", result.findtext("file") or "")
        assert imported.findtext("status") == "ok", etree.tostring(imported)
        backups = listed(server, "<customer-login>target</customer-login>")
        complete = number == len(names) - 1
        assert [b.find("file/not-backup") is None for b in backups] == ([True] if complete else [False] * (number + 1))
    [backup] = listed(server, "<customer-login>target</customer-login>")
    assert [f.findtext("name") for f in backup.findall("file")] == names
    assert backup.findtext("file/description") == "to be moved"
    out = tmp_path / "restored"
    out.mkdir()
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"zstd -d | tar -x -C '{out}'"], input=b"".join(volumes), check=True
    )
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out).returncode == 0
    assert_same_tree(source.vhosts / "origin.test", out / "domains" / "origin.test" / "files")
    # and hostbackup restores the imported backup itself: its webspaces come from its configuration dump
    progress = run_restore(server, "target", names[0], "<target-directory>moved</target-directory>")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    moved = server.home / "restores" / "clients" / "target" / "moved" / "domains" / "origin.test" / "files"
    expected = snapshot(source.vhosts / "origin.test")
    expected.pop(b"httpdocs/link-absolute")  # a link out of a target directory is not created
    assert snapshot(moved) == expected


def test_import_errors_and_foreign_files(server: Server) -> None:
    seed_customer(server, "importer", ("importer.test",))
    seed_customer(server, "other", ("other.test",))
    selector = "<customer-login>importer</customer-login>"
    assert error_pair(import_file(server, selector, "/etc/passwd")) == ("1013", "File does not exist.")
    # another user's upload is not yours to import
    theirs = upload(server, "notes.txt", b"hello", login="other", **CUSTOMER).findtext("upload/result/file") or ""
    assert error_pair(import_file(server, selector, theirs)) == ("1013", "File does not exist.")
    ok = import_file(server, "<customer-login>other</customer-login>", theirs, login="other", **CUSTOMER)
    assert ok.findtext("status") == "ok"
    [foreign] = listed(server, "<customer-login>other</customer-login>")
    assert foreign.findtext("file/name") == "notes.txt" and foreign.find("file/not-backup") is not None
    assert foreign.findtext("file/size") == "5"
    for operation in ("verify", "restore"):  # listed, so it exists: it is just not a backup
        answer = server.call(f"<packet><x-backup-manager><{operation}><customer-login>other</customer-login>"
                             f"<filename>notes.txt</filename></{operation}></x-backup-manager></packet>")  # fmt: skip
        result = answer.find(f"x-backup-manager/{operation}/result")
        assert result is not None and error_pair(result) == ("1013", "The file notes.txt is not a backup")
    again = upload(server, "notes.txt", b"again", login="other", **CUSTOMER).findtext("upload/result/file") or ""
    duplicate = import_file(server, "<customer-login>other</customer-login>", again, login="other", **CUSTOMER)
    assert error_pair(duplicate) == ("1007", "Object already exists.")
    # oldest first (spec §4.11), foreign files among the backups: notes.txt dates from before the backup
    os.utime(server.home / "dumps" / "clients" / "other" / "notes.txt", (1_000_000_000, 1_000_000_000))
    backup_now(server, "other")
    dates = [
        int(item.findtext("file/creation-date") or 0)
        for item in listed(server, "<customer-login>other</customer-login>")
    ]
    assert dates == sorted(dates) and dates[0] == 1_000_000_000 and len(dates) == 2


def test_forged_metadata_reaches_nothing_beyond_its_own_backup(server: Server) -> None:
    """A backup's files are named by its metadata: an uploaded one could name `../../../secret.key` for
    remove-file to delete, or `/dev/zero` for verify to read forever."""
    seed_customer(server, "metaforger", ("metaforger.test",))
    selector = "<customer-login>metaforger</customer-login>"
    canary = server.home / "canary.txt"
    canary.write_text("still here")
    forged = json.dumps({
        "format": "hostbackup-backup/1", "name": "evil.tar", "owner_kind": "customer", "owner_id": None,
        "owner_name": "metaforger", "created": 1, "description": "", "task_id": None, "compression": "none",
        "options": {}, "volumes": [{"name": "evil.tar", "size": 1, "sha256": "0" * 64},
                                   {"name": "../../../canary.txt", "size": 10, "sha256": "0" * 64}],
    }).encode()  # fmt: skip
    reference = upload(server, "evil.tar.meta.json", forged, login="metaforger", **CUSTOMER)
    answer = import_file(server, selector, reference.findtext("upload/result/file") or "", login="metaforger",
                         **CUSTOMER)  # fmt: skip
    assert error_pair(answer) == ("1019", "Invalid value of name: 'evil.tar.meta.json' (reserved for backup metadata).")
    folder = server.home / "dumps" / "clients" / "metaforger"  # the same file, put there some other way
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evil.tar").write_bytes(b"x")
    (folder / "evil.tar.meta.json").write_bytes(forged)
    [foreign] = listed(server, selector)
    assert foreign.findtext("file/name") == "evil.tar" and foreign.find("file/not-backup") is not None
    removed = result_of(bm(server, f"<remove-file>{selector}<filename>evil.tar</filename></remove-file>"))
    assert removed.findtext("status") == "ok" and not (folder / "evil.tar").exists()
    assert canary.read_text() == "still here"


def test_import_of_a_damaged_backup_needs_ignore_sign(server: Server) -> None:
    seeded = seed_customer(server, "damaged", ("damaged.test",))
    seed_customer(server, "receiver", ("receiver.test",))
    build_site(seeded.vhosts / "damaged.test")
    [name] = backup_now(server, "damaged")
    data = bytearray(download(server, "<customer-login>damaged</customer-login>", name).content)
    data[len(data) // 2] ^= 0xFF
    reference = upload(server, name, bytes(data)).findtext("upload/result/file") or ""
    selector = "<customer-login>receiver</customer-login>"
    refused = import_file(server, selector, reference)
    assert refused.findtext("errcode") == "1023" and "integrity" in (refused.findtext("errtext") or "")
    assert listed(server, selector) == []
    forced = import_file(server, selector, reference, "<ignore-sign>true</ignore-sign>")
    assert forced.findtext("status") == "ok"
    assert len(listed(server, selector)) == 1


def test_a_backup_imported_after_a_failed_check_has_its_restored_files_compared(server: Server) -> None:
    """Its volume digests were taken on arrival, so they vouch for nothing: the restore compares
    every file it writes with SHA256SUMS, and a mismatch fails the task, naming the file."""
    seed_customer(server, "doubtful", ("doubtful.test",))
    raw = io.BytesIO()
    info = (
        b'<backup-info format="hostbackup/1" level="customer"><description/><accounts>'
        b'<webspace name="doubtful.test"/></accounts></backup-info>'
    )
    listed_sum = hashlib.sha256(b"what was backed up").hexdigest()
    members = [("backup-info.xml", info), ("domains/doubtful.test/files/index.html", b"what arrived"),
               ("SHA256SUMS", f"{listed_sum}  domains/doubtful.test/files/index.html\n".encode())]  # fmt: skip
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            member = tarfile.TarInfo(name)
            member.size, member.mode = len(data), 0o644
            archive.addfile(member, io.BytesIO(data))
    volume = zstandard.ZstdCompressor(write_checksum=True).compress(raw.getvalue())  # intact for zstd
    reference = upload(server, "doubtful_2611270000.tar.zst", volume).findtext("upload/result/file") or ""
    selector = "<customer-login>doubtful</customer-login>"
    assert import_file(server, selector, reference).findtext("errcode") == "1023"
    assert import_file(server, selector, reference, "<ignore-sign>true</ignore-sign>").findtext("status") == "ok"
    progress = run_restore(server, "doubtful", "doubtful_2611270000.tar.zst", "<target-directory>t</target-directory>")
    assert progress.findtext("state") == "failed"
    error = progress.findtext("error") or ""
    assert "do not match the backup's checksums: domains/doubtful.test/files/index.html" in error, error


def test_upload_without_file_part_and_with_bad_credentials(server: Server) -> None:
    from harness import ADMIN_PASSWORD

    auth = {"HTTP_AUTH_LOGIN": "admin", "HTTP_AUTH_PASSWD": ADMIN_PASSWORD}
    body = b'--b\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n--b--\r\n'
    response = server.client.post(
        server.url, content=body, headers={**auth, "Content-Type": "multipart/form-data; boundary=b"}
    )
    system = etree.fromstring(response.content).find("system")
    assert system is not None and system.findtext("errcode") == "1014"
    refused = upload(server, "x.bin", b"data", password="wrong-pass")
    assert refused.findtext("system/errcode") == "1001"


# --- settings, retention, levels, roles -------------------------------------------------------


def test_server_wide_settings_defaults_validation_and_persistence(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        settings = result_of(bm(server, "<get-server-wide-settings/>")).find("settings")
        assert settings is not None
        assert [child.tag for child in settings] == [
            "max-backup-files", "max-backup-processes", "low-priority", "do-not-compress",
            "allow-local-ftp-backup", "keep-local-backup",
        ]  # fmt: skip
        assert settings.findtext("max-backup-files") == "-1"
        assert int(settings.findtext("max-backup-processes") or 0) >= 2
        assert settings.findtext("keep-local-backup") == "true"
        for bad in ("<max-backup-processes>0</max-backup-processes>", "<max-backup-files>0</max-backup-files>"):
            result = result_of(
                bm(server, f"<set-server-wide-settings><settings>{bad}</settings></set-server-wide-settings>")
            )
            assert result.findtext("errcode") == "1019"
        change = "<settings><max-backup-files>2</max-backup-files><do-not-compress>true</do-not-compress></settings>"
        assert (
            result_of(bm(server, f"<set-server-wide-settings>{change}</set-server-wide-settings>")).findtext("status")
            == "ok"
        )
        seed_customer(server, "keeper", ("keeper.test",))
    finally:
        server.stop()
    server = start_server(tmp_path / "home")
    try:
        settings = result_of(bm(server, "<get-server-wide-settings/>")).find("settings")
        assert settings is not None and settings.findtext("max-backup-files") == "2"
        assert settings.findtext("do-not-compress") == "true"
        names = [backup_now(server, "keeper", extra="<only-configuration/>", description=f"n{i}")[0] for i in range(3)]
        backups = listed(server, "<customer-login>keeper</customer-login>")
        assert [b.findtext("file/description") for b in backups] == ["n1", "n2"]  # the two newest
        assert [b.findtext("file/name") for b in backups] == names[1:]
        assert names[0].endswith(".tar")  # do-not-compress: plain tar volumes
        listing = subprocess.run(["tar", "-tf", str(server.home / "dumps" / "clients" / "keeper" / names[2])],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "backup-info.xml" in listing
        denied = result_of(bm(server, "<get-server-wide-settings/>", login="keeper", **CUSTOMER))
        assert error_pair(denied) == ("1006", "Permission denied.")
    finally:
        server.stop()


def test_levels_webspace_reseller_server(server: Server) -> None:
    from hostbackup.accounts.users import Role, create_user
    from hostbackup.config import Settings
    from hostbackup.db.engine import Database

    settings = Settings.load(server.home)
    db = Database(settings.effective_database_url)
    with db.session() as session:
        reseller = create_user(session, role=Role.RESELLER, login="levelres", password="Reseller-Pass-1", owner_id=1)
        reseller_id = reseller.id
    db.dispose()
    mine = seed_customer(server, "levelcust", ("levelcust.test",), owner_id=reseller_id)
    seed_customer(server, "notmine", ("notmine.test",))
    build_site(mine.vhosts / "levelcust.test")
    as_reseller = {"login": "levelres", "password": "Reseller-Pass-1"}
    options = "<local/><description>level</description><only-configuration/>"
    webspace = start_backup(
        server, f"<backup-webspace><webspace-name>levelcust.test</webspace-name>{options}</backup-webspace>"
    )
    task = wait_for_task(server, webspace)
    assert (
        task.findtext("webspace-id") == str(mine.webspaces["levelcust.test"]) and task.findtext("status") == "finished"
    )
    assert len(listed(server, "<webspace-name>levelcust.test</webspace-name>")) == 1
    reseller_task = start_backup(
        server, f"<backup-reseller><reseller-login>levelres</reseller-login>{options}</backup-reseller>", **as_reseller
    )
    assert wait_for_task(server, reseller_task, **as_reseller).findtext("reseller-id") == str(reseller_id)
    [backup] = listed(server, "<reseller-login>levelres</reseller-login>", **as_reseller)
    # the reseller's backup describes its customers and their webspaces
    data = (server.home / "dumps" / "resellers" / "levelres" / (backup.findtext("file/name") or "")).read_bytes()
    info = subprocess.run(
        ["bash", "-c", "zstd -d | tar -xO backup-info.xml"], input=data, capture_output=True, check=True
    ).stdout
    assert b'login="levelcust"' in info and b'name="levelcust.test"' in info and b"notmine" not in info
    denied = result_of(bm(server, f"<backup-server>{options}</backup-server>", **as_reseller))
    assert error_pair(denied) == ("1006", "Permission denied.")
    hidden = result_of(
        bm(
            server,
            f"<backup-customer><customer-login>notmine</customer-login>{options}</backup-customer>",
            **as_reseller,
        )
    )
    assert error_pair(hidden) == ("1013", "Customer does not exist.")
    server_task = start_backup(server, f"<backup-server>{options}</backup-server>")
    record = wait_for_task(server, server_task)
    assert record.find("server") is not None and record.findtext("status") == "finished"
    assert len(listed(server, "<server/>")) >= 1


ROLE_CASES = ["get-local-backup-list", "download-file", "remove-file", "stop-backup", "get-tasks-info"]


@pytest.mark.parametrize("operation", ROLE_CASES)
def test_role_matrix_customers_and_resellers_reach_only_their_own(server: Server, operation: str) -> None:
    from hostbackup.accounts.users import Role, create_user
    from hostbackup.config import Settings
    from hostbackup.db.engine import Database

    suffix = ROLE_CASES.index(operation)
    db = Database(Settings.load(server.home).effective_database_url)
    with db.session() as session:
        reseller = create_user(
            session, role=Role.RESELLER, login=f"mres{suffix}", password="Reseller-Pass-1", owner_id=1
        )
        reseller_id = reseller.id
    db.dispose()
    own = seed_customer(server, f"mown{suffix}", (f"mown{suffix}.test",), owner_id=reseller_id)
    stranger = seed_customer(server, f"mstr{suffix}", (f"mstr{suffix}.test",))
    del own
    [name] = backup_now(server, stranger.login, extra="<only-configuration/>")
    task_id = start_backup(server, packet(stranger.login, extra="<only-configuration/>"))
    wait_for_task(server, task_id)
    selector = f"<customer-login>{stranger.login}</customer-login>"
    bodies = {
        "get-local-backup-list": f"<get-local-backup-list>{selector}</get-local-backup-list>",
        "download-file": f"<download-file>{selector}<filename>{name}</filename></download-file>",
        "remove-file": f"<remove-file>{selector}<filename>{name}</filename></remove-file>",
        "stop-backup": f"<stop-backup><task-id>{task_id}</task-id></stop-backup>",
        "get-tasks-info": f"<get-tasks-info><task-id>{task_id}</task-id></get-tasks-info>",
    }
    for who in ({"login": f"mres{suffix}", "password": "Reseller-Pass-1"}, {"login": f"mown{suffix}", **CUSTOMER}):
        answer = result_of(bm(server, bodies[operation], **who))
        assert answer.findtext("errcode") == "1013", (who, etree.tostring(answer))
    # the owner itself may
    mine = result_of(bm(server, bodies["get-local-backup-list"], login=stranger.login, **CUSTOMER))
    assert len(mine.findall("backup")) == 2
    assert (server.home / "dumps" / "clients" / stranger.login / name).exists()


def test_low_priority_runs_backups_at_nice_19_and_idle_io(slow_server: Server) -> None:  # noqa: F811
    change = "<settings><low-priority>true</low-priority></settings>"
    assert (
        result_of(bm(slow_server, f"<set-server-wide-settings>{change}</set-server-wide-settings>")).findtext("status")
        == "ok"
    )
    seeded = seed_customer(slow_server, "lowprio", ("lowprio.test",))
    big_site(seeded.vhosts / "lowprio.test", 64)
    task_id = start_backup(slow_server, packet("lowprio"))
    pid = wait_until_running(slow_server, task_id)
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    io_class = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True).stdout
    assert nice == 19
    assert io_class.startswith("idle")
    result_of(bm(slow_server, f"<stop-backup><task-id>{task_id}</task-id></stop-backup>"))
