"""Restore over the API: round trips, partial restores, conflicts, damaged and hostile backups."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import cast

import pytest
import zstandard
from lxml import etree

from content import Snapshot, build_site, snapshot
from harness import Server, bm, progress_of, result_of, seed_customer, start_backup, wait_for_task
from hostbackup.backup.metadata import BackupMeta
from hostbackup.db.tables import Task
from hostbackup.restore.decompress import decompressed
from hostbackup.restore.extract import Extraction, RefusedMember
from hostbackup.restore.runner import RestoreFailed, RestoreJob, RestoreOptions, _Reporter, _VolumeCheck
from hostbackup.restore.tarstream import Member
from hostbackup.tasks.worker import Progress, TaskStopped
from hostbackup.xmlapi.context import Services


def backup(server: Server, login: str, split: int = 0) -> str:
    body = (
        f"<backup-customer><customer-login>{login}</customer-login><local/><description>r</description>"
        f"<split-size>{split}</split-size></backup-customer>"
    )
    task_id = start_backup(server, body)
    assert wait_for_task(server, task_id).findtext("status") == "finished"
    return wait_for_task(server, task_id).findtext("filename") or ""


def restore(server: Server, owner: str, name: str, extra: str = "", **kwargs: object) -> etree._Element:
    body = (
        f"<packet><x-backup-manager><restore><customer-login>{owner}</customer-login><filename>{name}</filename>"
        f"{extra}</restore></x-backup-manager></packet>"
    )
    result = server.call(body, **kwargs).find("x-backup-manager/restore/result")  # type: ignore[arg-type]
    assert result is not None
    return result


def run_restore(server: Server, owner: str, name: str, extra: str = "", **kwargs: object) -> etree._Element:
    result = restore(server, owner, name, extra, **kwargs)
    assert result.findtext("status") == "ok", etree.tostring(result)
    task_id = int(result.findtext("task-id") or 0)
    wait_for_task(server, task_id, **kwargs)
    return progress_of(server, task_id)


def delete_webspace(server: Server, name: str) -> None:
    answer = server.call(f"<packet><webspace><del><filter><name>{name}</name></filter></del></webspace></packet>")
    assert answer.findtext("webspace/del/result/status") == "ok", etree.tostring(answer)


def test_wipe_and_restore_a_customer_byte_identical(server: Server, tmp_path: Path) -> None:
    seeded = seed_customer(server, "phoenix", ("phoenix.test", "ashes.test"), ("info",))
    for number, name in enumerate(seeded.webspaces):
        build_site(seeded.vhosts / name, seed=number)
        maildir = seeded.mail / name / "info"
        (maildir / "cur" / f"1700000000.M1P{number}.host:2,RS").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
        (maildir / "new" / f"1700000001.M2P{number}.host").write_bytes(b"Subject: new\r\n\r\n\xff\xfe binary\r\n")
    before = {name: (snapshot(seeded.vhosts / name), snapshot(seeded.mail / name)) for name in seeded.webspaces}
    name = backup(server, "phoenix", split=300)
    for webspace in seeded.webspaces:
        delete_webspace(server, webspace)
        shutil.rmtree(seeded.vhosts / webspace, ignore_errors=True)
        shutil.rmtree(seeded.mail / webspace, ignore_errors=True)
    progress = run_restore(server, "phoenix", name)
    assert progress.findtext("state") == "finished", progress.findtext("error")
    summary = progress.findtext("summary") or ""
    assert summary.startswith("restored ") and "re-created" in summary
    assert "phoenix.test" in summary and "info@phoenix.test" in summary
    warnings = [w.text or "" for w in progress.iter("warning")]
    assert len(warnings) == 2  # the two refused links below, nothing else
    for webspace, (files, mail) in before.items():
        link = b"httpdocs/link-absolute"  # points at /etc/hostname: reported, not re-created
        assert files.pop(link)[0] == "link"
        refused = f"domains/{webspace}/files/httpdocs/link-absolute -> /etc/hostname"
        assert f"refused link pointing outside the restore target: {refused}" in warnings
        assert snapshot(seeded.vhosts / webspace) == files
        assert snapshot(seeded.mail / webspace) == mail
    mailboxes = server.call(
        f"<packet><mail><get_info><filter><site-id>{_webspace_id(server, 'phoenix.test')}</site-id></filter>"
        "</get_info></mail></packet>"
    )
    assert [n.text for n in mailboxes.iter("name")] == ["info"]


def _webspace_id(server: Server, name: str) -> str:
    answer = server.call(
        f"<packet><webspace><get><filter><name>{name}</name></filter><dataset><gen_info/></dataset></get></webspace></packet>"
    )
    return answer.findtext("webspace/get/result/id") or ""


def test_partial_restores_webspace_component_path_and_target_directory(server: Server) -> None:
    seeded = seed_customer(server, "parts", ("one.parts", "two.parts"), ("box",))
    for number, name in enumerate(seeded.webspaces):
        build_site(seeded.vhosts / name, seed=number)
        (seeded.mail / name / "box" / "cur" / "1.msg:2,S").write_text("mail\n")
    name = backup(server, "parts")
    for webspace in seeded.webspaces:
        shutil.rmtree(seeded.vhosts / webspace / "httpdocs")
        (seeded.mail / webspace / "box" / "cur" / "1.msg:2,S").unlink()
    # only the mail of one webspace
    assert (
        run_restore(
            server, "parts", name, "<webspace-name>one.parts</webspace-name><component>mail</component>"
        ).findtext("state")
        == "finished"
    )
    assert (seeded.mail / "one.parts" / "box" / "cur" / "1.msg:2,S").read_text() == "mail\n"
    assert not (seeded.mail / "two.parts" / "box" / "cur" / "1.msg:2,S").exists()
    assert not (seeded.vhosts / "one.parts" / "httpdocs").exists()
    # a path prefix
    prefix = "<path>domains/two.parts/files/httpdocs/locked</path>"
    assert run_restore(server, "parts", name, prefix).findtext("state") == "finished"
    assert (seeded.vhosts / "two.parts" / "httpdocs" / "locked" / "inside.txt").read_text() == "x"
    assert not (seeded.vhosts / "two.parts" / "httpdocs" / "index.php").exists()
    # into a target directory, under the owner's restore area
    progress = run_restore(server, "parts", name, "<target-directory>copy/here</target-directory>")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    target = server.home / "restores" / "clients" / "parts" / "copy" / "here"
    assert (target / "domains" / "one.parts" / "files" / "httpdocs" / "index.php").is_file()
    assert not (seeded.vhosts / "one.parts" / "httpdocs").exists()  # the original place is untouched


def test_conflict_policy_keep_or_overwrite(server: Server) -> None:
    seeded = seed_customer(server, "conflict", ("conflict.test",))
    build_site(seeded.vhosts / "conflict.test")
    name = backup(server, "conflict")
    index = seeded.vhosts / "conflict.test" / "httpdocs" / "index.php"
    original = index.read_bytes()
    index.write_text("changed after the backup")
    assert run_restore(server, "conflict", name).findtext("state") == "finished"  # default: keep
    assert index.read_text() == "changed after the backup"
    assert run_restore(server, "conflict", name, "<conflict>overwrite</conflict>").findtext("state") == "finished"
    assert index.read_bytes() == original


def _last_volume(server: Server, login: str, name: str) -> Path:
    """The last volume of the split backup whose first volume is `name`."""
    folder = server.home / "dumps" / "clients" / login
    return sorted(folder.glob(f"{name.rsplit('.', 1)[0]}.0*"))[-1]


def test_truncated_backup_restores_nothing(server: Server, tmp_path: Path) -> None:
    seeded = seed_customer(server, "cutoff", ("cutoff.test",))
    build_site(seeded.vhosts / "cutoff.test")
    name = backup(server, "cutoff", split=256)
    last = _last_volume(server, "cutoff", name)
    last.write_bytes(last.read_bytes()[:-50])
    progress = run_restore(server, "cutoff", name, "<target-directory>out</target-directory>")
    assert progress.findtext("state") == "failed"
    assert "nothing restored" in (progress.findtext("error") or "") and last.name in (progress.findtext("error") or "")
    assert not (server.home / "restores" / "clients" / "cutoff" / "out").exists()


def _flip_a_byte_of_the_last_volume(server: Server, login: str, name: str) -> Path:
    """Same size, other bytes: only the SHA-256 check (beside the extraction) can tell."""
    last = _last_volume(server, login, name)
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    return last


def test_a_damaged_volume_leaves_no_new_directory_behind(server: Server) -> None:
    seeded = seed_customer(server, "damagednew", ("newdir-damaged.test",))
    build_site(seeded.vhosts / "newdir-damaged.test")
    name = backup(server, "damagednew", split=256)
    last = _flip_a_byte_of_the_last_volume(server, "damagednew", name)
    target = server.home / "restores" / "clients" / "damagednew" / "out"
    target.mkdir(parents=True)  # existing: the new subtree the restore writes below it must go again
    progress = run_restore(server, "damagednew", name, "<target-directory>out</target-directory>")
    assert progress.findtext("state") == "failed"
    error = progress.findtext("error") or ""
    assert "nothing restored" in error and last.name in error, error
    assert list(target.iterdir()) == []
    progress = run_restore(server, "damagednew", name, "<target-directory>new/deeper</target-directory>")
    assert progress.findtext("state") == "failed"
    assert not (target.parent / "new").exists()  # the target the restore created goes as well


def test_a_damaged_volume_changes_nothing_in_place(server: Server) -> None:
    seeded = seed_customer(server, "damagedhere", ("inplace-damaged.test",))
    site = seeded.vhosts / "inplace-damaged.test"
    build_site(site)
    name = backup(server, "damagedhere", split=256)
    (site / "httpdocs" / "index.php").write_text("changed after the backup")
    shutil.rmtree(site / "httpdocs" / "locked")
    before = snapshot(site)
    last = _flip_a_byte_of_the_last_volume(server, "damagedhere", name)
    progress = run_restore(server, "damagedhere", name, "<conflict>overwrite</conflict>")
    assert progress.findtext("state") == "failed"
    error = progress.findtext("error") or ""
    assert "nothing restored" in error and last.name in error, error
    assert snapshot(site) == before  # nothing replaced, nothing re-created, no temporary name left


PLAIN_INFO = b'<backup-info format="hostbackup/1" level="customer"><description/><accounts/></backup-info>'


def _plant_backup(
    server: Server,
    login: str,
    members: list[tuple[tarfile.TarInfo, bytes]],
    info: bytes = PLAIN_INFO,
    webspaces: tuple[str, ...] = ("victim.test",),
    options: dict[str, object] | None = None,
) -> str:
    """A crafted backup: a tar stream of our shape with hostile members, and valid metadata."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        first = tarfile.TarInfo("backup-info.xml")
        first.size = len(info)
        archive.addfile(first, io.BytesIO(info))
        for member, data in members:
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    volume = zstandard.ZstdCompressor().compress(raw.getvalue())
    folder = server.home / "dumps" / "clients" / login
    folder.mkdir(parents=True, exist_ok=True)
    name = "hostile_2611260000.tar.zst"
    (folder / name).write_bytes(volume)
    meta = {
        "format": "hostbackup-backup/1", "name": name, "owner_kind": "customer", "owner_id": None,
        "owner_name": login, "created": int(time.time()), "description": "planted", "task_id": None,
        "compression": "zstd", "options": options or {}, "members": 0, "content_bytes": 0, "webspaces": list(webspaces),
        "warnings": [], "volumes": [{"name": name, "size": len(volume), "sha256": hashlib.sha256(volume).hexdigest()}],
    }  # fmt: skip
    (folder / f"{name}.meta.json").write_text(json.dumps(meta))
    return name


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.mode = kind, link, 0o644
    return member


