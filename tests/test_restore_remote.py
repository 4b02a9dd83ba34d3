"""Restore and verify straight from FTP/FTPS storage, split volumes streamed in order."""

from __future__ import annotations

import shutil

import pytest
from lxml import etree

from content import build_site, snapshot
from ftpserver import ftp_server
from harness import Server, progress_of, seed_customer, wait_for_task
from test_remote_backup import configure, finish, ftp_dir, hb, keep_local, remote_backup  # noqa: F401
from test_restore import restore, run_restore


def remote_verify(server: Server, login: str, name: str, deep: bool) -> etree._Element:
    body = (
        f"<packet><x-backup-manager><verify><customer-login>{login}</customer-login><filename>{name}</filename>"
        f"<remote>ftp</remote>{'<deep/>' if deep else ''}</verify></x-backup-manager></packet>"
    )
    report = server.call(body).find("x-backup-manager/verify/result/report")
    assert report is not None
    return report


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_restore_and_verify_from_remote_split_volumes(hb: Server, tls: bool) -> None:  # noqa: F811
    login = f"fromftp{int(tls)}"
    seeded = seed_customer(hb, login, (f"{login}.example",), ("info",))
    build_site(seeded.vhosts / f"{login}.example")
    (seeded.mail / f"{login}.example" / "info" / "cur" / "1.msg:2,S").write_bytes(b"Subject: ftp\r\n\r\nmail\r\n")
    files, mail = snapshot(seeded.vhosts / f"{login}.example"), snapshot(seeded.mail / f"{login}.example")
    keep_local(hb, False)
    with ftp_server(tls=tls) as ftp:
        configure(hb, f"<customer-login>{login}</customer-login>", ftp, ftp_dir(ftp, "vault"))
        task_id = remote_backup(hb, login, split=256)
        finish(hb, task_id)
        volumes = sorted(name for name in ftp.files("vault") if not name.endswith(".meta.json"))
        assert len(volumes) > 3
        assert remote_verify(hb, login, volumes[0], deep=True).findtext("intact") == "true"
        shutil.rmtree(seeded.vhosts / f"{login}.example")
        shutil.rmtree(seeded.mail / f"{login}.example")
        started = restore(hb, login, volumes[0], "<remote>ftp</remote>")
        task_id = int(started.findtext("task-id") or 0)
        assert wait_for_task(hb, task_id).findtext("protocol") == "ftp"  # get-tasks-info says where it read from
        progress = progress_of(hb, task_id)
        assert progress.findtext("state") == "finished", progress.findtext("error")
        files.pop(b"httpdocs/link-absolute")
        assert snapshot(seeded.vhosts / f"{login}.example") == files
        assert snapshot(seeded.mail / f"{login}.example") == mail
        # a flipped byte in a middle volume on the server is named by verify and stops a restore
        middle = ftp.root / "vault" / volumes[len(volumes) // 2]
        data = bytearray(middle.read_bytes())
        data[100] ^= 0xFF
        middle.write_bytes(bytes(data))
        report = remote_verify(hb, login, volumes[0], deep=False)
        assert report.findtext("intact") == "false" and report.findtext("bad-volume") == middle.name
        failed = run_restore(hb, login, volumes[0], "<remote>ftp</remote><target-directory>again</target-directory>")
        assert failed.findtext("state") == "failed" and middle.name in (failed.findtext("error") or "")


def test_remote_restore_needs_remote_settings(hb: Server) -> None:  # noqa: F811
    seed_customer(hb, "noremote", ("noremote.example",))
    body = (
        "<packet><x-backup-manager><restore><customer-login>noremote</customer-login><filename>x.tar.zst</filename>"
        "<remote>ftp</remote></restore></x-backup-manager></packet>"
    )
    result = hb.call(body).find("x-backup-manager/restore/result")
    assert result is not None and result.findtext("errcode") == "1031"
    sftp = hb.call(body.replace(">ftp<", ">sftp<")).find("x-backup-manager/restore/result")
    assert sftp is not None and sftp.findtext("errcode") == "1017"


def test_a_remote_backup_is_not_vouched_for_unless_the_administrator_restores_it(hb: Server) -> None:  # noqa: F811
    """The owner's FTP server holds whatever the owner put there, metadata included: like an upload, its
    archive's owners (and its database dumps) apply only to the administrator's restores."""
    import os

    login = "ftpowners"
    seeded = seed_customer(hb, login, (f"{login}.example",))
    site = seeded.vhosts / f"{login}.example"
    page = site / "httpdocs" / "page.php"
    page.write_text("<?php")
    os.chown(page, 1234, 5678)
    keep_local(hb, False)
    with ftp_server() as ftp:
        configure(hb, f"<customer-login>{login}</customer-login>", ftp, ftp_dir(ftp, "own"))
        finish(hb, remote_backup(hb, login))
        [volume] = [name for name in ftp.files("own") if not name.endswith(".meta.json")]
        page.unlink()
        os.chown(site, 4321, 8765)
        as_customer = {"login": login, "password": "Customer-Pass-1"}
        progress = run_restore(hb, login, volume, "<remote>ftp</remote>", **as_customer)
        assert progress.findtext("state") == "finished", progress.findtext("error")
        assert (page.stat().st_uid, page.stat().st_gid) == (4321, 8765)
        progress = run_restore(hb, login, volume, "<remote>ftp</remote><conflict>overwrite</conflict>")
        assert progress.findtext("state") == "finished", progress.findtext("error")
        assert (page.stat().st_uid, page.stat().st_gid) == (1234, 5678)
