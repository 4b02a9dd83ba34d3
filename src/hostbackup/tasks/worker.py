"""The worker loop: claim a task, run its job under a heartbeat, record how it ended.

Jobs (`backup`, later `restore`) are looked up by the task's kind; the worker knows nothing of
what they do. A job reports progress through a callback, which is also where a stop request
reaches it: the callback raises `TaskStopped` once the heartbeat learns the task was stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hostbackup import server_settings
from hostbackup.db.engine import Database
from hostbackup.db.tables import Task
from hostbackup.tasks import queue
from hostbackup.tasks.doorbell import Doorbell
from hostbackup.tasks.task import TaskState

log = logging.getLogger(__name__)


class TaskStopped(Exception):
    """Raised inside a job when its task was stopped (stop-backup, account deleted)."""


class Interrupted(BaseException):
    """The worker is shutting down (SIGTERM): the running task fails with this text, then the loop ends.

    A BaseException, so that no `except Exception` in a job swallows it.
    """

    def __init__(self) -> None:
        super().__init__("The service was shut down while the task ran.")


Progress = Callable[..., None]


class Job(Protocol):
    def run(self, task: Task, progress: Progress) -> dict[str, Any]:
        """Do the work; return task fields to record (filename, warnings…)."""

    def discard(self, task: Task) -> None:
        """Remove whatever a failed or stopped run of `task` left behind."""


def worker_name(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass
class Heartbeat:
    """Renews a task's lease in the background and carries progress to the database."""

    db: Database
    task_id: int
    worker: str
    lease_seconds: float
    progress: dict[str, Any] = field(default_factory=dict)
    interrupted: Callable[[], bool] = lambda: False
    stopped: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)

    def report(self, **fields: Any) -> None:
        self.progress.update(fields)
        if self.stopped.is_set():
            raise TaskStopped
        if self.interrupted():
            raise Interrupted

    def beat(self) -> None:
        try:
            alive = queue.heartbeat(self.db, self.task_id, self.worker, self.lease_seconds, **self.progress)
        except Exception:  # a database hiccup must not kill the task; the next beat retries
            log.exception("heartbeat of task %s failed", self.task_id)
            return
        if not alive:
            self.stopped.set()

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{self.task_id}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(min(1.0, self.lease_seconds / 3)):
            self.beat()


#: Asks a worker process to end after its running task (`Worker.retire`): how the supervisor sheds
#: the workers beyond a lowered `max-backup-processes`.
RETIRE_SIGNAL = signal.SIGUSR1


class Worker:
    def __init__(
        self, db: Database, jobs: Mapping[str, Job], *, lease_seconds: float, name: str | None = None,
        doorbell: Doorbell | None = None,
    ):  # fmt: skip
        self.db = db
        self.jobs = jobs
        self.lease_seconds = lease_seconds
        self.name = name or worker_name()
        self.doorbell = doorbell
        self.shutting_down = False
        self.retiring = False

    def interrupt(self) -> None:
        """Ask the loop and the running job to end. Safe in a signal handler: sets a flag, takes no lock."""
        self.shutting_down = True

    def retire(self) -> None:
        """Ask the loop to end once the running task (if any) has ended. Safe in a signal handler."""
        self.retiring = True

    def reap(self) -> None:
        """Fail the tasks of dead workers and clean up after them."""
        for task in queue.fail_abandoned(self.db, reason="The worker running the task died (lease expired)."):
            self.discard(task)

    def discard(self, task: Task) -> None:
        job = self.jobs.get(task.kind)
        if job is not None:
            try:
                job.discard(task)
            except Exception:
                log.exception("cleaning up after task %s failed", task.id)

    def run_once(self) -> bool:
        """Claim and run one task; False when there was nothing to do."""
        if not queue.has_queued(self.db):
            return False
        with self.db.session() as session:
            limit = server_settings.load(session).processes
        task = queue.claim(self.db, self.name, max_running=limit, lease_seconds=self.lease_seconds)
        if task is None:
            return False
        self.execute(task)
        return True

    def execute(self, task: Task) -> None:
        job = self.jobs[task.kind]
        heartbeat = Heartbeat(self.db, task.id, self.name, self.lease_seconds, interrupted=lambda: self.shutting_down)
        try:
            with heartbeat:
                fields = job.run(task, heartbeat.report)
            heartbeat.beat()  # a stop that arrived during the last moments still wins
            if heartbeat.stopped.is_set():
                raise TaskStopped
        except TaskStopped:
            self.discard(task)
            queue.complete(self.db, task.id, self.name, TaskState.STOPPED, **heartbeat.progress)
            return
        except Exception as exc:
            self.fail(task, exc)
            return
        except BaseException as exc:  # shutdown or Ctrl-C: record why, clean up, then let it end the worker
            self.fail(task, exc)
            raise
        if not queue.complete(self.db, task.id, self.name, TaskState.FINISHED, **(heartbeat.progress | fields)):
            self.discard(task)  # reaped or stopped meanwhile: what it made must not stay listed

    def fail(self, task: Task, exc: BaseException) -> None:
        log.warning("task %s failed: %s", task.id, exc)
        self.discard(task)
        queue.complete(self.db, task.id, self.name, TaskState.FAILED, error=str(exc) or type(exc).__name__)

    def loop(self, stop: threading.Event, poll_seconds: float = 0.1) -> None:
        while not stop.is_set() and not self.shutting_down and not self.retiring:
            try:
                self.reap()
                if not self.run_once():
                    self._rest(stop, poll_seconds)
            except Exception:
                log.exception("worker loop error")
                stop.wait(poll_seconds)

    def _rest(self, stop: threading.Event, seconds: float) -> None:
        """Until the next poll, or until a newly queued task rings the doorbell."""
        if self.doorbell is None:
            stop.wait(seconds)
        else:
            self.doorbell.wait(seconds)