def test_hostile_archives_are_refused_and_nothing_escapes(server: Server, tmp_path: Path) -> None:
    seed_customer(server, "victim", ("victim.test",))
    outside = server.home / "restores" / "clients" / "victim" / "escaped.txt"
    cases = {
        "dotdot": [(_member("domains/victim.test/files/../../../../escaped.txt"), b"evil")],
        "absolute": [(_member("/tmp/hostbackup-absolute-escape.txt"), b"evil")],
        "symlink-escape": [
            (_member("domains/victim.test/files/link", tarfile.SYMTYPE, "../../../../../.."), b""),
            (_member("domains/victim.test/files/link/escaped.txt"), b"evil"),
        ],
        "through-absolute-link": [
            (_member("domains/victim.test/files/etc", tarfile.SYMTYPE, "/tmp"), b""),
            (_member("domains/victim.test/files/etc/hostbackup-absolute-escape.txt"), b"evil"),
        ],
        "device": [(_member("domains/victim.test/files/null", tarfile.CHRTYPE), b"")],
        "case-collision": [
            (_member("domains/victim.test/files/Readme.txt"), b"one"),
            (_member("domains/victim.test/files/README.txt"), b"two"),
        ],
    }
    for label, members in cases.items():
        name = _plant_backup(server, "victim", members)
        progress = run_restore(server, "victim", name, f"<target-directory>{label}</target-directory>")
        assert progress.findtext("state") == "failed", label
        error = progress.findtext("error") or ""
        assert any(member.name.lstrip("/") in error for member, _ in members), (label, error)
        assert not outside.exists() and not Path("/tmp/hostbackup-absolute-escape.txt").exists(), label
    # into the original place, too
    name = _plant_backup(server, "victim", cases["dotdot"])
    assert run_restore(server, "victim", name).findtext("state") == "failed"
    assert not (server.home / "vhosts" / "escaped.txt").exists() and not (server.home / "escaped.txt").exists()


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE backup-info [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<backup-info format="hostbackup/1" level="customer"><description>&lol3;</description><accounts>
<customer login="planted" id="9" guid="g" status="0" created="2026-01-01T00:00:00">
<password-hash>x</password-hash></customer></accounts></backup-info>"""


def test_a_hostile_configuration_dump_is_refused_and_creates_nothing(server: Server) -> None:
    seed_customer(server, "infohost", ("infohost.test",))
    members = [(_member("domains/infohost.test/files/a.txt"), b"a")]
    name = _plant_backup(server, "infohost", members, info=LAUGHS, webspaces=("infohost.test",))
    progress = run_restore(server, "infohost", name)
    assert progress.findtext("state") == "failed"
    assert "backup-info.xml: DOCTYPE is not allowed" in (progress.findtext("error") or "")
    answer = server.call("<packet><customer><get><filter><login>planted</login></filter><dataset><gen_info/>"
                         "</dataset></get></customer></packet>")  # fmt: skip
    assert answer.findtext("customer/get/result/errcode") == "1013"  # no account was re-created from it


FORGED_INFO = b"""<backup-info format="hostbackup/1" level="reseller"><description/><accounts>
<reseller login="evilres"><password-hash>$scrypt$forged</password-hash>
  <customer login="evilcust"><webspace name="crafted.test"/></customer></reseller>
<customer login="forger"><webspace name="forged-new.test"/></customer>
<customer login="bystander"><webspace name="bystander-new.test"/></customer>
</accounts></backup-info>"""


def test_a_forged_backup_creates_no_account_beyond_its_owner(server: Server) -> None:
    """A customer can download a backup, edit its backup-info.xml and upload it again: the restore acts
    with the customer's rights, whatever the file says (no reseller, no other customer, no content
    for webspaces the customer does not have)."""
    seed_customer(server, "forger", ("forger.test",))
    bystander = seed_customer(server, "bystander", ("bystander.test",))
    files = {"crafted.test": b"<?php planted();", "bystander-new.test": b"planted", "forged-new.test": b"mine"}
    members = [(_member(f"domains/{name}/files/httpdocs/index.php"), data) for name, data in files.items()]
    name = _plant_backup(server, "forger", members, info=FORGED_INFO, webspaces=tuple(files))
    progress = run_restore(server, "forger", name, login="forger", password="Customer-Pass-1")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    warnings = " ".join(w.text or "" for w in progress.iter("warning"))
    assert "account evilres does not exist, and this restore may not create it" in warnings
    assert "account bystander belongs to someone else" in warnings
    assert "webspace crafted.test does not exist: its content was not restored" in warnings
    for login in ("evilres", "evilcust"):
        for role, dataset in (("reseller", "gen-info"), ("customer", "gen_info")):
            answer = server.call(f"<packet><{role}><get><filter><login>{login}</login></filter><dataset><{dataset}/>"
                                 f"</dataset></get></{role}></packet>")  # fmt: skip
            assert answer.findtext(f"{role}/get/result/errcode") == "1013", etree.tostring(answer)
    vhosts = bystander.vhosts
    assert not (vhosts / "crafted.test").exists() and not (vhosts / "bystander-new.test").exists()
    assert (vhosts / "forged-new.test" / "httpdocs" / "index.php").read_bytes() == b"mine"  # its own: restored
    assert progress.findtext("summary") == "restored 1 files and links; re-created webspaces: forged-new.test"


def test_webspace_and_reseller_backups_restore_in_place(server: Server) -> None:
    """A restore acts as the owner of the backup's storage: a webspace's backup restores into that
    webspace, and a reseller's re-creates a deleted customer of its own, as the reseller."""
    from hostbackup.accounts.users import Role, create_user
    from hostbackup.config import Settings
    from hostbackup.db.engine import Database

    db = Database(Settings.load(server.home).effective_database_url)
    with db.session() as session:
        reseller_id = create_user(session, role=Role.RESELLER, login="wres", password="Reseller-Pass-1", owner_id=1).id
    db.dispose()
    seeded = seed_customer(server, "wcust", ("wcust.test",), owner_id=reseller_id)
    site = seeded.vhosts / "wcust.test"
    build_site(site)
    before = snapshot(site)
    options = "<local/><description>d</description><split-size>0</split-size>"
    as_reseller = {"login": "wres", "password": "Reseller-Pass-1"}

    task_id = start_backup(
        server, f"<backup-webspace><webspace-name>wcust.test</webspace-name>{options}</backup-webspace>"
    )
    name = wait_for_task(server, task_id).findtext("filename") or ""
    (site / "httpdocs" / "index.php").unlink()
    body = (f"<packet><x-backup-manager><restore><webspace-name>wcust.test</webspace-name><filename>{name}</filename>"
            "</restore></x-backup-manager></packet>")  # fmt: skip
    queued = server.call(body, login="wcust", password="Customer-Pass-1").find("x-backup-manager/restore/result")
    assert queued is not None and queued.findtext("status") == "ok", etree.tostring(queued)
    wait_for_task(server, int(queued.findtext("task-id") or 0))
    progress = progress_of(server, int(queued.findtext("task-id") or 0))
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert snapshot(site) == before

    task_id = start_backup(
        server, f"<backup-reseller><reseller-login>wres</reseller-login>{options}</backup-reseller>", **as_reseller
    )
    name = wait_for_task(server, task_id, **as_reseller).findtext("filename") or ""
    deleted = server.call("<packet><customer><del><filter><login>wcust</login></filter></del></customer></packet>")
    assert deleted.findtext("customer/del/result/status") == "ok", etree.tostring(deleted)
    assert not site.exists()  # moved aside with the webspace
    body = (f"<packet><x-backup-manager><restore><reseller-login>wres</reseller-login><filename>{name}</filename>"
            "</restore></x-backup-manager></packet>")  # fmt: skip
    queued = server.call(body, **as_reseller).find("x-backup-manager/restore/result")
    assert queued is not None and queued.findtext("status") == "ok", etree.tostring(queued)
    task_id = int(queued.findtext("task-id") or 0)
    wait_for_task(server, task_id, **as_reseller)
    progress = progress_of(server, task_id)
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert "re-created accounts: wcust; webspaces: wcust.test" in (progress.findtext("summary") or "")
    before.pop(b"httpdocs/link-absolute")  # points outside the webspace: refused, as in every restore
    assert snapshot(site) == before
    owner = server.call("<packet><customer><get><filter><login>wcust</login></filter><dataset><gen_info/></dataset>"
                        "</get></customer></packet>")  # fmt: skip
    assert owner.findtext("customer/get/result/data/gen_info/owner-id") == str(reseller_id)


