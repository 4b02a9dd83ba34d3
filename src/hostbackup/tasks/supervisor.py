"""Worker processes supervised by the server: a crashing backup never takes the API down.

The supervisor keeps `max-backup-processes` children of `hostbackup worker` alive. When a
child dies abnormally, the task it held is failed at once (no need to wait for the lease to
run out) and its partial output removed; then a new child takes its place. When the setting
goes down, the newest children beyond it are asked to end after their running task (SIGUSR1,
once they are old enough to handle it).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hostbackup import server_settings
from hostbackup.db.engine import Database
from hostbackup.db.tables import Task
from hostbackup.tasks import queue
from hostbackup.tasks.worker import RETIRE_SIGNAL, worker_name

log = logging.getLogger(__name__)

#: A worker is asked to retire only this long after its start, once it handles the signal.
SETTLING_SECONDS = 5.0


class Supervisor:
    def __init__(self, db: Database, home: Path, discard: Callable[[Task], None], check_seconds: float = 0.5):
        self.db = db
        self.home = home
        self.discard = discard
        self.check_seconds = check_seconds
        self.children: list[subprocess.Popen[bytes]] = []
        self.retiring: set[int] = set()  # pids asked to end after their task
        self._born: dict[int, float] = {}  # pid → when it was started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="worker-supervisor")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for child in self.children:
            child.terminate()
        for child in self.children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "hostbackup", "--home", str(self.home), "worker", "--supervised"]
        # few malloc arenas: zstd's threads would otherwise each keep one, and RSS creeps up with them
        environment = {**os.environ, "MALLOC_ARENA_MAX": "2"}
        child = subprocess.Popen(command, env=environment)
        self.children.append(child)
        self._born[child.pid] = time.monotonic()

    def _wanted(self) -> int:
        with self.db.session() as session:
            return server_settings.load(session).processes

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._check()
            except Exception:
                log.exception("supervisor check failed")
            self._stop.wait(self.check_seconds)

    def _check(self) -> None:
        for child in [child for child in self.children if child.poll() is not None]:
            self.children.remove(child)
            retired = child.pid in self.retiring
            self.retiring.discard(child.pid)  # a later child may get the pid
            self._born.pop(child.pid, None)
            if retired and child.returncode == 0:
                continue
            log.warning("worker process %s exited with %s", child.pid, child.returncode)
            reason = f"The worker process running the task died (exit status {child.returncode})."
            for task in queue.fail_abandoned(self.db, workers=[worker_name(child.pid)], reason=reason):
                self.discard(task)
        wanted = self._wanted()
        serving = [child for child in self.children if child.pid not in self.retiring]
        for child in serving[wanted:]:
            if time.monotonic() - self._born.get(child.pid, 0.0) < SETTLING_SECONDS:
                continue  # its handler may not be installed yet: the signal's default would kill it
            child.send_signal(RETIRE_SIGNAL)
            self.retiring.add(child.pid)
        for _ in range(wanted - len(serving)):
            self._spawn()
