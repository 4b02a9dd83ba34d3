"""Remote (FTP/FTPS) storage end to end: settings over the API, backups landing on a real vsftpd,
bounded local staging, and the failure modes (server gone, wrong password, missing directory, full disk).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from content import build_site
from ftpserver import FTP_USER, FtpServer, ftp_server
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
from hostbackup.config import Settings
from hostbackup.db.engine import Database
from hostbackup.db.tables import RemoteStorage

CUSTOMER_PASSWORD = "Customer-Pass-1"


@pytest.fixture(scope="module")
def hb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose FTP retries are quick, so failure tests take seconds."""
    env = {"HOSTBACKUP_FTP_TRIES": "3", "HOSTBACKUP_FTP_BACKOFF": "0.2"}
    running = start_server(tmp_path_factory.mktemp("remote") / "home", env=env)
    yield running
    running.stop()


def ftp_dir(ftp: FtpServer, name: str) -> str:
    path = ftp.root / name
    path.mkdir(exist_ok=True)
    shutil.chown(path, FTP_USER, FTP_USER)
    return f"/{name}"


def configure(server: Server, selector: str, ftp: FtpServer, directory: str, **kwargs: object) -> None:
    body = f"<set-remote-storage-settings>{selector}{ftp.settings_xml(directory)}</set-remote-storage-settings>"
    result = result_of(bm(server, body, **kwargs))
    assert result.findtext("status") == "ok", etree.tostring(result).decode()


def keep_local(server: Server, keep: bool) -> None:
    body = f"<set-server-wide-settings><settings><keep-local-backup>{str(keep).lower()}</keep-local-backup>"
    assert result_of(bm(server, body + "</settings></set-server-wide-settings>")).findtext("status") == "ok"


def remote_backup(server: Server, login: str, split: int = 0) -> int:
    return start_backup(
        server,
        f"<backup-customer><customer-login>{login}</customer-login><remote>ftp</remote><prefix>nightly</prefix>"
        f"<description>remote</description><split-size>{split}</split-size></backup-customer>",
    )


def finish(server: Server, task_id: int, status: str = "finished") -> str:
    task = wait_for_task(server, task_id)
    error = progress_of(server, task_id).findtext("error") or ""
    assert task.findtext("status") == status, error
    assert task.findtext("protocol") == "ftp"
    return error


def local_dir(server: Server, login: str) -> Path:
    return server.home / "dumps" / "clients" / login


def local_files(server: Server, login: str) -> list[str]:
    folder = local_dir(server, login)
    return sorted(name for name in os.listdir(folder) if not name.startswith(".")) if folder.is_dir() else []


def seeded_with_random(server: Server, login: str, megabytes: int) -> None:
    seeded = seed_customer(server, login, (f"{login}.example",))
    docs = seeded.vhosts / f"{login}.example" / "httpdocs"
    docs.mkdir(parents=True, exist_ok=True)
    for number in range(megabytes):
        (docs / f"blob-{number}.bin").write_bytes(os.urandom(1024 * 1024))


# --- settings over the API ---------------------------------------------------------------------


def settings_of(server: Server, selector: str, version: str = "", **kwargs: object) -> etree._Element:
    attribute = f' version="{version}"' if version else ""
    body = f"<get-remote-storage-settings>{selector}<protocol>ftp</protocol></get-remote-storage-settings>"
    root = server.call(f"<packet{attribute}><backup-manager>{body}</backup-manager></packet>", **kwargs)
    assert_plesk_valid(root)
    result = root.find("backup-manager/get-remote-storage-settings/result")
    assert result is not None
    return result


def stored_password(server: Server, owner_id: int) -> str | None:
    db = Database(Settings.load(server.home).effective_database_url)
    try:
        with db.session() as session:
            row = session.scalars(select(RemoteStorage).where(RemoteStorage.owner_id == owner_id)).one()
            return row.password_encrypted
    finally:
        db.dispose()