@pytest.mark.parametrize("link_first", [True, False], ids=["chain-made-after", "chain-made-before"])
def test_links_that_leave_their_root_through_other_links_are_removed(server: Server, link_first: bool) -> None:
    """`box -> sub/l1/../..` reads as `.`, but with `sub/l1 -> ..` it is the mail root's parent: a mail
    server, a web server or the next backup would follow it out of the webspace (found in a review)."""
    login = f"chainer{int(link_first)}"
    seeded = seed_customer(server, login, (f"{login}.test",))
    base = f"domains/{login}.test/mail/"
    chain = [(_member(base + "sub/l1", tarfile.SYMTYPE, ".."), b""),
             (_member(base + "box", tarfile.SYMTYPE, "sub/l1/../.."), b"")]  # fmt: skip
    fine = (_member(base + "fine", tarfile.SYMTYPE, "sub/l1/sub"), b"")  # through the same link, but inside
    members = [(_member(base + "sub", tarfile.DIRTYPE), b""), *(chain if link_first else chain[::-1]), fine]
    name = _plant_backup(server, login, members, webspaces=(f"{login}.test",))
    progress = run_restore(server, login, name, login=login, password="Customer-Pass-1")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    mail = seeded.mail / f"{login}.test"
    assert not (mail / "box").is_symlink()  # removed, and reported
    assert f"refused link pointing outside the restore target: {base}box -> sub/l1/../.." in [
        w.text for w in progress.iter("warning")
    ]
    assert os.readlink(mail / "sub" / "l1") == ".." and os.readlink(mail / "fine") == "sub/l1/sub"
    assert progress.findtext("summary") == "restored 2 files and links"


