"""hostbackup against its peers on one generated hosting corpus: backup and restore throughput, peak RSS,
bytes written, and XML API load, measured side by side in one run.

Usage::

    .venv/bin/python bench/run.py --small            # ~100 MB corpus, 1 run each: a few minutes
    .venv/bin/python bench/run.py                    # ~1 GiB corpus, median of 3 runs
    .venv/bin/python bench/run.py --size-mb 4096 --only hostbackup --runs 1   # memory at 4 GiB
    .venv/bin/python bench/run.py --small --json > result.json
    .venv/bin/python bench/run.py --small --profile  # also py-spy the worker during one backup and restore

What is measured, on the content of one customer (``bench/corpus.py``):

* backup: hostbackup driven end to end through the XML API over HTTPS (``backup-customer`` → task
  ``finished``; ``hostbackup serve`` runs as a subprocess on a temporary home, local storage, default
  settings), with one volume and with 100 MiB volumes; ``tar -cf - … | zstd -3 -T0`` and the same piped
  to ``split -b 100M``; ``restic backup`` (fresh repository); ``borg create`` (fresh repository,
  ``--encryption=none``) with ``lz4`` and ``zstd,3``. hostbackup fsyncs its volumes, restic and borg
  fsync their repositories, so the tar pipelines end with ``sync FILE`` to be comparable. The
  customer's databases (a tenth of the corpus by default, in private MariaDB and PostgreSQL servers
  started for the run) are dumped by hostbackup into the archive; the peers' commands first run the
  same dump commands into a folder they then back up, as a script around them would.
* restore: ``hostbackup restore`` over the XML API (``x-backup-manager`` → task ``finished``) and as
  a CLI command, and the stock-tool restore of hostbackup's volumes (``zstd -d | tar -x``), against
  ``zstd -d | tar -x`` of the tar.zst, ``restic restore`` and ``borg extract``, all into tmpfs;
  plus hostbackup's own archive verification (``restore.reader.check_archive``).
* API: packets per second and p50/p99 latency of ``get-tasks-info`` and of ``backup-customer`` with
  ``<only-configuration/>``, from ``bench/loadgen.py`` (16 keep-alive HTTPS connections by default),
  while idle and while full backups run back to back.

Every timing is the median of ``--runs`` runs (interleaved, so background load hits all tools alike;
the page cache is warmed before every step: borg drops it for what it reads; the restore target by
three untimed extractions, and hostbackup's bytecode is compiled first). Peak RSS is VmHWM of
the worker process for hostbackup (reset before each run) and ``ru_maxrss`` of the largest process
of the pipeline for the peers; CPU seconds count all processes and threads. "cores busy" is the whole
machine's CPU time during a run (every process, the database servers', hostbackup's API answering
the bench's polls) over its wall time: near ``nproc``, a tool can only get faster by doing less
work. Ratios are throughput ratios: ``2.0 ×restic`` means twice restic's speed.

restic and borg must be installed (``apt-get install restic borgbackup``); without them their rows
are skipped with that hint. Everything lives in one temporary directory removed at the end
(``--keep`` keeps it), the server and every child process is stopped, every loop is bounded.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ADMIN_PASSWORD, CUSTOMER_PASSWORD, DEFAULT_BYTES, SMALL_BYTES, Corpus, build_corpus

import hostbackup
from hostbackup.accounts.databases import ServerAccess
from hostbackup.backup.sources.dump import DumpSource
from hostbackup.backup.sources.mysql import mysql_source
from hostbackup.backup.sources.postgres import postgres_source

DUMPS = "database-dumps"  # below the home: where the peers' scripts dump the databases before backing up

MiB = 1024 * 1024
MB = 1000 * 1000
BENCH = Path(__file__).resolve().parent
ENDPOINT = "/enterprise/control/agent.php"
STEP_TIMEOUT = 3600.0  # no single command may run longer than this
SETTLE_SECONDS = 3.0
RESTORE_WARMUPS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
GROUPS = ("hostbackup", "tar", "restic", "borg", "restore", "api")

_children: set[subprocess.Popen[bytes]] = set()
_Step = TypeVar("_Step")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def compile_bytecode() -> None:
    """Compile hostbackup's modules, as a pip or Debian install has them compiled.

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 (as on the machines these tables come
    from) never keeps its bytecode, and so compiled about 60 modules on every start: 0.06 s of each
    CLI command, measured as if it were hostbackup's."""
    if not compileall.compile_dir(Path(hostbackup.__file__).parent, quiet=1):
        raise SystemExit("could not compile hostbackup's modules")


# --- measurements --------------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_kib: int
    written: int
    machine_cpu: float = 0.0  # every process on the machine (database servers too); 0: not measured


@dataclass
class Row:
    key: str
    label: str
    kind: str  # "backup" or "restore"
    samples: list[Sample] = field(default_factory=list)
    note: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples) if self.samples else math.nan

    @property
    def best_wall(self) -> float:
        """The fastest run: on a noisy VM the least disturbed one, the same rule for every tool."""
        return min(s.wall for s in self.samples) if self.samples else math.nan

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples) if self.samples else math.nan

    @property
    def cores_busy(self) -> float:
        """How many of the machine's cores the run kept busy on average (every process, the database
        servers included): near `nproc`, a tool can only get faster by doing less work."""
        busy = [s.machine_cpu / s.wall for s in self.samples if s.machine_cpu]
        return statistics.median(busy) if busy else math.nan

    @property
    def rss_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024 if self.samples else math.nan

    @property
    def written(self) -> float:
        return statistics.median(s.written for s in self.samples) if self.samples else math.nan


