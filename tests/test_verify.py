"""verify (x-backup-manager and CLI): names the bad volume or member, passes intact backups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from content import build_site
from harness import Server, seed_customer, start_backup, wait_for_task


def verify(server: Server, owner: str, name: str, deep: bool = False, **kwargs: object) -> etree._Element:
    body = (
        f"<packet><x-backup-manager><verify><customer-login>{owner}</customer-login><filename>{name}</filename>"
        f"{'<deep/>' if deep else ''}</verify></x-backup-manager></packet>"
    )
    result = server.call(body, **kwargs).find("x-backup-manager/verify/result")  # type: ignore[arg-type]
    assert result is not None
    return result


def make_backup(server: Server, login: str, split: int) -> tuple[Path, dict[str, object]]:
    seeded = seed_customer(server, login, (f"{login}.test",))
    build_site(seeded.vhosts / f"{login}.test")
    body = (
        f"<backup-customer><customer-login>{login}</customer-login><local/><description>v</description>"
        f"<split-size>{split}</split-size></backup-customer>"
    )
    assert wait_for_task(server, start_backup(server, body)).findtext("status") == "finished"
    folder = server.home / "dumps" / "clients" / login
    [meta_path] = folder.glob("*.meta.json")
    return folder, json.loads(meta_path.read_text())


def cli_verify(server: Server, owner: str, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hostbackup", "--home", str(server.home), "verify", owner, name, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_intact_backup_verifies_shallow_and_deep(server: Server) -> None:
    _folder, meta = make_backup(server, "intact", 256)
    volumes = [v["name"] for v in meta["volumes"]]  # type: ignore[attr-defined]
    report = verify(server, "intact", volumes[0], deep=True).find("report")
    assert report is not None and report.findtext("intact") == "true", etree.tostring(report)
    assert int(report.findtext("members") or 0) > 20 and report.findtext("volumes") == str(len(volumes))
    done = cli_verify(server, "customer:intact", volumes[-1], "--deep")
    assert done.returncode == 0 and "intact" in done.stdout


def test_flipped_byte_in_a_middle_volume_is_named(server: Server) -> None:
    folder, meta = make_backup(server, "flipped", 256)
    volumes = [v["name"] for v in meta["volumes"]]  # type: ignore[attr-defined]
    assert len(volumes) >= 3
    middle = folder / volumes[len(volumes) // 2]
    data = bytearray(middle.read_bytes())
    data[1000] ^= 0x01
    middle.write_bytes(bytes(data))
    report = verify(server, "flipped", volumes[0]).find("report")
    assert report is not None and report.findtext("intact") == "false"
    assert report.findtext("bad-volume") == middle.name
    done = cli_verify(server, "customer:flipped", volumes[0])
    assert done.returncode != 0 and middle.name in done.stderr


def test_truncated_last_volume_fails_clearly(server: Server) -> None:
    folder, meta = make_backup(server, "truncated", 256)
    last = folder / meta["volumes"][-1]["name"]  # type: ignore[index]
    last.write_bytes(last.read_bytes()[:-100])
    report = verify(server, "truncated", last.name).find("report")
    assert report is not None and report.findtext("bad-volume") == last.name
    assert "bytes" in (report.findtext("problem") or "")


def test_deep_verify_catches_damage_the_metadata_does_not_know(server: Server) -> None:
    folder, meta = make_backup(server, "deepdamage", 0)
    [volume] = meta["volumes"]  # type: ignore[misc]
    path = folder / volume["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    digest = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    volume["sha256"] = digest  # damaged before the metadata was written: shallow checks cannot see it
    (folder / (meta["name"] + ".meta.json")).write_text(json.dumps(meta))  # type: ignore[operator]
    assert verify(server, "deepdamage", path.name).findtext("report/intact") == "true"
    deep = verify(server, "deepdamage", path.name, deep=True).find("report")
    assert deep is not None and deep.findtext("intact") == "false" and deep.findtext("problem")


def test_verify_errors_and_roles(server: Server) -> None:
    _folder, meta = make_backup(server, "private", 0)
    seed_customer(server, "nosy", ("nosy.test",))
    name = meta["volumes"][0]["name"]  # type: ignore[index]
    missing = verify(server, "private", "nothing.tar.zst")
    assert (missing.findtext("errcode"), missing.findtext("errtext")) == (
        "1013",
        "The file nothing.tar.zst does not exist",
    )
    hidden = verify(server, "private", name, login="nosy", password="Customer-Pass-1")
    assert hidden.findtext("errcode") == "1013"


def test_verify_after_backup_keeps_good_backups_and_removes_unreadable_ones(tmp_path: Path) -> None:
    from harness import start_server
    from hostbackup.backup.catalog import Catalog
    from hostbackup.backup.runner import BackupJob

    server = start_server(tmp_path / "home", env={"HOSTBACKUP_VERIFY_AFTER_BACKUP": "true"})
    try:
        folder, meta = make_backup(server, "readback", 128)  # finished: it was read back in full
        catalog = Catalog(folder)
        [backup] = catalog.backups()
        middle = folder / backup.volumes[len(backup.volumes) // 2].name
        data = bytearray(middle.read_bytes())
        data[10] ^= 0x10
        middle.write_bytes(bytes(data))
        with pytest.raises(RuntimeError, match=middle.name.replace(".", r"\.")):
            BackupJob._read_back(catalog, backup, lambda **_: None)
        assert catalog.backups() == [] and not middle.exists()
        assert meta["name"] == backup.name
    finally:
        server.stop()


def test_cli_errors_are_one_line_in_our_words(server: Server, tmp_path: Path) -> None:
    """The CLI's verify and restore answer a mistake with one `Error:` line and status 1, never a traceback."""
    seed_customer(server, "clierr", ("clierr.test",))
    settings = (
        "<settings><protocol>ftp</protocol><host>127.0.0.1</host><port>1</port><directory>/</directory>"
        "<login>nobody</login><password>secret-1</password></settings>"
    )
    answer = server.call(
        "<packet><backup-manager><set-remote-storage-settings><customer-login>clierr</customer-login>"
        f"{settings}</set-remote-storage-settings></backup-manager></packet>"
    )
    assert answer.findtext("backup-manager/set-remote-storage-settings/result/status") == "ok"
    cases = {
        ("verify", "customer:nobody", "x.tar.zst"): "Error: Customer does not exist.",
        ("restore", "customer:nobody", "x.tar.zst"): "Error: Customer does not exist.",
        ("verify", "webspace:none.test", "x.tar.zst"): "Error: Webspace does not exist.",
        ("verify", "customer:clierr", "x.tar.zst", "--remote"): "Error: cannot connect to 127.0.0.1:1",
        ("restore", "customer:clierr", "x.tar.zst", "--remote"): "Error: cannot connect to 127.0.0.1:1",
        ("verify", "customer:clierr", "x.tar.zst"): "Error: The file x.tar.zst does not exist",
    }
    for arguments, expected in cases.items():
        done = subprocess.run([sys.executable, "-m", "hostbackup", "--home", str(server.home), *arguments],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 1 and done.stderr.startswith(expected), (arguments, done.stderr)
        assert "Traceback" not in done.stderr and "secret-1" not in done.stderr