def test_settings_round_trip(hb: Server) -> None:
    seeded = seed_customer(hb, "settings1", ("settings1.example",))
    selector = "<customer-login>settings1</customer-login>"
    assert [child.tag for child in settings_of(hb, selector).find("settings")] == ["protocol"]
    body = (
        f"<set-remote-storage-settings>{selector}<settings><protocol>FTP</protocol><host>ftp.example.net</host>"
        "<port>2121</port><directory>/backups/jdoe</directory><login>jdoe</login><password>s3cret-FTP</password>"
        "<passive-mode>true</passive-mode><use-ftps>true</use-ftps></settings></set-remote-storage-settings>"
    )
    assert result_of(bm(hb, body)).findtext("status") == "ok"
    settings = settings_of(hb, selector).find("settings")
    assert settings is not None
    assert [(child.tag, child.text) for child in settings] == [
        ("protocol", "ftp"), ("host", "ftp.example.net"), ("port", "2121"), ("directory", "/backups/jdoe"),
        ("login", "jdoe"), ("passive-mode", "true"), ("use-ftps", "true"),
    ]  # fmt: skip
    encrypted = stored_password(hb, seeded.customer_id)
    assert encrypted and "s3cret-FTP" not in encrypted
    old = settings_of(hb, selector, version="1.6.6.0").find("settings")
    assert old is not None and old.find("use-ftps") is None and old.find("password") is None
    # absent elements keep, present ones overwrite, an empty password clears
    update = f"<set-remote-storage-settings>{selector}<settings><protocol>ftp</protocol><port>21</port>"
    assert result_of(bm(hb, update + "<password/></settings></set-remote-storage-settings>")).findtext("status") == "ok"
    settings = settings_of(hb, selector).find("settings")
    assert settings is not None and settings.findtext("port") == "21" and settings.findtext("host") == "ftp.example.net"
    assert stored_password(hb, seeded.customer_id) is None


@pytest.mark.parametrize(
    ("settings", "code", "text"),
    [
        ("<protocol>ftp</protocol><port>0</port>", "1019", "Invalid value of port: '0'."),
        ("<protocol>ftp</protocol><port>65536</port>", "1019", "Invalid value of port: '65536'."),
        ("<protocol>sftp</protocol><host>h</host>", "1017", "Protocol 'sftp' is not supported."),
    ],
)
def test_settings_values_are_checked(hb: Server, settings: str, code: str, text: str) -> None:
    body = f"<set-remote-storage-settings><settings>{settings}</settings></set-remote-storage-settings>"
    result = result_of(bm(hb, body))
    assert (result.findtext("errcode"), result.findtext("errtext")) == (code, text)
    get = "<get-remote-storage-settings><protocol>sftp</protocol></get-remote-storage-settings>"
    assert result_of(bm(hb, get)).findtext("errcode") == "1017"


def test_roles(hb: Server) -> None:
    seed_customer(hb, "rolea", ("rolea.example",))
    seed_customer(hb, "roleb", ("roleb.example",))
    as_a = {"login": "rolea", "password": CUSTOMER_PASSWORD}
    other = "<customer-login>roleb</customer-login>"
    assert settings_of(hb, other, **as_a).findtext("errcode") == "1013"
    body = f"<set-remote-storage-settings>{other}<settings><protocol>ftp</protocol><host>x</host></settings>"
    assert result_of(bm(hb, body + "</set-remote-storage-settings>", **as_a)).findtext("errcode") == "1013"
    assert settings_of(hb, "<server/>", **as_a).findtext("errcode") == "1006"
    own = "<set-remote-storage-settings><settings><protocol>ftp</protocol><host>mine</host></settings>"
    assert result_of(bm(hb, own + "</set-remote-storage-settings>", **as_a)).findtext("status") == "ok"
    assert settings_of(hb, "", **as_a).findtext("settings/host") == "mine"
    assert settings_of(hb, "<customer-login>rolea</customer-login>").findtext("settings/host") == "mine"
    # configured host without login is still "not configured"
    packet = "<backup-customer><customer-login>rolea</customer-login><remote>ftp</remote><description/>"
    result = result_of(bm(hb, packet + "</backup-customer>", **as_a))
    assert (result.findtext("errcode"), result.findtext("errtext")) == ("1031", "Remote storage is not configured.")