@dataclass
class Result:
    machine: dict[str, Any]
    corpus: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    api: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.key == key and row.samples), None)


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle, iowait and steal)."""
    with open("/proc/stat") as stat_file:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, stat_file.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


def run_measured(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = STEP_TIMEOUT
) -> Sample:
    """Run a command to completion: wall seconds, CPU seconds and max RSS (KiB) of it and its children,
    and the machine's CPU seconds meanwhile (`written` is left 0)."""
    os.sync()  # no step pays for the dirty pages of the one before
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as rss_file:
        # ru_maxrss of a direct child would include this (large) process's RSS at fork time, so
        # /usr/bin/time (small) forks the command and reports the largest descendant's max RSS
        wrapped = [TIME, "-f", "%M", "-o", rss_file.name, *argv]
        machine_before = machine_cpu()
        start = time.perf_counter()
        process = subprocess.Popen(
            wrapped, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
        _children.add(process)
        timer = threading.Timer(timeout, _kill_group, (process,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            _children.discard(process)
        wall = time.perf_counter() - start
        machine = machine_cpu() - machine_before
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{shlex.join(argv)} failed ({process.returncode}):\n{errors.read()[-2000:].decode()}")
        rss = int(rss_file.read().split()[-1])
    return Sample(wall, usage.ru_utime + usage.ru_stime, rss, 0, machine)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def shell(command: str) -> list[str]:
    return ["bash", "-o", "pipefail", "-c", command]


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for directory, _, names in os.walk(path):
        total += sum(os.lstat(os.path.join(directory, name)).st_size for name in names)
    return total


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads) and of its children it has waited for
    (the `zstd -d` a restore runs, the `du` of an estimate)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(field) for field in fields[11:15]) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- the hostbackup server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`hostbackup serve` over HTTPS on a temporary home, with a small XML client."""

    def __init__(self, home: Path, log_path: Path) -> None:
        self.home = home
        self.port = free_port()
        self.log_path = log_path
        env = {**os.environ, "HOSTBACKUP_ADMIN_PASSWORD": ADMIN_PASSWORD}
        args = [sys.executable, "-m", "hostbackup", "--home", str(home), "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--log-level", "warning"]
        with log_path.open("wb") as output:
            self.process = subprocess.Popen(
                args, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        _children.add(self.process)
        self.client = httpx.Client(verify=False, timeout=60)
        self.url = f"https://127.0.0.1:{self.port}{ENDPOINT}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log_path.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not listen:\n{log_path.read_text(errors='replace')}")
        for _ in range(100):  # the supervisor starts its workers right after the lifespan begins
            if self.workers():
                break
            time.sleep(0.1)

    def workers(self) -> list[int]:
        """Worker processes: children of the server running `hostbackup … worker`."""
        return self._children(worker=True)

    def api_processes(self) -> list[int]:
        """The processes answering HTTP: uvicorn's children, or the server itself when it has none."""
        return self._children(worker=False) or [self.process.pid]

    def _children(self, *, worker: bool) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                is_worker = b"worker" in (entry / "cmdline").read_bytes()
                if ppid == self.process.pid and is_worker == worker:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
        return found

    def call(self, operations: str, operator: str = "backup-manager") -> etree._Element:
        body = f"<packet><{operator}>{operations}</{operator}></packet>"
        headers = {"Content-Type": "text/xml", "HTTP_AUTH_LOGIN": "admin", "HTTP_AUTH_PASSWD": ADMIN_PASSWORD}
        response = self.client.post(self.url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
        root = etree.fromstring(response.content)
        result = root.find(f"{operator}/*/result")
        if result is None or result.findtext("status") != "ok":
            raise RuntimeError(f"API error: {response.text[:1000]}")
        return result

    def start_backup(self, login: str, split_kib: int = 0, extra: str = "") -> int:
        packet = backup_packet(login, split_kib, extra)
        return int(self.call(packet).findtext("task-id") or 0)

    def task(self, task_id: int) -> etree._Element:
        task = self.call(f"<get-tasks-info><task-id>{task_id}</task-id></get-tasks-info>").find("task")
        assert task is not None
        return task

    def wait_task(self, task_id: int, timeout: float = STEP_TIMEOUT, poll: float = 0.05) -> etree._Element:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            status = task.findtext("status")
            if status != "working":
                if status != "finished":
                    raise RuntimeError(f"task {task_id} ended {status}: {etree.tostring(task).decode()}")
                return task
            time.sleep(poll)
        raise TimeoutError(f"task {task_id} still working after {timeout:.0f} s")

    def wait_idle(self, login: str, timeout: float = 600) -> None:
        """Until no task of the customer is working (drains queued configuration-only backups)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.call(f"<get-tasks-info><customer-login>{login}</customer-login></get-tasks-info>")
            if all(task.findtext("status") != "working" for task in tasks.iter("task")):
                return
            time.sleep(0.5)
        raise TimeoutError(f"tasks of {login} still working after {timeout:.0f} s")

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        _kill_group(self.process)  # workers share the server's process group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        _children.discard(self.process)


def backup_packet(login: str, split_kib: int = 0, extra: str = "") -> str:
    return (
        f"<backup-customer><customer-login>{login}</customer-login><local/><description>bench</description>"
        f"<split-size>{split_kib}</split-size>{extra}</backup-customer>"
    )


def measured_task(server: Server, start: Callable[[], int]) -> tuple[etree._Element, Sample]:
    """Start a task (`start` returns its id) and wait for its end: wall seconds, the workers' CPU
    seconds and peak RSS, and the machine's CPU seconds meanwhile (`written` is left 0)."""
    workers = server.workers()
    for pid in workers:
        reset_peak_rss(pid)
    cpu_before = {pid: proc_cpu(pid) for pid in workers}
    machine_before = machine_cpu()
    started = time.perf_counter()
    task = server.wait_task(start())
    wall = time.perf_counter() - started
    machine = machine_cpu() - machine_before
    cpu = sum(proc_cpu(pid) - before for pid, before in cpu_before.items())
    rss = max((proc_status_kib(pid, "VmHWM") for pid in workers), default=0)
    return task, Sample(wall, cpu, rss, 0, machine)


def hostbackup_backup(server: Server, login: str, split_kib: int, keep: Path) -> Sample:
    """One backup through the API; its volumes are moved to `keep` (for the restore measurements)."""
    os.sync()
    task, sample = measured_task(server, lambda: server.start_backup(login, split_kib))
    first = task.findtext("filename") or ""
    base = first[: -len(".001")] if split_kib else first
    folder = server.home / "dumps" / "clients" / login
    volumes = [p for p in folder.iterdir() if p.name == base or (split_kib and p.name.startswith(base + "."))]
    volumes = [p for p in volumes if not p.name.endswith(".meta.json")]
    sample.written = sum(p.stat().st_size for p in volumes)
    fresh_dir(keep)
    for path in volumes:
        path.rename(keep / path.name)
    (folder / f"{base}.meta.json").rename(keep / f"{base}.meta.json")  # for `hostbackup restore`
    return sample


def hostbackup_restore(server: Server, login: str, name: str, dest: Path) -> Sample:
    """One restore through the API into <home>/restores/…/bench (a link to `dest`)."""
    packet = (
        f"<restore><customer-login>{login}</customer-login><filename>{name}</filename>"
        "<target-directory>bench</target-directory></restore>"
    )
    _, sample = measured_task(
        server, lambda: int(server.call(packet, operator="x-backup-manager").findtext("task-id") or 0)
    )
    sample.written = tree_bytes(dest)
    return sample


def rotated(steps: list[_Step], run: int) -> list[_Step]:
    """`steps` starting at a different one each run, so that order effects average out."""
    shift = run % len(steps) if steps else 0
    return steps[shift:] + steps[:shift]


def settle(inputs: list[Path], previous: float = 0.0) -> None:
    """Warm the page cache with what the next step reads, then let the disk and the CPUs calm down.

    borg drops the page cache of every file it reads (``posix_fadvise(DONTNEED)``), so whatever
    ran after it read the corpus from disk: tar | zstd took 8-10 s instead of 3 s, a third of
    it waiting for the disk. A long step is followed by a longer pause (half its time, ≤ 15 s).
    """
    warm(inputs)
    os.sync()
    time.sleep(max(SETTLE_SECONDS, min(15.0, previous / 2)))


def evict(top: Path) -> None:
    """Drop what a step wrote from the page cache (`os.sync` first: only clean pages are dropped).

    Steps that ran while the outputs of the earlier ones piled up in the cache were 25-40 % slower,
    with more CPU time for the same work (tar | zstd 3.0-3.3 s instead of 2.3-2.6 s, hostbackup
    3.6-4.1 s instead of 2.6-2.9 s, reproduced outside the bench), most likely because in this VM
    a page the guest has not used before costs a fault in the host. Evicted, the next step reuses
    those pages, as it would on a server at steady state.
    """
    os.sync()
    for directory, _, names in os.walk(top):
        for name in names:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def warm(paths: list[Path]) -> None:
    """Read every file below `paths` once, so that it is in the page cache."""
    buffer = bytearray(1 << 20)
    for top in paths:
        for directory, _, names in os.walk(top):
            for name in names:
                with contextlib.suppress(OSError), open(os.path.join(directory, name), "rb", buffering=0) as file:
                    while file.readinto(buffer):
                        pass


def restore_env() -> dict[str, str]:
    return {**os.environ, "HOSTBACKUP_ADMIN_PASSWORD": "bench-Admin-1"}


def ordered_volumes(folder: Path) -> list[Path]:
    def number(path: Path) -> int:
        suffix = path.name.rsplit(".", 1)[-1]
        return int(suffix) if suffix.isdigit() else 0

    return sorted((path for path in folder.iterdir() if not path.name.endswith(".meta.json")), key=number)


# --- peers ---------------------------------------------------------------------------------------


def database_servers(stack: contextlib.ExitStack) -> list[ServerAccess]:
    """Private MariaDB and PostgreSQL servers for the corpus's databases, started (and stopped by
    `stack`) as the tests start them: their own data directories, loopback, password logins."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dbservers import mariadb_server, postgres_password_server

    log("starting MariaDB and PostgreSQL for the corpus's databases (--db-mb 0 leaves them out) …")
    handles = [stack.enter_context(mariadb_server()), stack.enter_context(postgres_password_server())]
    return [ServerAccess(handle.type, handle.host, handle.port, handle.admin, handle.password) for handle in handles]


def peer_env(scratch: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RESTIC_PASSWORD": "bench-restic",
        "RESTIC_CACHE_DIR": str(scratch / "restic-cache"),
        "BORG_BASE_DIR": str(scratch / "borg-base"),
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    }


def measure_command(argv: Sequence[str], output: Path, **kwargs: Any) -> Sample:
    sample = run_measured(argv, **kwargs)
    sample.written = tree_bytes(output)
    return sample


@dataclass
class Bench:
    args: argparse.Namespace
    scratch: Path
    corpus: Corpus
    result: Result
    server: Server | None = None
    have: dict[str, bool] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.corpus.home

    @property
    def login(self) -> str:
        return self.corpus.customers[0].login

    @property
    def paths(self) -> list[str]:
        return self.corpus.customers[0].paths()

    @property
    def out(self) -> Path:
        return self.scratch / "out"

    @property
    def databases(self) -> list[tuple[ServerAccess, str]]:
        return self.corpus.customers[0].databases()

    @property
    def peer_paths(self) -> list[str]:
        """What the peers back up: the customer's content and the dumps of its databases (`dump_databases`)."""
        return self.paths + ([DUMPS] if self.databases else [])

    def dump_sources(self) -> list[DumpSource]:
        """The customer's databases as hostbackup dumps them: the same tools, options and servers."""
        return [(postgres_source if server.type == "postgresql" else mysql_source)("", name, server)
                for server, name in self.databases]  # fmt: skip

    def dump_databases(self) -> str:
        """Shell commands that dump the customer's databases into <home>/DUMPS with hostbackup's dump
        commands, as a script around tar, restic or borg does first ("" without databases)."""
        if not self.databases:
            return ""
        folder = shlex.quote(str(self.home / DUMPS))
        commands = [f"mkdir -p {folder}"]
        for source in self.dump_sources():
            commands.append(f"{shlex.join(source.command)} > {folder}/{shlex.quote(source.database)}.sql")
        return " && ".join(commands) + " && "

    def database_env(self) -> dict[str, str]:
        """The administrators' passwords for the dump tools (PGPASSWORD, MYSQL_PWD)."""
        return {key: value for source in self.dump_sources() for key, value in source.access.environment().items()}

    def wanted(self, group: str) -> bool:
        return group in self.args.only

    def add(self, key: str, label: str, kind: str, sample: Sample | None = None, note: str = "") -> Row:
        row = next((row for row in self.result.rows if row.key == key), None)
        if row is None:
            row = Row(key, label, kind, note=note)
            self.result.rows.append(row)
        if sample is not None:
            row.samples.append(sample)
            busy = f", machine {sample.machine_cpu / sample.wall:.2f} cores busy" if sample.machine_cpu else ""
            log(f"  {label}: {sample.wall:.2f} s, CPU {sample.cpu:.1f} s{busy}, RSS {sample.rss_kib / 1024:.0f} MiB")
        return row

    # -- backups --

    def warm_up(self) -> None:
        """Two untimed full backups at once, so each worker process has run one (imports, caches)."""
        server = self.server
        assert server is not None
        start = time.perf_counter()
        tasks = [server.start_backup(self.login), server.start_backup(self.login)]
        for task_id in tasks:
            server.wait_task(task_id)
        self.result.api["cold_warm_up_seconds"] = round(time.perf_counter() - start, 2)
        self.clear_dumps()
        idle = [proc_status_kib(pid, "VmRSS") / 1024 for pid in server.workers()]
        self.result.machine["worker_idle_rss_mib"] = round(max(idle, default=0), 1)

    def backups(self) -> None:
        for run in range(self.args.runs):
            log(f"backup run {run + 1}/{self.args.runs}")
            previous = 0.0
            for step in rotated(self.backup_steps(), run):
                settle([self.home / path for path in self.paths], previous)
                started = time.perf_counter()
                step()
                previous = time.perf_counter() - started
                shutil.rmtree(self.home / DUMPS, ignore_errors=True)  # a peer's database dumps
                evict(self.out)

    def backup_steps(self) -> list[Callable[[], None]]:
        """The backup measurements; `backups` rotates their order from run to run."""
        env = {**peer_env(self.scratch), **self.database_env()}
        paths = " ".join(shlex.quote(p) for p in self.peer_paths)
        home = shlex.quote(str(self.home))
        dump = self.dump_databases()
        steps: list[Callable[[], None]] = []

        def tar() -> None:
            target = self.out / "tar" / "backup.tar.zst"
            fresh_dir(target.parent)
            command = f"{dump}tar -cf - -C {home} {paths} | zstd -3 -T0 -q -o {target} && sync {target}"
            self.add("tar", "tar | zstd -3 -T0", "backup", measure_command(shell(command), target, env=env))

        def tar_split() -> None:
            target = fresh_dir(self.out / "tar-split")
            split = f"split -b {self.args.split_mib}M - {target}/backup.tar.zst."
            command = f"{dump}tar -cf - -C {home} {paths} | zstd -3 -T0 -q | {split} && sync {target}/*"
            label = f"tar | zstd -3 -T0 | split -b {self.args.split_mib}M"
            self.add("tar-split", label, "backup", measure_command(shell(command), target, env=env))

        def hostbackup() -> None:
            assert self.server is not None
            sample = hostbackup_backup(self.server, self.login, 0, self.out / "hb")
            self.add("hostbackup", "hostbackup (XML API, 1 volume)", "backup", sample)

        def hostbackup_split() -> None:
            assert self.server is not None
            sample = hostbackup_backup(self.server, self.login, self.args.split_mib * 1024, self.out / "hb-split")
            self.add("hostbackup-split", f"hostbackup (XML API, {self.args.split_mib} MiB volumes)", "backup", sample)

        def restic() -> None:
            repo = self.out / "restic"
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(self.scratch / "restic-cache", ignore_errors=True)
            run_measured(["restic", "-r", str(repo), "init", "--quiet"], env=env)
            command = dump + shlex.join(["restic", "-r", str(repo), "backup", "--quiet", *self.peer_paths])
            sample = measure_command(shell(command), repo, cwd=self.home, env=env)
            self.add("restic", "restic backup", "backup", sample)

        def borg(key: str, compression: str) -> Callable[[], None]:
            def step() -> None:
                repo = self.out / key
                shutil.rmtree(repo, ignore_errors=True)
                shutil.rmtree(self.scratch / "borg-base", ignore_errors=True)
                run_measured(["borg", "init", "--encryption=none", str(repo)], env=env)
                argv = ["borg", "create", "--compression", compression, f"{repo}::bench", *self.peer_paths]
                sample = measure_command(shell(dump + shlex.join(argv)), repo, cwd=self.home, env=env)
                self.add(key, f"borg create --compression {compression}", "backup", sample)

            return step

        if self.wanted("tar"):
            steps += [tar, tar_split]
        if self.wanted("hostbackup") and self.server is not None:
            steps += [hostbackup, hostbackup_split]
        if self.wanted("restic") and self.have.get("restic"):
            steps.append(restic)
        if self.wanted("borg") and self.have.get("borg"):
            steps += [borg("borg-lz4", "lz4"), borg("borg-zstd", "zstd,3")]
        return steps

    # -- restores --

    def restores(self) -> None:
        base = self.args.restore_dir
        if base is None:  # tmpfs: measure the tools, not how the disk copes with trees deleted a moment ago
            shm = Path("/dev/shm")
            fits = shm.is_dir() and shutil.disk_usage(shm).free > 3 * self.corpus.bytes
            base = shm if fits else self.scratch
        holder = Path(tempfile.mkdtemp(prefix="hostbackup-bench-restore-", dir=base))
        self.result.corpus["restore_target"] = str(base)
        try:
            if self.wanted("hostbackup") and (self.out / "hb").exists():
                self.server = self.restore_server()
            self._restores(holder / "restore")
            if self.args.profile and self.server is not None:
                log("profiling one restore with py-spy")
                self.profile_restore(holder / "restore")
        finally:
            if self.server is not None:
                self.server.stop()
                self.server = None
            shutil.rmtree(holder, ignore_errors=True)

    def restore_server(self) -> Server:
        """A server whose customer storage holds the kept single-volume backup again (hard links), and
        nothing else: a configuration-only backup of the API load or the profile, made in the same
        minute, would have its name and be restored instead."""
        self.clear_dumps()
        folder = self.home / "dumps" / "clients" / self.login
        folder.mkdir(parents=True, exist_ok=True)
        for path in (self.out / "hb").iterdir():
            os.link(path, folder / path.name)
        return Server(self.home, self.scratch / "server-restore.log")

    def _warm_restore_target(self, dest: Path) -> None:
        """Extract the tar | zstd archive a few times, untimed, before the restores are measured.

        In the runs of 2026-11-27 every restore of the first round took 1.5-2.5× as long as the same
        restore two rounds later, with as much more CPU time (`zstd -d | tar -x` 4.93, 2.78,
        1.91 s): in this VM, memory the guest has not written for a while costs a fault in the host
        (see `evict`). The rounds rotate the order, but the first one still weighed on whichever
        tools it held."""
        archive = self.out / "tar" / "backup.tar.zst"
        if not archive.exists():
            return
        log(f"warming the restore target ({RESTORE_WARMUPS} untimed extractions)")
        for _ in range(RESTORE_WARMUPS):
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()
            run_measured(shell(f"zstd -d -q -c {shlex.quote(str(archive))} | tar -x -f - -C {shlex.quote(str(dest))}"))

    def _restores(self, dest: Path) -> None:
        self._warm_restore_target(dest)
        for run in range(self.args.runs):
            log(f"restore run {run + 1}/{self.args.runs}")
            previous = 0.0
            for step in rotated(self.restore_steps(), run):
                shutil.rmtree(dest, ignore_errors=True)  # the last restore goes before the next timing
                settle([self.out], previous)  # every tool's backup: cheap once they are cached
                dest.mkdir()
                started = time.perf_counter()
                step(dest)
                previous = time.perf_counter() - started
        shutil.rmtree(dest, ignore_errors=True)

    def api_restore(self, dest: Path) -> Sample:
        """x-backup-manager restore into a target directory, request → task finished (like the backups)."""
        assert self.server is not None
        link = self.home / "restores" / "clients" / self.login / "bench"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(dest)  # the API confines targets to <home>/restores: point it at the tmpfs
        return hostbackup_restore(self.server, self.login, self.kept_backup_name(), dest)

    def kept_backup_name(self) -> str:
        """The name of the single-volume backup kept for the restores (its metadata file's, less the suffix)."""
        meta = next(path.name for path in (self.out / "hb").iterdir() if path.name.endswith(".meta.json"))
        return meta.removesuffix(".meta.json")

    def restore_steps(self) -> list[Callable[[Path], None]]:
        """The restore measurements; `_restores` rotates their order from run to run."""
        env = peer_env(self.scratch)
        hb, hb_split, tar = self.out / "hb", self.out / "hb-split", self.out / "tar" / "backup.tar.zst"
        steps: list[Callable[[Path], None]] = []

        def tar_zst(dest: Path) -> None:
            command = f"zstd -d -q -c {tar} | tar -x -f - -C {dest}"
            self.add("r-tar", "zstd -d | tar -x (tar | zstd)", "restore", measure_command(shell(command), dest))

        def hostbackup_one(dest: Path) -> None:
            volumes = " ".join(shlex.quote(str(p)) for p in ordered_volumes(hb))
            command = f"cat {volumes} | zstd -d -q | tar -x -f - -C {dest}"
            label = "zstd -d | tar -x (hostbackup, 1 volume)"
            self.add("r-hostbackup", label, "restore", measure_command(shell(command), dest))

        def hostbackup_split(dest: Path) -> None:
            volumes = " ".join(shlex.quote(str(p)) for p in ordered_volumes(hb_split))
            command = f"cat {volumes} | zstd -d -q | tar -x -f - -C {dest}"
            label = f"cat | zstd -d | tar -x (hostbackup, {self.args.split_mib} MiB volumes)"
            self.add("r-hostbackup-split", label, "restore", measure_command(shell(command), dest))

        def hostbackup_cli(dest: Path) -> None:
            """`hostbackup restore` from a home whose customer storage is the kept backup (CLI, end to end)."""
            home = self.scratch / "restore-home"
            storage = home / "dumps" / "clients" / self.login
            if not storage.is_symlink():  # a home made (and migrated) once, untimed, with the customer
                run_measured([sys.executable, "-m", "hostbackup", "--home", str(home), "customer", "add", self.login,
                              "--name", "Bench", "--password", CUSTOMER_PASSWORD], env=restore_env())  # fmt: skip
                storage.parent.mkdir(parents=True, exist_ok=True)
                if storage.is_dir():
                    storage.rmdir()  # the customer's empty storage: its backups are the kept ones
                storage.symlink_to(hb.resolve())
            name = self.kept_backup_name()
            argv = [sys.executable, "-m", "hostbackup", "--home", str(home), "restore", f"customer:{self.login}",
                    name, "--target-directory", str(dest)]  # fmt: skip
            label = "hostbackup restore (CLI, into a directory)"
            self.add("r-hostbackup-restore", label, "restore", measure_command(argv, dest, env=restore_env()))

        def hostbackup_api(dest: Path) -> None:
            label = "hostbackup restore (XML API, into a directory)"
            self.add("r-hostbackup-api", label, "restore", self.api_restore(dest))

        def verify(dest: Path) -> None:
            code = (
                "import sys; from pathlib import Path; from hostbackup.restore.reader import check_archive; "
                "r = check_archive([Path(a) for a in sys.argv[1:]]); sys.exit(0 if r.intact else r.problem)"
            )
            sample = run_measured([sys.executable, "-c", code, *map(str, ordered_volumes(hb))])
            self.add("r-verify", "hostbackup verify (reader.check_archive, no writes)", "restore", sample)

        def restic(dest: Path) -> None:
            argv = ["restic", "-r", str(self.out / "restic"), "restore", "latest", "--target", str(dest)]
            self.add("r-restic", "restic restore", "restore", measure_command(argv, dest, env=env))

        def borg(key: str, label: str) -> Callable[[Path], None]:
            def step(dest: Path) -> None:
                argv = ["borg", "extract", f"{self.out / key}::bench"]
                sample = measure_command(argv, dest, cwd=dest, env=env)
                self.add(f"r-{key}", f"borg extract ({label})", "restore", sample)

            return step

        if tar.exists():
            steps.append(tar_zst)
        if hb.exists():
            steps += [hostbackup_one, hostbackup_cli, verify]
            if self.server is not None:
                steps.append(hostbackup_api)
        if hb_split.exists():
            steps.append(hostbackup_split)
        if (self.out / "restic").exists():
            steps.append(restic)
        for key, label in (("borg-lz4", "lz4"), ("borg-zstd", "zstd,3")):
            if (self.out / key).exists():
                steps.append(borg(key, label))
        return steps

    # -- API --

    def api(self) -> None:
        server = self.server
        assert server is not None
        pickup = []
        for _ in range(3):
            start = time.perf_counter()
            task_id = server.start_backup(self.login, extra="<only-configuration/>")
            server.wait_task(task_id, timeout=120, poll=0.01)
            pickup.append((time.perf_counter() - start) * 1000)
        self.result.api["config_only_task_ms"] = statistics.median(pickup)
        log(f"  configuration-only backup, request → finished: {statistics.median(pickup):.0f} ms")
        info = f"<get-tasks-info><task-id>{task_id}</task-id></get-tasks-info>"
        start_packet = backup_packet(self.login, extra="<only-configuration/>")
        scenarios = (
            ("get-tasks-info", info, self.args.api_requests),
            ("backup-customer (only-configuration)", start_packet, self.args.api_backup_requests),
        )
        for busy in (False, True):
            for name, operations, budget in scenarios:
                label = f"{name}, {'during backup' if busy else 'idle'}"
                log(f"API load: {label}")
                with self.backup_loop(busy) as coverage:
                    outcome = self.load(operations, budget)
                outcome["backup_coverage"] = coverage() if busy else None
                self.result.api[label] = outcome
                log(
                    f"  {outcome['packets_per_second']:.0f} packets/s, p50 {outcome['p50_ms']:.1f} ms, "
                    f"p99 {outcome['p99_ms']:.1f} ms, errors {outcome['errors']}"
                )
                server.wait_idle(self.login)
                self.clear_dumps()

    def load(self, operations: str, budget: int) -> dict[str, Any]:
        assert self.server is not None
        body = self.scratch / "packet.xml"
        body.write_text(f"<packet><backup-manager>{operations}</backup-manager></packet>")
        command = [sys.executable, str(BENCH / "loadgen.py"), "--port", str(self.server.port)]
        command += ["--body-file", str(body), "--password", ADMIN_PASSWORD]
        command += ["--concurrency", str(self.args.concurrency), "--duration", str(self.args.api_seconds)]
        command += ["--max-requests", str(budget)]
        processes = self.server.api_processes()
        server_cpu = sum(proc_cpu(pid) for pid in processes)
        completed = subprocess.run(command, capture_output=True, check=True, timeout=self.args.api_seconds + 120)
        outcome: dict[str, Any] = json.loads(completed.stdout)
        outcome["server_cpu_seconds"] = sum(proc_cpu(pid) for pid in processes) - server_cpu
        return outcome

    @contextlib.contextmanager
    def backup_loop(self, busy: bool) -> Iterator[Callable[[], float]]:
        """While the block runs, keep full backups running back to back; yields a coverage probe."""
        if not busy:
            yield lambda: 0.0
            return
        server = self.server
        assert server is not None
        stop = threading.Event()
        spans: list[tuple[float, float]] = []
        failures: list[str] = []

        def loop() -> None:
            client = Server.__new__(Server)  # same server, own HTTP client (httpx clients are not shared)
            client.__dict__.update(server.__dict__)
            client.client = httpx.Client(verify=False, timeout=60)
            try:
                for _ in range(100):  # bounded; each backup is bounded by wait_task's timeout
                    if stop.is_set():
                        return
                    start = time.perf_counter()
                    try:
                        client.wait_task(client.start_backup(self.login), timeout=STEP_TIMEOUT, poll=0.2)
                    except Exception as exc:
                        failures.append(str(exc))
                        return
                    spans.append((start, time.perf_counter()))
                    with contextlib.suppress(OSError):
                        self.clear_dumps()
            finally:
                client.client.close()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        time.sleep(1.0)  # let a worker claim the first backup (the workers poll the queue every 0.1 s)
        window_start = time.perf_counter()
        window: list[float] = []

        def coverage() -> float:
            end = window[0] if window else time.perf_counter()
            busy_time = sum(max(0.0, min(b, end) - max(a, window_start)) for a, b in spans)
            if thread.is_alive() and spans:  # the backup still running at the end of the window
                busy_time += max(0.0, end - max(spans[-1][1], window_start))
            elif thread.is_alive():
                busy_time = end - window_start
            return busy_time / max(end - window_start, 1e-9)

        try:
            yield coverage
        finally:
            window.append(time.perf_counter())
            stop.set()
            thread.join(STEP_TIMEOUT)
            if failures:
                self.result.notes.append(f"background backup failed during API load: {failures[0][:300]}")

    def clear_dumps(self) -> None:
        folder = self.home / "dumps" / "clients" / self.login
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and not path.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    # -- profile --

    def py_spy_program(self) -> str | None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if Path(py_spy).exists():
            return py_spy
        missing = "--profile: py-spy not found (pip install py-spy)"
        if missing not in self.result.notes:  # said once, though both profiles ask
            self.result.notes.append(missing)
        return None

    def profile(self) -> None:
        """py-spy the worker during one backup (wall clock, --idle) and the server under get-tasks-info load."""
        server = self.server
        assert server is not None
        py_spy = self.py_spy_program()
        if py_spy is None:
            return
        with self.py_spy(py_spy, server.workers(), idle=True) as stacks:
            time.sleep(1.0)
            hostbackup_backup(server, self.login, 0, self.out / "hb-profile")
        shutil.rmtree(self.out / "hb-profile", ignore_errors=True)
        backup = Counter({stack: count for stack, count in stacks.items() if "runner.py" in stack})
        self.result.profile["worker during a backup (wall clock)"] = summarize_profile(backup)
        task_id = server.start_backup(self.login, extra="<only-configuration/>")
        server.wait_task(task_id)
        info = f"<get-tasks-info><task-id>{task_id}</task-id></get-tasks-info>"
        with self.py_spy(py_spy, server.api_processes(), idle=False) as stacks:
            time.sleep(0.5)
            self.load(info, self.args.api_requests)
        self.result.profile["server under get-tasks-info load (CPU)"] = summarize_profile(stacks)

    def profile_restore(self, dest: Path) -> None:
        """py-spy the worker during one more API restore (wall clock, --idle: the restoring thread and
        the volume check beside it)."""
        assert self.server is not None
        py_spy = self.py_spy_program()
        if py_spy is None:
            return
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        with self.py_spy(py_spy, self.server.workers(), idle=True) as stacks:
            time.sleep(1.0)
            self.api_restore(dest)
        shutil.rmtree(dest, ignore_errors=True)
        restore = Counter({stack: count for stack, count in stacks.items() if "hostbackup/restore/" in stack})
        self.result.profile["worker during a restore (wall clock)"] = summarize_profile(restore)

    @contextlib.contextmanager
    def py_spy(self, py_spy: str, pids: list[int], *, idle: bool) -> Iterator[Counter[str]]:
        """Record the processes while the block runs; the collapsed stacks land in the yielded Counter."""
        stacks: Counter[str] = Counter()
        recorders = []
        for pid in pids:
            output = self.scratch / f"profile-{pid}-{time.monotonic_ns()}.txt"
            command = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nolineno"]
            command += ["--nonblocking", "--output", str(output), *(["--idle"] if idle else [])]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _children.add(process)
            recorders.append((process, output))
        try:
            yield stacks
        finally:
            for process, _ in recorders:
                process.send_signal(signal.SIGINT)
            for process, output in recorders:
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                _children.discard(process)
                if output.exists():
                    for line in output.read_text().splitlines():
                        stack, _, count = line.rpartition(" ")
                        if count.isdigit():
                            stacks[stack] += int(count)


def _frame(frame: str) -> str:
    """`func (/long/path/hostbackup/backup/archive.py)` → `func (hostbackup/backup/archive.py)`."""
    match = re.match(r"(.*) \((.*)\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarize_profile(stacks: Counter[str], top: int = 15) -> dict[str, Any]:
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = [_frame(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = 100 / total if total else 0.0
    return {
        "samples": total,
        "self": [(name, round(count * share, 1)) for name, count in own.most_common(top)],
        "inclusive": [(name, round(count * share, 1)) for name, count in inclusive.most_common() if count < total][
            : top * 2
        ],
    }


# --- report --------------------------------------------------------------------------------------


def ratio(reference: Row | None, row: Row) -> str:
    if reference is None or not row.samples:
        return "–"
    return f"{reference.wall / row.wall:.2f}"


def table(result: Result) -> str:
    content = result.corpus["bytes"]
    lines = []
    for kind, title, refs in (
        ("backup", "Backup", ("tar", "restic", "borg-lz4", "borg-zstd")),
        ("restore", "Restore", ("r-tar", "r-restic", "r-borg-lz4", "r-borg-zstd")),
    ):
        rows = [row for row in result.rows if row.kind == kind and row.samples]
        if not rows:
            continue
        head = "×tar|zstd" if kind == "backup" else "×zstd|tar"
        databases = result.corpus.get("database_bytes", 0)
        of_which = f", of which {databases / MB:.0f} MB in databases" if databases else ""
        lines += [
            f"\n{title} ({content / MB:.0f} MB{of_which}, {result.corpus['files']} files; "
            f"median of {result.corpus['runs']} runs)",
            "",
            f"| {'tool':<52} | wall s | MB/s | {head} | ×restic | ×borg lz4 | ×borg zstd | CPU s | CPU {head} "
            "| cores busy | peak RSS MiB | written MB |",
            f"|{'-' * 54}|-------:|-----:|----------:|--------:|----------:|-----------:|------:|--------------:"
            "|-----------:|-------------:|-----------:|",
        ]
        references = [result.row(key) for key in refs]
        for row in rows:
            ratios = " | ".join(f"{ratio(ref, row):>{w}}" for ref, w in zip(references, (9, 7, 9, 10), strict=True))
            written = f"{row.written / MB:.0f}" if row.written else "–"
            base = references[0]
            cpu_ratio = f"{base.cpu / row.cpu:.2f}" if base is not None and row.cpu else "–"
            busy = "–" if math.isnan(row.cores_busy) else f"{row.cores_busy:.2f}"
            lines.append(
                f"| {row.label:<52} | {row.wall:6.2f} | {content / MB / row.wall:4.0f} | {ratios} | {row.cpu:5.1f} "
                f"| {cpu_ratio:>13} | {busy:>10} | {row.rss_mib:12.0f} | {written:>10} |"
            )
    if any(isinstance(value, dict) for value in result.api.values()):
        lines += [
            f"\nXML API over HTTPS ({result.api.get('concurrency', '?')} keep-alive connections, loopback)",
            "",
            "| scenario | packets/s | p50 ms | p99 ms | max ms | requests | errors | server CPU s | client CPU s "
            "| backup running |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, value in result.api.items():
            if not isinstance(value, dict):
                continue
            covered = value.get("backup_coverage")
            lines.append(
                f"| {name} | {value['packets_per_second']:.0f} | {value['p50_ms']:.1f} | {value['p99_ms']:.1f} "
                f"| {value['max_ms']:.1f} | {value['requests']} | {value['errors']} "
                f"| {value['server_cpu_seconds']:.1f} | {value['client_cpu_seconds']:.1f} "
                f"| {'–' if covered is None else f'{covered:.0%}'} |"
            )
        if "config_only_task_ms" in result.api:
            lines.append(
                "\nconfiguration-only backup, request → finished (median of 3): "
                f"{result.api['config_only_task_ms']:.0f} ms"
            )
    if result.targets:
        lines += ["\nTargets", ""]
        for target in result.targets:
            lines.append(f"- {'MET   ' if target['met'] else 'MISSED'} {target['what']}: {target['value']}")
    for title, summary in result.profile.items():
        if summary.get("samples"):
            lines += [f"\nProfile: {title} (py-spy, {summary['samples']} samples, % of samples)", "", "self:"]
            lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary["self"]]
            lines += ["inclusive:"] + [f"  {pct:5.1f}%  {name}" for name, pct in summary["inclusive"]]
    for note in result.notes:
        lines.append(f"\nnote: {note}")
    return "\n".join(lines)


def load_result(path: Path) -> Result:
    data = json.loads(path.read_text())
    rows = [
        Row(raw["key"], raw["label"], raw["kind"], [Sample(**sample) for sample in raw["samples"]], raw["note"])
        for raw in data.pop("rows")
    ]
    result = Result(**data)
    result.rows = rows
    result.targets = []
    evaluate(result)
    return result


def evaluate(result: Result) -> None:
    targets = result.targets

    def relative(ours: str, ref: str, want: float, what: str) -> None:
        a, b = result.row(ours), result.row(ref)
        if a and b:
            # judged on each side's fastest run: one slow run of the reference (this VM's slow
            # phases after a heavy step) must not pass a target, nor one slow run of ours miss it
            value, median = b.best_wall / a.best_wall, b.wall / a.wall
            by_cpu = b.cpu / a.cpu if a.cpu else math.nan
            verdict = "" if value >= want else f" — short by {(1 - value / want):.0%}"
            figure = (
                f"{value:.2f}× best run against best run (target ≥ {want}×){verdict}; "
                f"medians {median:.2f}×; by CPU seconds {by_cpu:.2f}×"
            )
            targets.append({"what": what, "value": figure, "met": value >= want})

    relative("hostbackup", "tar", 0.9, "backup ≥ 0.9× tar | zstd -3 -T0 (1 volume)")
    relative("hostbackup-split", "tar-split", 0.9, "backup ≥ 0.9× tar | zstd | split (split volumes)")
    relative("hostbackup", "restic", 3.0, "backup ≥ 3× restic")
    relative("hostbackup", "borg-lz4", 3.0, "backup ≥ 3× borg (lz4)")
    relative("hostbackup", "borg-zstd", 3.0, "backup ≥ 3× borg (zstd,3)")
    relative("r-hostbackup", "r-tar", 0.9, "restore of hostbackup's format with stock tools ≥ 0.9× zstd -d | tar -x")
    relative("r-hostbackup-api", "r-tar", 0.9, "hostbackup restore (XML API) ≥ 0.9× zstd -d | tar -x")
    relative("r-hostbackup-restore", "r-tar", 0.9, "hostbackup restore (CLI) ≥ 0.9× zstd -d | tar -x")
    rss = [row.rss_mib for key in ("hostbackup", "hostbackup-split") if (row := result.row(key))]
    if rss:
        peak = max(rss)
        targets.append({"what": "worker peak RSS ≤ 150 MiB", "value": f"{peak:.0f} MiB", "met": peak <= 150})
    for label, limit in (("get-tasks-info, idle", 50.0), ("get-tasks-info, during backup", 100.0)):
        value = result.api.get(label)
        if isinstance(value, dict):
            pps, p99 = value["packets_per_second"], value["p99_ms"]
            met = p99 <= limit and (pps >= 1000 or "during" in label) and not value["errors"]
            want = f"p99 ≤ {limit:.0f} ms" + (", ≥ 1000 packets/s" if "idle" in label else "")
            targets.append(
                {"what": f"API {label}: {want}", "value": f"{pps:.0f} packets/s, p99 {p99:.1f} ms", "met": met}
            )


# --- machine -------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = proc_meminfo("MemTotal")

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
            return out.splitlines()[0] if out else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "missing"

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
        "tools": {
            "tar": version(["tar", "--version"]),
            "zstd": version(["zstd", "--version"]),
            "restic": version(["restic", "version"]),
            "borg": version(["borg", "--version"]),
        },
    }


def proc_meminfo(key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def check_tools(result: Result, only: set[str]) -> dict[str, bool]:
    have = {tool: shutil.which(tool) is not None for tool in ("tar", "zstd", "split", "restic", "borg")}
    for tool in ("tar", "zstd", "split"):
        if not have[tool]:
            raise SystemExit(f"{tool} is required (apt-get install tar zstd coreutils)")
    if not Path(TIME).exists():
        raise SystemExit(f"{TIME} is required to measure peak RSS (apt-get install time)")
    missing = [tool for tool in ("restic", "borg") if not have[tool] and tool in only]
    if missing:
        hint = f"{', '.join(missing)} not installed; their rows are skipped. Install: apt-get install restic borgbackup"
        log(hint)
        result.notes.append(hint)
    return have


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help=f"~{SMALL_BYTES // MiB} MiB corpus and 1 run")
    parser.add_argument("--size-mb", type=int, help=f"corpus size in MiB (default {DEFAULT_BYTES // MiB})")
    parser.add_argument(
        "--db-mb", type=int, help="of which in MariaDB and PostgreSQL databases (default a tenth; 0: none)"
    )
    parser.add_argument("--runs", type=int, help="runs per measurement, median reported (default 3; 1 with --small)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split-mib", type=int, help="volume size for the split runs (default 100; 10 with --small)")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma list of {','.join(GROUPS)}")
    parser.add_argument("--concurrency", type=int, default=16, help="API load: concurrent connections")
    parser.add_argument("--api-seconds", type=float, default=5.0, help="API load: seconds per scenario (bound)")
    parser.add_argument("--api-requests", type=int, default=50_000, help="API load: get-tasks-info packets (bound)")
    parser.add_argument("--api-backup-requests", type=int, default=300, help="API load: backup-customer packets")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker during one extra backup and restore")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--json-file", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--render", type=Path, help="only print the table of a saved JSON result")
    parser.add_argument("--workdir", type=Path, help="where the temporary directory goes (default $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--restore-dir", type=Path, help="restore into this directory (default: /dev/shm if it fits)")
    args = parser.parse_args()
    args.only = {group.strip() for group in args.only.split(",") if group.strip()}
    if unknown := args.only - set(GROUPS):
        parser.error(f"unknown --only groups: {', '.join(sorted(unknown))}")
    if args.render:
        print(table(load_result(args.render)))
        return
    args.runs = args.runs or (1 if args.small else 3)
    args.split_mib = args.split_mib or (10 if args.small else 100)
    total = args.size_mb * MiB if args.size_mb else SMALL_BYTES if args.small else DEFAULT_BYTES

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    compile_bytecode()
    scratch = Path(tempfile.mkdtemp(prefix="hostbackup-bench-", dir=args.workdir))
    result = Result(machine=machine_info(), corpus={})
    bench: Bench | None = None
    database_stack = contextlib.ExitStack()
    try:
        have = check_tools(result, args.only)
        db_servers = database_servers(database_stack) if args.db_mb != 0 else []
        db_bytes = None if args.db_mb is None else args.db_mb * MiB
        log(f"building a {total / MiB:.0f} MiB corpus in {scratch} …")
        corpus = build_corpus(
            scratch / "home", total_bytes=total, seed=args.seed, db_servers=db_servers, db_bytes=db_bytes
        )
        result.corpus = {
            "bytes": corpus.bytes,
            "database_bytes": corpus.database_bytes,
            "databases": [f"{name} ({server.type})" for server, name in corpus.customers[0].databases()],
            "files": corpus.files,
            "customers": len(corpus.customers),
            "measured_customer": corpus.customers[0].login,
            "paths": corpus.customers[0].paths(),
            "seed": args.seed,
            "runs": args.runs,
            "generation_seconds": round(corpus.seconds, 1),
        }
        in_databases = f", {corpus.database_bytes / MB:.0f} MB of it in databases" if corpus.database_bytes else ""
        log(f"corpus: {corpus.bytes / MB:.0f} MB in {corpus.files} files{in_databases} ({corpus.seconds:.0f} s)")
        bench = Bench(args, scratch, corpus, result, have=have)
        paths = " ".join(shlex.quote(p) for p in bench.paths)
        run_measured(shell(f"tar -cf - -C {shlex.quote(str(corpus.home))} {paths} | cat > /dev/null"))  # warm cache
        if args.only & {"hostbackup", "api", "restore"}:
            bench.server = Server(corpus.home, scratch / "server.log")
            log(f"hostbackup serve on port {bench.server.port}, workers {bench.server.workers()}")
            bench.warm_up()
        bench.backups()
        if "api" in args.only and bench.server is not None:
            result.api["concurrency"] = args.concurrency
            bench.api()
        if args.profile and bench.server is not None:
            log("profiling one backup with py-spy")
            bench.profile()
        if bench.server is not None:
            bench.server.stop()
            bench.server = None
        if "restore" in args.only:
            bench.restores()
        result.notes.append(
            "hostbackup restore (CLI) runs in a home made and migrated once, untimed; it records a task, and "
            "puts nothing in place before every volume's SHA-256 has been checked."
        )
        result.machine["loadavg_end"] = os.getloadavg()
        evaluate(result)
    finally:
        if bench is not None and bench.server is not None:
            bench.server.stop()
        for process in list(_children):
            _kill_group(process)
        database_stack.close()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    data = asdict(result)
    for row, raw in zip(result.rows, data["rows"], strict=True):
        raw.update(wall_median=row.wall, cpu_median=row.cpu, peak_rss_mib=row.rss_mib, written_median=row.written)
        raw["cores_busy_median"] = None if math.isnan(row.cores_busy) else row.cores_busy
    if args.json_file:
        args.json_file.write_text(json.dumps(data, indent=2, default=str))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        machine = result.machine
        print(
            f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
            f"load average {machine['loadavg_start'][0]:.2f} → {machine.get('loadavg_end', ('?',))[0]}, "
            f"hostbackup worker RSS when idle {machine.get('worker_idle_rss_mib', '?')} MiB"
        )
        print(table(result))


if __name__ == "__main__":
    main()