def test_an_uploaded_backup_gives_its_owners_to_files_only_for_the_administrator(server: Server) -> None:
    """As root, a restore gives files the archive's owners; an upload could name root's or another
    tenant's uid, so a customer's restore of one gives them its webspace's owner instead."""
    seeded = seed_customer(server, "owners", ("owners.test",))
    site = seeded.vhosts / "owners.test"
    assert os.geteuid() == 0, "the test harness runs as root, as the server does in production"
    os.chown(site, 4321, 8765)
    member = _member("domains/owners.test/files/httpdocs/stranger.php")
    member.uid, member.gid = 1234, 5678
    name = _plant_backup(server, "owners", [(member, b"<?php")], webspaces=("owners.test",),
                         options={"imported": True, "intact": True})  # fmt: skip
    restored = site / "httpdocs" / "stranger.php"
    progress = run_restore(server, "owners", name, login="owners", password="Customer-Pass-1")
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert (restored.stat().st_uid, restored.stat().st_gid) == (4321, 8765)
    progress = run_restore(server, "owners", name, "<conflict>overwrite</conflict>")  # the administrator's
    assert progress.findtext("state") == "finished", progress.findtext("error")
    assert (restored.stat().st_uid, restored.stat().st_gid) == (1234, 5678)


def test_restore_request_errors_and_roles(server: Server) -> None:
    seeded = seed_customer(server, "mine", ("mine.test",))
    seed_customer(server, "yours", ("yours.test",))
    build_site(seeded.vhosts / "mine.test")
    name = backup(server, "mine")
    as_mine = {"login": "mine", "password": "Customer-Pass-1"}
    as_yours = {"login": "yours", "password": "Customer-Pass-1"}
    assert restore(server, "mine", name, **as_yours).findtext("errcode") == "1013"
    assert restore(server, "mine", "missing.tar.zst").findtext("errtext") == "The file missing.tar.zst does not exist"
    assert restore(server, "mine", name, "<webspace-name>yours.test</webspace-name>").findtext("errcode") == "1013"
    for bad in ("../up", "/etc", "a/../../b"):
        answer = restore(server, "mine", name, f"<target-directory>{bad}</target-directory>")
        assert answer.findtext("errcode") == "1019", bad
    progress = run_restore(server, "mine", name, **as_mine)
    assert progress.findtext("state") == "finished", progress.findtext("error")
    task = result_of(
        bm(server, f"<get-tasks-info><task-id>{progress.findtext('task-id')}</task-id></get-tasks-info>", **as_mine)
    )
    assert task.findtext("task/status") == "finished"
    assert "kept" in " ".join(w.text or "" for w in progress.iter("warning"))  # existing files were kept
    mistyped = run_restore(server, "mine", name, "<component>files</component><path>domains/mine.test/fils</path>")
    assert mistyped.findtext("state") == "finished" and mistyped.findtext("summary") == "restored 0 files and links"
    assert [w.text for w in mistyped.iter("warning")] == [
        "nothing in the backup matched component files, path domains/mine.test/fils"
    ]  # not a silent success