# --- backups on a real vsftpd ------------------------------------------------------------------


def restore_with_stock_tools(volumes: list[Path], target: Path) -> None:
    target.mkdir()
    subprocess.run(
        f"cat {' '.join(str(path) for path in volumes)} | zstd -d | tar -x -C {target}", shell=True, check=True
    )
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=target, check=True)


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
def test_split_backup_lands_on_the_server_and_restores(hb: Server, tmp_path: Path, tls: bool) -> None:
    login = f"split{int(tls)}"
    seeded = seed_customer(hb, login, (f"{login}.example",))
    build_site(seeded.vhosts / f"{login}.example")
    keep_local(hb, False)
    with ftp_server(tls=tls) as ftp:
        configure(hb, f"<customer-login>{login}</customer-login>", ftp, ftp_dir(ftp, "backups"))
        finish(hb, remote_backup(hb, login, split=256))
        stored = ftp.files("backups")
        volumes = sorted(name for name in stored if not name.endswith(".meta.json"))
        assert len(volumes) > 3 and all(name.startswith("nightly_") for name in volumes)
        assert [name for name in stored if name.startswith(".")] == []
        assert len([name for name in stored if name.endswith(".meta.json")]) == 1
        assert all(stored[name] == 256 * 1024 for name in volumes[:-1])
        restore_with_stock_tools([ftp.root / "backups" / name for name in volumes], tmp_path / "restored")
        assert (tmp_path / "restored" / "domains" / f"{login}.example" / "files").is_dir()
    assert local_files(hb, login) == []  # nothing local: no staging left, nothing listed


class DiskSampler:
    """Samples the bytes in a folder tree from a thread (the server runs in another process)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used())
            self.samples += 1
            self._stop.wait(0.005)

    def used(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    continue
        return total


@pytest.mark.parametrize("split_kib", [1024, 0], ids=["split", "streamed"])
def test_local_disk_stays_bounded(hb: Server, split_kib: int) -> None:
    login = f"bounded{split_kib}"
    seeded_with_random(hb, login, 16)
    keep_local(hb, False)
    with ftp_server(max_rate=16 * 1024 * 1024) as ftp:
        configure(hb, f"<customer-login>{login}</customer-login>", ftp, ftp_dir(ftp, "b"))
        local_dir(hb, login).mkdir(parents=True, exist_ok=True)
        with DiskSampler(local_dir(hb, login)) as sampler:
            finish(hb, remote_backup(hb, login, split=split_kib))
        uploaded = sum(size for name, size in ftp.files("b").items() if not name.endswith(".json"))
    print(f"peak local disk {sampler.peak} bytes for a {uploaded}-byte backup ({sampler.samples} samples)")
    assert uploaded > 16 * 1024 * 1024 and sampler.samples > 50
    assert sampler.peak <= 2 * split_kib * 1024 + 64 * 1024


def backup_names(files: Iterable[str]) -> set[str]:
    return {name.removesuffix(".meta.json") for name in files if name.endswith(".meta.json")}


def test_keep_local_backup_keeps_and_lists_the_local_copy(hb: Server) -> None:
    """Both copies of every backup stay: the next remote backup of the owner removes none of them."""
    seeded = seed_customer(hb, "keeper", ("keeper.example",))
    build_site(seeded.vhosts / "keeper.example")
    keep_local(hb, True)
    with ftp_server() as ftp:
        configure(hb, "<customer-login>keeper</customer-login>", ftp, "/")
        finish(hb, remote_backup(hb, "keeper", split=512))
        finish(hb, remote_backup(hb, "keeper", split=512))
        remote = ftp.files()
    local = local_files(hb, "keeper")
    assert sorted(remote) == local and len(backup_names(local)) == 2
    assert not list(local_dir(hb, "keeper").glob(".remote-*"))  # no journal says "sweep this away"
    listed = result_of(bm(hb, "<get-local-backup-list><customer-login>keeper</customer-login></get-local-backup-list>"))
    assert len(listed.findall("backup")) == 2


def test_a_finished_backup_left_in_a_journal_is_not_swept_away(hb: Server) -> None:
    """Earlier versions left the journal of a finished keep-local upload behind, and the owner's
    next remote backup then removed that good backup from the server as a failed run's leftovers."""
    seeded = seed_customer(hb, "journaled", ("journaled.example",))
    build_site(seeded.vhosts / "journaled.example")
    keep_local(hb, False)
    with ftp_server() as ftp:
        configure(hb, "<customer-login>journaled</customer-login>", ftp, "/")
        first = remote_backup(hb, "journaled", split=512)
        finish(hb, first)
        (kept,) = backup_names(ftp.files())
        journal = local_dir(hb, "journaled") / f".remote-{first}.json"
        where = f"ftp://{ftp.login}@{ftp.host}:{ftp.port}/"
        journal.write_text(json.dumps({"name": kept, "where": where}))
        finish(hb, remote_backup(hb, "journaled", split=512))
        names = backup_names(ftp.files())
    assert kept in names and len(names) == 2
    assert not journal.exists()


