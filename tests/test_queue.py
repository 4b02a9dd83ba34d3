"""The task store on both databases: atomic claims under the limit, leases, stops, reaping."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from hostbackup.db.engine import Database
from hostbackup.db.tables import Task
from hostbackup.tasks import queue
from hostbackup.tasks.doorbell import Doorbell, ring, ring_on_commit
from hostbackup.tasks.task import TargetKind, TaskRequest, TaskState
from hostbackup.tasks.worker import Worker


def add_tasks(db: Database, count: int) -> list[int]:
    with db.session() as session:
        return [queue.enqueue(session, TaskRequest(TargetKind.CUSTOMER, 2, "jdoe", 1)).id for _ in range(count)]


def state_of(db: Database, task_id: int) -> Task:
    with db.session() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task


def test_ids_ascend_and_claims_go_oldest_first(database: Database) -> None:
    ids = add_tasks(database, 3)
    assert ids == [1, 2, 3]
    claimed = queue.claim(database, "w1", max_running=5, lease_seconds=30)
    assert claimed is not None and claimed.id == 1 and claimed.state == TaskState.RUNNING.value


def test_concurrent_claims_respect_the_limit_and_never_share_a_task(database: Database) -> None:
    add_tasks(database, 12)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        for _ in range(6):
            task = queue.claim(database, name, max_running=3, lease_seconds=30)
            if task is not None:
                with lock:
                    claimed.append(task.id)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 3 and len(set(claimed)) == 3


def test_heartbeat_reports_a_stop_and_complete_only_by_the_owner(database: Database) -> None:
    [task_id] = add_tasks(database, 1)
    task = queue.claim(database, "w1", max_running=1, lease_seconds=30)
    assert task is not None
    assert queue.heartbeat(database, task_id, "w1", 30, bytes_done=5)
    assert not queue.heartbeat(database, task_id, "intruder", 30)
    with database.session() as session:
        record = session.get(Task, task_id)
        assert record is not None
        queue.request_stop(session, record)
    assert not queue.heartbeat(database, task_id, "w1", 30)
    assert not queue.complete(database, task_id, "intruder", TaskState.FINISHED)
    assert queue.complete(database, task_id, "w1", TaskState.STOPPED)
    assert state_of(database, task_id).state == TaskState.STOPPED.value
    assert state_of(database, task_id).bytes_done == 5


def test_stopping_a_queued_task_is_immediate(database: Database) -> None:
    [task_id] = add_tasks(database, 1)
    with database.session() as session:
        record = session.get(Task, task_id)
        assert record is not None
        queue.request_stop(session, record)
    assert state_of(database, task_id).state == TaskState.STOPPED.value
    assert queue.claim(database, "w1", max_running=1, lease_seconds=30) is None


def test_expired_leases_and_dead_workers_are_failed(database: Database) -> None:
    first, second = add_tasks(database, 2)
    queue.claim(database, "gone", max_running=2, lease_seconds=0.01)
    queue.claim(database, "crashed", max_running=2, lease_seconds=60)
    time.sleep(0.05)
    reaped = queue.fail_abandoned(database, reason="lease expired")
    assert [task.id for task in reaped] == [first]
    reaped = queue.fail_abandoned(database, workers=["crashed"], reason="worker died")
    assert [task.id for task in reaped] == [second]
    assert state_of(database, second).error == "worker died"


class RecordingJob:
    def __init__(self, fail: bool = False, stop_after: int | None = None) -> None:
        self.fail, self.stop_after = fail, stop_after
        self.discarded: list[int] = []

    def run(self, task: Task, progress: Any) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("disk on fire")
        for step in range(50):
            progress(bytes_done=step)
            time.sleep(0.05)
        return {"filename": "backup_1.tar.zst"}

    def discard(self, task: Task) -> None:
        self.discarded.append(task.id)


def test_worker_records_success_failure_and_stop(database: Database) -> None:
    ok_id, failing_id = add_tasks(database, 2)
    Worker(database, {"backup": RecordingJob()}, lease_seconds=3, name="w").run_once()
    assert state_of(database, ok_id).state == TaskState.FINISHED.value
    assert state_of(database, ok_id).filename == "backup_1.tar.zst"
    job = RecordingJob(fail=True)
    Worker(database, {"backup": job}, lease_seconds=3, name="w").run_once()
    assert state_of(database, failing_id).state == TaskState.FAILED.value
    assert state_of(database, failing_id).error == "disk on fire"
    assert job.discarded == [failing_id]
    [stop_id] = add_tasks(database, 1)
    stopper = RecordingJob()
    worker = Worker(database, {"backup": stopper}, lease_seconds=0.6, name="w")
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    time.sleep(0.3)
    with database.session() as session:
        record = session.get(Task, stop_id)
        assert record is not None
        queue.request_stop(session, record)
    thread.join(10)
    assert state_of(database, stop_id).state == TaskState.STOPPED.value
    assert stopper.discarded == [stop_id]


class _WatchedDoorbell(Doorbell):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.resting = threading.Event()

    def wait(self, seconds: float) -> bool:
        self.resting.set()
        return super().wait(seconds)


def test_a_queued_task_wakes_an_idle_worker_at_once(database: Database, tmp_path: Path) -> None:
    """The worker below polls once an hour: only the doorbell can start the task within the test."""
    path = tmp_path / "doorbell"
    ring_on_commit(database, path)
    bell = _WatchedDoorbell(path)
    worker = Worker(database, {"backup": RecordingJob()}, lease_seconds=3, name="w", doorbell=bell)
    stop = threading.Event()
    thread = threading.Thread(target=worker.loop, args=(stop, 3600.0), daemon=True)
    thread.start()
    try:
        assert bell.resting.wait(30), "the worker never went idle"
        [task_id] = add_tasks(database, 1)
        deadline = time.monotonic() + 60
        while state_of(database, task_id).state != TaskState.FINISHED.value and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state_of(database, task_id).state == TaskState.FINISHED.value
    finally:
        stop.set()
        ring(path)  # so that the loop sees the stop now, not in an hour
        thread.join(30)
        bell.close()
    assert not thread.is_alive()


def test_the_doorbell_is_best_effort(tmp_path: Path) -> None:
    path = tmp_path / "doorbell"
    ring(path)  # no FIFO yet: nothing happens
    bell = Doorbell(path)
    assert not bell.wait(0.01)
    for _ in range(70_000):  # more rings than the FIFO holds: the extra ones are dropped, none blocks
        ring(path)
    assert bell.wait(0) and bell.wait(0)  # pending rings, taken in batches
    bell.close()
    ring(path)  # nobody listening (ENXIO): nothing happens
    (tmp_path / "file").write_text("not a fifo")
    assert Doorbell.open(tmp_path / "file") is None  # the worker then polls, as before


def test_a_task_claimed_at_enqueue_is_never_offered_to_other_workers(database: Database) -> None:
    """The CLI runs its own task: no idle worker, woken by the doorbell, may take it first."""
    with database.session() as session:
        task = queue.enqueue_claimed(session, TaskRequest(TargetKind.CUSTOMER, 2, "jdoe", 1), "cli", lease_seconds=30)
    assert not queue.has_queued(database)
    assert queue.claim(database, "other", max_running=None, lease_seconds=3) is None
    mine = state_of(database, task.id)
    assert (mine.state, mine.worker) == (TaskState.RUNNING.value, "cli")
    assert queue.heartbeat(database, task.id, "cli", 30)  # its lease is its own to renew
