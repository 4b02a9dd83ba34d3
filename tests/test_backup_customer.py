"""backup-customer end to end over HTTPS: task, worker, archive, storage, status and listing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from lxml import etree

from content import assert_same_tree, build_site
from harness import Server, bm, progress_of, result_of, seed_customer, start_backup, wait_for_task
from hostbackup.backup.archive import CHECKSUM_ARCNAME


def backup_packet(customer: str, *extra: str, split: int = 0, selector: str = "customer-id") -> str:
    return (
        f"<backup-customer><{selector}>{customer}</{selector}><local/><description>Standard weekly backup</description>"
        f"<split-size>{split}</split-size>{''.join(extra)}</backup-customer>"
    )


def listing(server: Server, login: str) -> list[etree._Element]:
    result = result_of(
        bm(server, f"<get-local-backup-list><customer-login>{login}</customer-login></get-local-backup-list>")
    )
    assert result.findtext("status") == "ok"
    return result.findall("backup")


def members(volumes: list[Path]) -> list[str]:
    joined = b"".join(path.read_bytes() for path in volumes)
    stream = subprocess.run(["zstd", "-d", "-c"], input=joined, capture_output=True, check=True).stdout
    listed = subprocess.run(["tar", "-t"], input=stream, capture_output=True, check=True).stdout
    return listed.decode(errors="surrogateescape").splitlines()


def volumes_of(server: Server, login: str, backup: etree._Element) -> list[Path]:
    return [server.home / "dumps" / "clients" / login / (name.text or "") for name in backup.iter("name")]


@pytest.mark.parametrize("only", ["", "<only-configuration/>"], ids=["full", "only-configuration"])
def test_acceptance_packets_finish_and_are_listed(server: Server, only: str) -> None:
    login = f"accept{len(only)}"
    seeded = seed_customer(server, login, (f"{login}.example",), ("info",))
    build_site(seeded.vhosts / f"{login}.example")
    task_id = start_backup(server, backup_packet(str(seeded.customer_id), only))
    assert task_id > 0
    task = wait_for_task(server, task_id)
    assert [child.tag for child in task] == ["customer-id", "id", "status", "started", "prefix", "filename", "protocol"]
    assert task.findtext("status") == "finished"
    assert task.findtext("customer-id") == str(seeded.customer_id)
    assert task.findtext("protocol") == "local"
    backups = listing(server, login)
    assert len(backups) == 1
    files = backups[0].findall("file")
    assert [f.findtext("name") for f in files] == [task.findtext("filename")]
    assert files[0].findtext("description") == "Standard weekly backup"
    path = volumes_of(server, login, backups[0])[0]
    assert int(files[0].findtext("size") or 0) == path.stat().st_size
    assert path.stat().st_mode & 0o777 == 0o600
    names = members([path])
    assert names[0] == "backup-info.xml" and names[-1] == "SHA256SUMS"
    has_content = any(name.startswith(f"domains/{login}.example/files/") for name in names)
    assert has_content is (only == "")


def test_split_backup_restores_with_stock_tools(server: Server, tmp_path: Path) -> None:
    seeded = seed_customer(server, "splitter", ("split.example", "second.example"), ("info",))
    for number, name in enumerate(seeded.webspaces):
        build_site(seeded.vhosts / name, seed=number)
    maildir = seeded.mail / "split.example" / "info"
    (maildir / "cur" / "1700000000.M1P1.host:2,RS").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
    task_id = start_backup(server, backup_packet("splitter", split=256, selector="customer-login"))
    assert wait_for_task(server, task_id).findtext("status") == "finished"
    [backup] = listing(server, "splitter")
    volumes = volumes_of(server, "splitter", backup)
    assert len(volumes) > 3
    assert [volume.name for volume in volumes] == sorted(volume.name for volume in volumes)
    assert all(volume.stat().st_size == 256 * 1024 for volume in volumes[:-1])
    assert 0 < volumes[-1].stat().st_size <= 256 * 1024
    out = tmp_path / "restored"
    out.mkdir()
    command = "cat " + " ".join(f"'{v}'" for v in volumes) + f" | zstd -d | tar -x -C '{out}'"
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in seeded.webspaces:
        assert_same_tree(seeded.vhosts / name, out / "domains" / name / "files")
    assert_same_tree(maildir, out / "domains" / "split.example" / "mail" / "info")
    info = etree.parse(str(out / "backup-info.xml")).getroot()
    assert info.get("level") == "customer"
    assert [w.get("name") for w in info.iter("webspace")] == list(seeded.webspaces)
    assert b"Customer-Pass-1" not in (out / "backup-info.xml").read_bytes()
    meta_path = volumes[0].with_name(volumes[0].name.rsplit(".", 1)[0] + ".meta.json")
    meta = json.loads(meta_path.read_text())
    sums = subprocess.run(["sha256sum", *map(str, volumes)], capture_output=True, text=True, check=True).stdout
    assert [line.split()[0] for line in sums.splitlines()] == [v["sha256"] for v in meta["volumes"]]


@pytest.mark.parametrize(
    ("flag", "files", "mail"),
    [("<only-configuration/>", False, False), ("<only-hosting/>", True, False), ("<only-mail/>", False, True)],
)
def test_only_options_select_the_content(server: Server, flag: str, files: bool, mail: bool) -> None:
    login = "only" + flag.strip("</>").replace("-", "")
    seeded = seed_customer(server, login, (f"{login}.test",), ("box",))
    build_site(seeded.vhosts / f"{login}.test")
    (seeded.mail / f"{login}.test" / "box" / "new" / "1.msg").write_text("Subject: x\n\nmail body\n")
    task_id = start_backup(server, backup_packet(login, flag, selector="customer-login"))
    assert wait_for_task(server, task_id).findtext("status") == "finished"
    [backup] = listing(server, login)
    names = members(volumes_of(server, login, backup))
    assert any("/files/" in name for name in names) is files
    assert any(f"domains/{login}.test/mail/box/new/1.msg" == name for name in names) is mail
    assert "backup-info.xml" in names


def error_of(server: Server, body: str, **kwargs: object) -> tuple[str, str]:
    result = result_of(bm(server, body, **kwargs))
    assert result.findtext("status") == "error"
    assert result.find("task-id") is None
    return result.findtext("errcode") or "", result.findtext("errtext") or ""


def test_request_errors_follow_the_spec(server: Server) -> None:
    seeded = seed_customer(server, "errs", ("errs.test",))
    assert error_of(server, backup_packet("abc")) == ("1019", "Invalid value of customer-id: 'abc'.")
    assert error_of(server, backup_packet("0"))[0] == "1019"
    assert error_of(server, backup_packet("99999")) == ("1013", "Customer does not exist.")
    assert error_of(server, backup_packet("nobody", selector="customer-login"))[0] == "1013"
    assert error_of(server, backup_packet(str(seeded.customer_id), split=-1)) == (
        "1019",
        "Invalid value of split-size: '-1'.",
    )
    remote = backup_packet("errs", selector="customer-login").replace("<local/>", "<remote>ftp</remote>")
    assert error_of(server, remote) == ("1031", "Remote storage is not configured.")
    sftp = remote.replace(">ftp<", ">sftp<")
    assert error_of(server, sftp) == ("1017", "Protocol 'sftp' is not supported.")


def test_roles_customers_back_up_only_themselves(server: Server) -> None:
    alice = seed_customer(server, "alice", ("alice.test",))
    bob = seed_customer(server, "bob", ("bob.test",))
    as_alice = {"login": "alice", "password": "Customer-Pass-1"}
    assert error_of(server, backup_packet(str(bob.customer_id)), **as_alice) == ("1013", "Customer does not exist.")
    task_id = start_backup(server, backup_packet(str(alice.customer_id)), **as_alice)
    assert wait_for_task(server, task_id, **as_alice).findtext("status") == "finished"
    # tasks and backups of others are invisible
    as_bob = {"login": "bob", "password": "Customer-Pass-1"}
    hidden = result_of(bm(server, f"<get-tasks-info><task-id>{task_id}</task-id></get-tasks-info>", **as_bob))
    assert (hidden.findtext("errcode"), hidden.findtext("errtext")) == ("1013", "Task does not exist.")
    other = "<get-local-backup-list><customer-login>alice</customer-login></get-local-backup-list>"
    listed = result_of(bm(server, other, **as_bob))
    assert listed.findtext("errcode") == "1013"
    own = result_of(bm(server, "<get-tasks-info/>", **as_alice))
    assert [task.findtext("id") for task in own.findall("task")] == [str(task_id)]


def test_get_tasks_info_selectors(server: Server) -> None:
    seeded = seed_customer(server, "tasker", ("tasker.test",))
    first = start_backup(server, backup_packet("tasker", "<only-configuration/>", selector="customer-login"))
    second = start_backup(server, backup_packet("tasker", "<only-configuration/>", selector="customer-login"))
    wait_for_task(server, second)
    for selector in (f"<customer-id>{seeded.customer_id}</customer-id>", "<customer-login>tasker</customer-login>"):
        result = result_of(bm(server, f"<get-tasks-info>{selector}</get-tasks-info>"))
        assert [task.findtext("id") for task in result.findall("task")] == [str(first), str(second)]
    webspace = result_of(bm(server, "<get-tasks-info><webspace-name>tasker.test</webspace-name></get-tasks-info>"))
    assert webspace.findall("task") == []  # a customer's tasks are not its webspaces' tasks
    missing = result_of(bm(server, "<get-tasks-info><task-id>987654</task-id></get-tasks-info>"))
    assert missing.findtext("errcode") == "1013"
    negative = result_of(bm(server, "<get-tasks-info><task-id>-1</task-id></get-tasks-info>"))
    assert negative.findtext("errcode") == "1013"


def test_cli_backup_customer_runs_with_progress(server: Server) -> None:
    seeded = seed_customer(server, "clicust", ("cli.test",))
    build_site(seeded.vhosts / "cli.test")
    command = [sys.executable, "-m", "hostbackup", "--home", str(server.home), "backup", "customer", "clicust",
               "--split-size", "512", "--description", "from the CLI", "--only-hosting"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [backup] = listing(server, "clicust")
    assert backup.findtext("file/description") == "from the CLI"
    volumes = volumes_of(server, "clicust", backup)
    assert len(volumes) > 1
    *_, summary, result = done.stdout.splitlines()
    assert result.endswith(f"finished: {volumes[0].name}")
    stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b"".join(v.read_bytes() for v in volumes)))
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        members = [member for member in archive]
    content = sum(member.size for member in members if member.isfile() and member.name != CHECKSUM_ARCNAME)
    stored = sum(volume.stat().st_size for volume in volumes)
    assert summary == (
        f"archived {len(members)} entries ({content / 1e6:.1f} MB) into {stored / 1e6:.1f} MB in {len(volumes)} volumes"
    )
    failed = subprocess.run([*command[:7], "nobody"], capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "Customer does not exist." in failed.stderr


def test_archive_stream_is_valid_for_python_tarfile_too(server: Server) -> None:
    import tarfile

    import zstandard

    seeded = seed_customer(server, "pytar", ("pytar.test",))
    build_site(seeded.vhosts / "pytar.test")
    task_id = start_backup(server, backup_packet("pytar", selector="customer-login"))
    assert wait_for_task(server, task_id).findtext("status") == "finished"
    summary = progress_of(server, task_id).findtext("summary") or ""
    assert summary.startswith("archived ") and summary.endswith(" in 1 volume")  # x-backup-manager tells what it did
    [backup] = listing(server, "pytar")
    [volume] = volumes_of(server, "pytar", backup)
    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(volume.read_bytes())).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        assert archive.getmember("backup-info.xml").isfile()
        assert archive.getmember("domains/pytar.test/files/httpdocs/link-relative").linkname == "index.php"