@contextlib.contextmanager
def uploading(server: Server, login: str, *, keep: bool) -> Iterator[tuple[FtpServer, int]]:
    """A split remote backup of 8 MiB to a 1 MiB/s FTP server, caught while its volumes upload."""
    seeded_with_random(server, login, 8)
    keep_local(server, keep)
    with ftp_server(max_rate=1024 * 1024) as ftp:
        configure(server, f"<customer-login>{login}</customer-login>", ftp, "/")
        task_id = remote_backup(server, login, split=512)
        _wait_for(lambda: len(ftp.files()) >= 2)
        yield ftp, task_id


def test_stop_during_a_split_upload_ends_stopped_and_leaves_nothing(hb: Server) -> None:
    """A stop while a volume uploads: the volume writer drops its files under the upload, and what
    the upload then met must not take the place of the stop (it ended `failed`, with a local path)."""
    login = "stopped-up"
    with uploading(hb, login, keep=False) as (ftp, task_id):
        answer = result_of(bm(hb, f"<stop-backup><task-id>{task_id}</task-id></stop-backup>"))
        assert answer.findtext("status") == "ok"
        error = finish(hb, task_id, "stopped")
        assert str(hb.home) not in error
        assert ftp.files() == {}
    assert local_files(hb, login) == []
    assert not [name for name in os.listdir(local_dir(hb, login)) if name.startswith((".staging", ".remote-"))]


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [False, True], ids=["no-keep", "keep-local"])
def test_server_gone_mid_upload(hb: Server, keep: bool) -> None:
    login = f"gone{int(keep)}"
    with uploading(hb, login, keep=keep) as (ftp, task_id):
        ftp.stop()
        error = finish(hb, task_id, "failed")
        assert error.startswith(f"FTP upload failed: cannot connect to 127.0.0.1:{ftp.port} (Connection refused)")
        assert ftp.files() != {}  # the server went away before anything could be removed…
        listed = local_files(hb, login)
        assert (len(listed) > 2) is keep  # keep-local: the full local copy is published
        assert not [name for name in os.listdir(local_dir(hb, login)) if name.startswith(".staging")]
        ftp.start()  # …and the next remote backup of the owner removes the leftovers first
        shutil.rmtree(hb.home / "vhosts" / f"{login}.example" / "httpdocs")
        finish(hb, remote_backup(hb, login, split=512))
        names = list(ftp.files())
        assert len({name.split(".tar")[0] for name in names}) == 1, names  # one backup only
        assert not [name for name in names if name.startswith(".")]