def test_cli_restore_into_a_directory(server: Server, tmp_path: Path) -> None:
    import subprocess
    import sys

    seeded = seed_customer(server, "clirest", ("clirest.test",))
    build_site(seeded.vhosts / "clirest.test")
    name = backup(server, "clirest", split=256)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "hostbackup", "--home", str(server.home), "restore", "customer:clirest", name,
               "--component", "files", "--target-directory", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    restored = out / "domains" / "clirest.test" / "files"
    expected = snapshot(seeded.vhosts / "clirest.test")
    expected.pop(b"httpdocs/link-absolute")
    assert snapshot(restored) == expected
    assert [line for line in done.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: refused link pointing outside the restore target: "
        "domains/clirest.test/files/httpdocs/link-absolute -> /etc/hostname"
    ]  # the link only: a restore that kept nothing warns of nothing else
    *_, summary, result = done.stdout.splitlines()
    files_and_links = sum(kind != "dir" for kind, *_ in snapshot(restored).values())
    assert summary == f"restored {files_and_links} files and links"
    assert result.startswith("task ") and name.startswith(result.split(" finished: ")[1])  # `name` is a volume


def _stream_into(
    target: Path, webspace: str, tar: bytes, extraction: Extraction, progress: Progress = lambda **_: None,
    estimate: int = 1 << 30,
) -> list[str]:  # fmt: skip
    """The restore job's pass over the uncompressed archive `tar`, into the target directory `target`
    (a restore into a directory needs no services); returns its summary, then its warnings."""
    options = RestoreOptions("b.tar", target_directory=str(target), webspaces=(webspace,))
    stream = decompressed(io.BufferedReader(io.BytesIO(tar)))  # type: ignore[arg-type]
    check = _VolumeCheck(None, cast(BackupMeta, None))
    job = RestoreJob(cast(Services, None))
    outcome = job._stream(cast(Task, None), options, stream, extraction, check, _Reporter(progress, estimate))
    return ["; ".join(outcome.done), *outcome.warnings]


