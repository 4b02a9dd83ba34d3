"""Tasks survive what production throws at them: a killed worker, a restarted server, a full queue."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import (
    Server,
    bm,
    progress_of,
    result_of,
    seed_customer,
    server_children,
    start_backup,
    start_server,
    wait_for_task,
)


def big_site(root: Path, megabytes: int) -> None:
    """Incompressible content, so that a backup runs long enough to be interrupted."""
    docs = root / "httpdocs"
    docs.mkdir(parents=True, exist_ok=True)
    for number in range(megabytes // 16):
        with (docs / f"media-{number:03d}.bin").open("wb") as handle:
            for _ in range(16):
                handle.write(os.urandom(1024 * 1024))


def packet(login: str, split: int = 0) -> str:
    return (
        f"<backup-customer><customer-login>{login}</customer-login><local/><description>big</description>"
        f"<split-size>{split}</split-size></backup-customer>"
    )


def wait_until_running(server: Server, task_id: int) -> int:
    """Poll until the task is archiving; returns its worker's pid."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = progress_of(server, task_id)
        if progress.findtext("state") == "running" and int(progress.findtext("bytes-done") or 0) > 0:
            return int((progress.findtext("worker") or ":0").rsplit(":", 1)[1])
        assert progress.findtext("state") in ("queued", "running"), progress.findtext("error")
        time.sleep(0.02)
    raise AssertionError("task never started")


def storage_entries(server: Server, login: str) -> list[str]:
    folder = server.home / "dumps" / "clients" / login
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


SLOW = {"HOSTBACKUP_ZSTD_LEVEL": "19"}  # slow compression: a backup long enough to interrupt


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "home", env=SLOW)
    yield running
    running.stop()


def test_killed_worker_fails_the_task_and_leaves_nothing(slow_server: Server) -> None:
    fresh_server = slow_server
    seeded = seed_customer(fresh_server, "victim", ("victim.test",))
    big_site(seeded.vhosts / "victim.test", 256)
    task_id = start_backup(fresh_server, packet("victim", split=1024))
    os.kill(wait_until_running(fresh_server, task_id), signal.SIGKILL)
    task = wait_for_task(fresh_server, task_id)
    assert task.findtext("status") == "failed"
    assert task.findtext("filename") == ""
    assert "died" in (progress_of(fresh_server, task_id).findtext("error") or "")
    listed = result_of(
        bm(fresh_server, "<get-local-backup-list><customer-login>victim</customer-login></get-local-backup-list>")
    )
    assert listed.findall("backup") == []
    assert storage_entries(fresh_server, "victim") == []  # no staging folder, no volume, no reservation
    # the queue goes on: the next backup succeeds on a fresh worker
    (seeded.vhosts / "victim.test" / "httpdocs").joinpath("small.txt").write_text("small")
    for path in (seeded.vhosts / "victim.test" / "httpdocs").glob("media-*"):
        path.unlink()
    retry = start_backup(fresh_server, packet("victim"))
    assert wait_for_task(fresh_server, retry).findtext("status") == "finished"
    assert len(storage_entries(fresh_server, "victim")) == 2  # the volume and its metadata


def test_restart_loses_no_queued_task_and_limits_concurrency(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", env=SLOW)
    try:
        settings = "<settings><max-backup-processes>1</max-backup-processes></settings>"
        assert (
            result_of(bm(server, f"<set-server-wide-settings>{settings}</set-server-wide-settings>")).findtext("status")
            == "ok"
        )
        seeded = seed_customer(server, "queued", ("queued.test",))
        big_site(seeded.vhosts / "queued.test", 256)
        running = start_backup(server, packet("queued"))
        waiting = start_backup(server, packet("queued"))
        wait_until_running(server, running)
        assert progress_of(server, waiting).findtext("state") == "queued"  # one slot: the second waits
        waiting_task = wait_for_task(server, waiting, timeout=0)
        assert waiting_task.findtext("status") == "working"
        server.stop()
    finally:
        server.stop()
    server = start_server(tmp_path / "home")  # default speed from here on
    try:
        interrupted = wait_for_task(server, running)
        assert interrupted.findtext("status") == "failed"
        assert "shut down" in (progress_of(server, running).findtext("error") or "")
        assert wait_for_task(server, waiting).findtext("status") == "finished"
        names = [path.name for path in (server.home / "dumps" / "clients" / "queued").iterdir()]
        assert len(names) == 2 and not any(name.startswith(".") for name in names)
    finally:
        server.stop()


def _workers(server: Server) -> list[int]:
    """The server's worker processes: its children that run `hostbackup … worker`."""
    return server_children(server, b"worker")


def _settle_at(server: Server, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(_workers(server)) != count:
        assert time.monotonic() < deadline, f"{len(_workers(server))} workers, {count} wanted"
        time.sleep(0.1)


def test_max_backup_processes_is_bounded_and_lowering_it_sheds_workers_after_their_task(slow_server: Server) -> None:
    def set_processes(value: int) -> tuple[str | None, str | None]:
        settings = f"<settings><max-backup-processes>{value}</max-backup-processes></settings>"
        result = result_of(bm(slow_server, f"<set-server-wide-settings>{settings}</set-server-wide-settings>"))
        return result.findtext("status"), result.findtext("errcode")

    assert set_processes(65) == ("error", "1019")  # each is a process: not an unbounded number
    assert set_processes(3) == ("ok", None)
    _settle_at(slow_server, 3)
    seeded = seed_customer(slow_server, "shed", ("shed.test",))
    big_site(seeded.vhosts / "shed.test", 128)
    task_id = start_backup(slow_server, packet("shed"))
    wait_until_running(slow_server, task_id)
    assert set_processes(1) == ("ok", None)
    _settle_at(slow_server, 1)  # the idle ones end at once, a busy one after its task
    assert wait_for_task(slow_server, task_id).findtext("status") == "finished"  # never cut short
    assert "exited with" not in slow_server.log.read_text(errors="replace")  # ended as asked, not died


def test_a_process_count_stored_before_the_bound_is_held_to_it() -> None:
    from hostbackup.server_settings import MAX_PROCESSES, ServerWideSettings

    assert ServerWideSettings(max_backup_processes=2147483647).processes == MAX_PROCESSES == 64
    assert ServerWideSettings(max_backup_processes=3).processes == 3
    assert 2 <= ServerWideSettings().processes <= MAX_PROCESSES  # one per core, at least 2