def test_keep_local_backup_keeps_a_local_copy_when_the_server_cannot_be_reached(hb: Server) -> None:
    """The commonest upload failure is a server that is down from the start: with keep-local-backup
    the backup is still made and listed locally, and the task fails saying why (spec §4.1)."""
    seeded = seed_customer(hb, "unreached", ("unreached.example",))
    build_site(seeded.vhosts / "unreached.example")
    keep_local(hb, True)
    with ftp_server() as ftp:
        configure(hb, "<customer-login>unreached</customer-login>", ftp, "/")
        ftp.stop()
        error = finish(hb, remote_backup(hb, "unreached", split=512), "failed")
        assert error.startswith(f"FTP upload failed: cannot connect to 127.0.0.1:{ftp.port}")
    kept = local_files(hb, "unreached")
    assert len(kept) > 2  # the volumes and their metadata
    listing = "<get-local-backup-list><customer-login>unreached</customer-login></get-local-backup-list>"
    listed = result_of(bm(hb, listing))
    assert len(listed.findall("backup")) == 1
    keep_local(hb, False)
    with ftp_server() as ftp:
        configure(hb, "<customer-login>unreached</customer-login>", ftp, "/")
        ftp.stop()
        finish(hb, remote_backup(hb, "unreached", split=512), "failed")
    assert local_files(hb, "unreached") == kept  # without keep-local-backup, nothing more stays


def _wait_for(condition: object, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_wrong_password_and_missing_directory(hb: Server) -> None:
    seed_customer(hb, "faulty", ("faulty.example",))
    keep_local(hb, False)
    selector = "<customer-login>faulty</customer-login>"
    with ftp_server() as ftp:
        body = f"<set-remote-storage-settings>{selector}{ftp.settings_xml('/')}</set-remote-storage-settings>"
        assert result_of(bm(hb, body.replace(ftp.password, "wrong"))).findtext("status") == "ok"
        error = finish(hb, remote_backup(hb, "faulty"), "failed")
        assert error == f"FTP upload failed: login refused by 127.0.0.1:{ftp.port} (530 Login incorrect.)"
        configure(hb, selector, ftp, "/missing")
        error = finish(hb, remote_backup(hb, "faulty"), "failed")
        assert error.startswith(f"FTP upload failed: directory '/missing' does not exist on 127.0.0.1:{ftp.port} (550")
        assert ftp.files() == {}
    assert local_files(hb, "faulty") == []


@pytest.mark.parametrize("split", [0, 256], ids=["streamed", "split"])
def test_full_disk_on_the_server(hb: Server, split: int) -> None:
    login = f"quota{split}"
    seeded_with_random(hb, login, 4)
    keep_local(hb, False)
    with ftp_server(tmpfs_size="2m") as ftp:
        configure(hb, f"<customer-login>{login}</customer-login>", ftp, "/")
        error = finish(hb, remote_backup(hb, login, split=split), "failed")
        assert error.startswith("FTP upload failed: 127.0.0.1:") and "disk full or quota exceeded" in error
        assert ftp.files() == {}
    assert local_files(hb, login) == []


def test_ftp_check_names_the_failing_step(hb: Server) -> None:
    import sys

    seed_customer(hb, "checker", ("checker.example",))
    selector = "<customer-login>checker</customer-login>"
    command = [sys.executable, "-m", "hostbackup", "--home", str(hb.home), "ftp-check", "--owner", "customer:checker"]
    with ftp_server(tls=True) as ftp:
        configure(hb, selector, ftp, "/")
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[1:] == [
            "connect and log in: ok", "write a test file: ok", "read it back: ok", "delete it: ok",
        ]  # fmt: skip
        assert ftp.files() == {}
        body = f"<set-remote-storage-settings>{selector}{ftp.settings_xml('/')}</set-remote-storage-settings>"
        assert result_of(bm(hb, body.replace(ftp.password, "wrong"))).findtext("status") == "ok"
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 1
        assert f"connect and log in: FAILED — login refused by 127.0.0.1:{ftp.port} (530" in done.stdout