def test_progress_and_a_stop_request_reach_a_directory_of_many_small_files(tmp_path: Path) -> None:
    """Files that follow in a new directory are written in a run (`TarReader.files_in`), at most a read
    buffer's worth: progress is still reported every MiB, and a stop request ends the restore there."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(_member("domains/many.test/mail/new", tarfile.DIRTYPE))
        for index in range(6000):  # 6000 messages of 1 KiB: 8.8 MiB of tar stream in one directory
            message = tarfile.TarInfo(f"domains/many.test/mail/new/{index:05d}.eml")
            message.size = 1024
            archive.addfile(message, io.BytesIO(bytes(1024)))
    reports: list[int] = []

    def progress(**fields: int) -> None:
        reports.append(fields["bytes_done"])
        if len(reports) == 3:
            raise TaskStopped

    extraction = Extraction(overwrite=False)
    with pytest.raises(TaskStopped):
        _stream_into(tmp_path, "many.test", raw.getvalue(), extraction, progress, estimate=5 << 20)
    assert reports[0] < reports[1] < reports[2] < 5 << 20  # every MiB or two, not once the directory ended
    restored = os.listdir(tmp_path / "domains" / "many.test" / "mail" / "new")
    assert 0 < len(restored) < 6000 and extraction.written == len(restored)


def test_the_cli_draws_its_progress_bar_on_a_terminal_only(server: Server, tmp_path: Path) -> None:
    import pty
    import subprocess
    import sys

    seeded = seed_customer(server, "clibar", ("clibar.test",))
    build_site(seeded.vhosts / "clibar.test")
    name = backup(server, "clibar")
    command = [sys.executable, "-m", "hostbackup", "--home", str(server.home), "restore", "customer:clibar", name,
               "--target-directory"]  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if "COLOR" not in key} | {"TERM": "xterm"}
    piped = subprocess.run([*command, str(tmp_path / "piped")], capture_output=True, timeout=300, env=environment)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(b"restored ") and piped.stdout.endswith(f"finished: {name}\n".encode())
    assert b"\x1b[" not in piped.stdout and piped.stdout.count(b"\n") == 2  # a script gets the summary and result only

    leader, follower = pty.openpty()
    with subprocess.Popen([*command, str(tmp_path / "shown")], stdout=follower, stderr=subprocess.PIPE,
                          env=environment) as shown:  # fmt: skip
        os.close(follower)
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            screen += chunk
        os.close(leader)
        assert shown.wait(timeout=300) == 0
    assert b"\x1b[" in screen and (b"planning" in screen or name.encode() in screen), screen[:500]
    assert screen.rstrip().endswith(f"finished: {name}".encode())
    restored = Path("domains") / "clibar.test"  # below the directories the restore made, with their own times
    assert snapshot(tmp_path / "shown" / restored) == snapshot(tmp_path / "piped" / restored)


DIR, FILE, LINK = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE
RUN_CASES = {  # member name (below domains/ws/files/), type, link target
    "a directory of files": [("d", DIR, ""), *((f"d/f{index}", FILE, "") for index in range(50))],
    "a name twice": [("d", DIR, ""), ("d/x", FILE, ""), ("d/x", FILE, "")],
    "a case collision": [("d", DIR, ""), ("d/Readme", FILE, ""), ("d/README", FILE, "")],
    "a file named with a slash": [("n", DIR, ""), ("n/f/", FILE, ""), ("n/f/g", FILE, "")],
    "a file named with /.": [("n", DIR, ""), ("n/f/.", FILE, ""), ("n/f/g", FILE, "")],
    "below a refused link": [("n", DIR, ""), ("n/l/", LINK, "/etc"), ("n/l/", FILE, ""), ("n/l/passwd", FILE, "")],
    "directories first, sorted": [("n", DIR, ""), ("n/c", DIR, ""), ("n/c-x", DIR, ""), ("n/c/z", FILE, "")],
}


@pytest.mark.parametrize("case", RUN_CASES)
def test_files_taken_in_runs_restore_as_the_general_path_does(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Odd and hostile names where a run could start: with runs the restore ends as without them,
    with the same message and the same files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, kind, link in RUN_CASES[case]:
            member = _member(f"domains/ws/files/{name}", kind, link)
            data = name.encode() if kind == tarfile.REGTYPE else b""
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))

    def restore_into(target: Path) -> tuple[str, Snapshot]:
        try:
            outcome = "; ".join(_stream_into(target, "ws", raw.getvalue(), Extraction(overwrite=False)))
        except RestoreFailed as exc:
            outcome = f"failed: {exc}"
        restored = target / "domains" / "ws" / "files"  # the archive's members, below the directories made for them
        files = snapshot(restored) if restored.exists() else {}
        if outcome.startswith("failed"):  # directory times are set at the end: a stopped restore leaves them at now
            files = {path: (kind, mode, 0 if kind == "dir" else mtime, data)
                     for path, (kind, mode, mtime, data) in files.items()}  # fmt: skip
        return outcome, files

    taken: list[str] = []
    original = Extraction.write_in_run

    def counted(extraction: Extraction, member: Member, data: memoryview) -> None:
        taken.append(member.name)
        original(extraction, member, data)

    monkeypatch.setattr(Extraction, "write_in_run", counted)
    with_runs = restore_into(tmp_path / "runs")
    monkeypatch.setattr(Extraction, "start_run", lambda *_: False)
    assert with_runs == restore_into(tmp_path / "general")
    if case == "a directory of files":
        assert len(taken) == 50 and with_runs[0] == "restored 50 files and links"


def test_a_missing_root_is_made_only_when_the_restore_may(tmp_path: Path) -> None:
    """A webspace deleted while its restore runs has its folder moved aside: the restore must not make it
    anew under the free name (the runner asks whether the webspace is still there and still its)."""
    member = _member("domains/gone.test/files/index.php")
    member.size = 0
    gone = tmp_path / "vhosts" / "gone.test"
    refusing = Extraction(overwrite=False, may_create_root=lambda root: root != gone)
    with pytest.raises(RefusedMember, match="is gone"):
        refusing.write(gone, "index.php", member)
    assert not gone.exists()
    refusing.write(tmp_path / "vhosts" / "kept.test", "index.php", member)  # any other root is made
    refusing.close()
    assert (tmp_path / "vhosts" / "kept.test" / "index.php").is_file()
