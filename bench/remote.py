"""Remote backup throughput (FTP/FTPS to a local vsftpd) as a ratio to the same backup to local disk.

Usage (as root: it starts private vsftpd instances like the tests do)::

    .venv/bin/python bench/remote.py                 # 200 MB customer, 8 MiB volumes
    .venv/bin/python bench/remote.py --megabytes 500 --split-kib 16384

Every run backs up the same customer through the real worker path (`Worker.execute` →
`BackupJob`), keep-local-backup off. Ratio = local seconds / remote seconds (1.0 = uploading
costs nothing; loopback FTP is the best case, a real link adds its bandwidth). The peak local
disk is sampled from a thread every few milliseconds over the owner's storage folder, which is
where staging lives; for a local backup it is the whole backup by design. Nothing asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ftpserver import ftp_server
from hostbackup import server_settings
from hostbackup.accounts.users import ADMIN_ID, Role, create_user
from hostbackup.accounts.webspaces import create_webspace
from hostbackup.backup.catalog import Catalog
from hostbackup.config import Settings
from hostbackup.home import open_home
from hostbackup.jobs import jobs_for
from hostbackup.storage import remote_settings
from hostbackup.storage.layout import Owner
from hostbackup.tasks import queue
from hostbackup.tasks.task import TargetKind, TaskRequest, TaskState
from hostbackup.tasks.worker import Worker
from hostbackup.xmlapi.context import Services

MB = 1000 * 1000
LOGIN = "benchcustomer"


@dataclass
class Outcome:
    label: str
    seconds: float
    peak_bytes: int


def build_content(docs: Path, megabytes: int) -> None:
    """Half incompressible, half text-like: zstd has real work, the wire carries real bytes."""
    docs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(2000)]
    for number in range(megabytes):
        data = rng.randbytes(MB) if number % 2 else b" ".join(rng.choice(words) for _ in range(MB // 10))[:MB]
        (docs / f"file-{number:04d}.bin").write_bytes(data)


def peak_of(folder: Path, stop: threading.Event, result: list[int]) -> None:
    peak = 0
    while not stop.is_set():
        total = 0
        for root, _dirs, files in os.walk(folder):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(root, name)).st_size
        peak = max(peak, total)
        stop.wait(0.005)
    result.append(peak)


def run_backup(services: Services, owner: Owner, protocol: str, split_kib: int, label: str) -> Outcome:
    request = TaskRequest(TargetKind.CUSTOMER, owner.id, owner.name, ADMIN_ID, protocol=protocol,
                          options={"split_size": split_kib})  # fmt: skip
    with services.db.session() as session:
        task_id = queue.enqueue(session, request).id
    worker = Worker(services.db, jobs_for(services), lease_seconds=30)
    task = queue.claim(services.db, worker.name, max_running=None, lease_seconds=30, task_id=task_id)
    assert task is not None
    folder = services.settings.dumps_root / "clients" / owner.name
    stop = threading.Event()
    peak: list[int] = []
    sampler = threading.Thread(target=peak_of, args=(folder, stop, peak))
    sampler.start()
    started = time.perf_counter()
    worker.execute(task)
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    with services.db.session() as session:
        from hostbackup.db.tables import Task

        done = session.get(Task, task_id)
        assert done is not None and done.state == TaskState.FINISHED.value, done and done.error
    return Outcome(label, seconds, peak[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--split-kib", type=int, default=8192)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hostbackup-bench-remote-"))
    services = open_home(Settings.load(home), announce=lambda text: None)
    with services.db.session() as session:
        customer = create_user(session, role=Role.CUSTOMER, login=LOGIN, password="Bench-Pass-1", owner_id=1)
        webspace = create_webspace(session, services.settings.vhosts_root, name="bench.example", owner=customer)
        owner = Owner(TargetKind.CUSTOMER, customer.id, customer.login)
        server_settings.save(session, keep_local_backup=False)
    build_content(services.settings.vhosts_root / webspace.name / "httpdocs", args.megabytes)
    outcomes = [run_backup(services, owner, "local", args.split_kib, "local")]
    catalog = Catalog(services.settings.dumps_root / "clients" / LOGIN)
    for meta in catalog.backups():  # the remote runs' peak must not include the local backup
        catalog.remove(meta)
    for tls in (False, True):
        with ftp_server(tls=tls) as ftp:
            with services.db.session() as session:
                update = remote_settings.Update(host=ftp.host, port=ftp.port, directory="/", login=ftp.login,
                                                password=ftp.password, passive_mode=True, use_ftps=tls)  # fmt: skip
                remote_settings.save(session, services.vault, owner, update)
            scheme = "ftps" if tls else "ftp"
            outcomes.append(run_backup(services, owner, "ftp", args.split_kib, f"{scheme}, split {args.split_kib} KiB"))
            outcomes.append(run_backup(services, owner, "ftp", 0, f"{scheme}, streamed"))
    print_table(outcomes, args.megabytes)


def print_table(outcomes: list[Outcome], megabytes: int) -> None:
    local = outcomes[0].seconds
    print(f"\n{megabytes} MB of content, loopback vsftpd\n")
    print(f"{'destination':<28} {'seconds':>8} {'MB/s in':>8} {'ratio':>6} {'peak local disk':>16}")
    for outcome in outcomes:
        rate = megabytes / outcome.seconds
        print(f"{outcome.label:<28} {outcome.seconds:>8.2f} {rate:>8.1f} {local / outcome.seconds:>6.2f} "
              f"{outcome.peak_bytes / MB:>13.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
