"""The durable queue: task rows in the database, claimed atomically by workers holding leases.

A worker claims the oldest queued task only while fewer than `max_running` tasks run (the
server-wide `max-backup-processes`); the claim and the limit check are one atomic step
(SQLite serialises writers; PostgreSQL takes a transaction-scoped advisory lock and uses
`FOR UPDATE SKIP LOCKED`). A worker renews its lease with heartbeats; a task whose lease ran
out belongs to a dead worker and is failed by whoever notices first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from hostbackup.db.engine import Database
from hostbackup.db.tables import Task
from hostbackup.tasks import doorbell
from hostbackup.tasks.task import ACTIVE_STATES, TaskRequest, TaskState

CLAIM_LOCK = 7_474_201  # advisory lock id for claims on PostgreSQL


def enqueue(session: Session, request: TaskRequest) -> Task:
    task = _add(session, request, TaskState.QUEUED)
    session.info[doorbell.QUEUED] = True  # idle workers are woken once this commits
    return task


def enqueue_claimed(session: Session, request: TaskRequest, worker: str, *, lease_seconds: float) -> Task:
    """Record `request` as already claimed by `worker`, for a process that runs the task itself (the
    CLI): it is never queued, so no other worker can take it first."""
    now = time.time()
    return _add(session, request, TaskState.RUNNING, worker=worker, started_at=now, lease_until=now + lease_seconds)


def _add(session: Session, request: TaskRequest, state: TaskState, **claim: object) -> Task:
    task = Task(
        kind=request.kind,
        target_kind=request.target_kind.value,
        target_id=request.target_id,
        target_name=request.target_name,
        requested_by=request.requested_by,
        state=state.value,
        protocol=request.protocol,
        prefix=request.prefix,
        description=request.description,
        options=dict(request.options),
        created=time.time(),
        **claim,
    )
    session.add(task)
    session.flush()
    return task


def claim(
    db: Database, worker: str, *, max_running: int | None, lease_seconds: float, task_id: int | None = None
) -> Task | None:
    """Atomically move the oldest queued task (or `task_id`) to `running` for `worker`, within the limit."""
    now = time.time()
    with db.session() as session:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": CLAIM_LOCK})
        else:  # take SQLite's write lock before reading, so the count below cannot go stale
            session.execute(update(Task).where(Task.id == -1).values(state=Task.state))
        running = session.scalar(select(func.count()).where(Task.state == TaskState.RUNNING.value)) or 0
        if max_running is not None and running >= max_running:
            return None
        query = select(Task).where(Task.state == TaskState.QUEUED.value).order_by(Task.id).limit(1)
        if task_id is not None:
            query = query.where(Task.id == task_id)
        task = session.scalar(query.with_for_update(skip_locked=True))
        if task is None:
            return None
        task.state = TaskState.RUNNING.value
        task.worker = worker
        task.started_at = now
        task.lease_until = now + lease_seconds
        return task


def has_queued(db: Database) -> bool:
    """A cheap read, so that idle workers poll without taking the write lock of a claim."""
    with db.session() as session:
        return session.scalar(select(Task.id).where(Task.state == TaskState.QUEUED.value).limit(1)) is not None


def heartbeat(db: Database, task_id: int, worker: str, lease_seconds: float, **progress: object) -> bool:
    """Renew the lease and store progress; False when the task was stopped or taken away."""
    with db.session() as session:
        task = session.get(Task, task_id)
        if task is None or task.worker != worker or task.state != TaskState.RUNNING.value:
            return False
        task.lease_until = time.time() + lease_seconds
        for name, value in progress.items():
            setattr(task, name, value)
        return not task.cancel_requested


def complete(db: Database, task_id: int, worker: str, state: TaskState, **fields: object) -> bool:
    """End a running task; False if it no longer belongs to `worker` (stopped, reaped)."""
    with db.session() as session:
        task = session.get(Task, task_id)
        if task is None or task.worker != worker or task.state != TaskState.RUNNING.value:
            return False
        task.state = state.value
        task.finished_at = time.time()
        task.lease_until = None
        for name, value in fields.items():
            setattr(task, name, value)
        return True


def fail_abandoned(db: Database, *, workers: Sequence[str] = (), reason: str) -> list[Task]:
    """Fail running tasks whose lease expired, or that belong to `workers` known to be dead."""
    now = time.time()
    with db.session() as session:
        condition = Task.lease_until < now
        if workers:
            condition = condition | Task.worker.in_(list(workers))
        query = select(Task).where(Task.state == TaskState.RUNNING.value, condition).with_for_update(skip_locked=True)
        abandoned = list(session.scalars(query))
        for task in abandoned:
            task.state = TaskState.FAILED.value
            task.finished_at = now
            task.lease_until = None
            task.error = reason
        return abandoned


def request_stop(session: Session, task: Task) -> None:
    """Stop a task: a queued one at once, a running one when its worker next beats."""
    task.cancel_requested = True
    if task.state == TaskState.QUEUED.value:
        task.state = TaskState.STOPPED.value
        task.finished_at = time.time()


def stop_tasks_of(session: Session, target_kind: str, target_ids: list[int]) -> None:
    """Stop the active tasks of deleted accounts (spec §5.0: deletion cascades)."""
    if not target_ids:
        return
    tasks = session.scalars(
        select(Task).where(
            Task.target_kind == target_kind, Task.target_id.in_(target_ids), Task.state.in_(ACTIVE_STATES)
        )
    )
    for task in tasks:
        request_stop(session, task)
