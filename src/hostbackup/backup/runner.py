"""The backup job: plan → archive stream → volumes in a staging folder → published atomically.

Volumes are written into `.staging-<task id>/` inside the owner's storage; only when the whole
archive is complete are they renamed into place, and the metadata file goes last. A failure or
stop at any point leaves nothing that lists as a backup, and `discard` removes the rest.

Remote (`ftp`) backups keep that shape but bound the local disk they use. Each finished volume
is handed (`on_volume_complete`) to a background uploader while the next one is produced; the
producer waits for the previous upload before handing over the next, so at most one volume
uploads while one is written, and an uploaded, size-verified volume is deleted at once: local
staging stays under about two volumes. With split-size 0 there is no local volume at all: the
archive streams into the FTP `STOR`. The metadata file is uploaded last, so a remote backup
exists only when complete. With `keep-local-backup` the volumes stay and the backup is also
published locally, even when the upload fails (the task then fails, but the local copy lists).

Nothing partial stays on the server: a failing run removes what it uploaded. In case the server
is unreachable then, a journal (`.remote-<task>.json` in the owner's local folder) remembers the
backup, and the next remote backup of that owner removes the leftovers first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hostbackup import priority, server_settings
from hostbackup.backup.archive import ArchiveWriter, BinarySink
from hostbackup.backup.catalog import Catalog
from hostbackup.backup.config_dump import MEMBER_NAME
from hostbackup.backup.estimate import Estimate
from hostbackup.backup.metadata import SUFFIX, BackupMeta, write_atomically
from hostbackup.backup.planner import Plan, plan_backup
from hostbackup.backup.sources.dump import DumpsAhead
from hostbackup.backup.sources.files import TreeSource
from hostbackup.backup.volumes import Volume, VolumeWriter, volume_name
from hostbackup.db.tables import Task
from hostbackup.restore.sources import LocalVolumes
from hostbackup.restore.verify import verify_backup
from hostbackup.storage import remote_settings
from hostbackup.storage.base import Storage, StorageError, WriteStream
from hostbackup.storage.ftp import FtpEndpoint, FtpStorage
from hostbackup.storage.layout import Owner, owner_dir
from hostbackup.tasks.task import TargetKind, TaskState
from hostbackup.tasks.worker import Progress
from hostbackup.xmlapi.context import Services

JOURNAL_PREFIX = ".remote-"


class UploadFailed(Exception):
    """The remote copy could not be made; the text names the cause (shown as the task's error)."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(f"FTP upload failed: {error.text}")


def task_owner(task: Task) -> Owner:
    return Owner(TargetKind(task.target_kind), task.target_id, task.target_name)


class BackupJob:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._kept: set[int] = set()  # failed remote tasks whose local copy must survive `discard`

    def catalog(self, task: Task) -> Catalog:
        return Catalog(owner_dir(self.services.settings.dumps_root, task_owner(task)))

    def run(self, task: Task, progress: Progress) -> dict[str, Any]:
        settings = self.services.settings
        with self.services.db.session() as session:
            plan = plan_backup(session, settings, task)
            server_wide = server_settings.load(session)
            endpoint = self._endpoint(session, task)
        priority.apply(server_wide.low_priority)
        compress = not server_wide.do_not_compress
        catalog = self.catalog(task)
        roots = [source.root for source in plan.sources if isinstance(source, TreeSource) and source.root.is_dir()]
        estimate = Estimate.start(catalog, task, roots)
        progress = estimate.feeding(progress)
        progress(bytes_done=0)
        extension = ".tar.zst" if compress else ".tar"
        remote = _Remote(endpoint, catalog.directory, task.id, server_wide.keep_local_backup) if endpoint else None
        unreachable: UploadFailed | None = None
        try:
            name = self._reserve(catalog, task, extension, remote)
        except UploadFailed as error:
            if remote is None or not remote.keep_local:
                raise
            # keep-local-backup: the server cannot even be listed, so the backup is made locally
            # only, and the task fails after publishing it (spec §4.1: the local copy stays)
            unreachable, remote = error, None
            name = self._reserve(catalog, task, extension, None)
        staging = catalog.staging(task.id)
        staging.mkdir(mode=0o700)
        try:
            if remote is None:
                volumes, archive = self._write(task, plan, name, staging, compress, progress)
                meta = self._meta(task, plan, name, volumes, archive)
                progress(current_item="")  # last chance for a stop before the backup is published
                self._publish(catalog, staging, meta)
                if settings.verify_after_backup:
                    self._read_back(catalog, meta, progress)
            else:
                volumes, archive = self._run_remote(task, plan, name, staging, compress, progress, remote)
        finally:
            estimate.close()
            shutil.rmtree(staging, ignore_errors=True)
            catalog.release(str(task.id))
        self._apply_retention(catalog, server_wide.max_backup_files)
        if unreachable is not None:
            self._kept.add(task.id)
            raise unreachable
        return {"filename": volumes[0].name, "summary": _summary(archive, volumes), "warnings": list(archive.warnings),
                "current_item": ""}  # fmt: skip

    @staticmethod
    def _read_back(catalog: Catalog, meta: BackupMeta, progress: Progress) -> None:
        """verify-after-backup: a backup that cannot be read back is removed and the task fails."""
        progress(current_item="verifying")
        report = verify_backup(LocalVolumes(catalog.directory), meta, deep=True)
        if not report.intact:
            catalog.remove(meta)
            raise RuntimeError(f"the new backup could not be read back: {report.problem}")

    def _endpoint(self, session: Session, task: Task) -> FtpEndpoint | None:
        if task.protocol != "ftp":
            return None
        endpoint = remote_settings.endpoint(session, self.services.vault, task_owner(task))
        if endpoint is None:
            raise UploadFailed(StorageError("remote storage is not configured for this owner"))
        _sweep(session, task_owner_dir(self.services, task), endpoint, task.id)
        return endpoint

    @staticmethod
    def _reserve(catalog: Catalog, task: Task, extension: str, remote: _Remote | None) -> str:
        """A name free locally and, for a remote backup, on the server too (local copies may be gone)."""
        taken = remote.names() if remote is not None else set()
        moment = time.time()
        while True:
            name = catalog.reserve_name(task.prefix, extension, holder=str(task.id), now=moment)
            if not any(existing.startswith(name) for existing in taken):
                return name
            catalog.release(str(task.id))
            moment += 60

    def _write(
        self, task: Task, plan: Plan, name: str, staging: Path, compress: bool, progress: Progress,
        uploader: _Uploader | None = None,
    ) -> tuple[list[Volume], ArchiveWriter]:  # fmt: skip
        split_bytes = int(task.options.get("split_size", 0)) * 1024
        on_volume = uploader.submit if uploader is not None else None
        writer = VolumeWriter(staging, name, split_bytes or None, on_volume_complete=on_volume)
        with writer:
            archive = self._archive(writer, plan, compress, progress)
            volumes = writer.finish()
        return volumes, archive

    def _archive(self, sink: BinarySink, plan: Plan, compress: bool, progress: Progress) -> ArchiveWriter:
        archive = ArchiveWriter(sink, compress=compress, level=self.services.settings.zstd_level)
        archive.progress = lambda done: progress(bytes_done=done)
        archive.add_bytes(MEMBER_NAME, plan.configuration)
        with DumpsAhead(plan.sources) as planned:
            for source in planned.sources:
                progress(current_item=source.webspace, bytes_done=archive.bytes_in)
                source.write(archive)
        archive.close()
        progress(bytes_done=archive.bytes_in)
        return archive

    @staticmethod
    def _meta(task: Task, plan: Plan, name: str, volumes: list[Volume], archive: ArchiveWriter) -> BackupMeta:
        return BackupMeta(
            name=name, owner_kind=task.target_kind, owner_id=task.target_id, owner_name=task.target_name,
            created=int(time.time()), description=task.description, task_id=task.id,
            compression="zstd" if name.endswith(".zst") else "none", options=dict(task.options), volumes=volumes,
            members=archive.members, content_bytes=archive.bytes_in, webspaces=plan.webspaces,
            warnings=list(archive.warnings),
        )  # fmt: skip

    @staticmethod
    def _publish(catalog: Catalog, staging: Path, meta: BackupMeta) -> None:
        for volume in meta.volumes:
            (staging / volume.name).rename(catalog.directory / volume.name)
        write_atomically(catalog.directory / meta.file_name, meta.to_json())

    # -- remote -----------------------------------------------------------------------------------

    def _run_remote(
        self, task: Task, plan: Plan, name: str, staging: Path, compress: bool, progress: Progress, remote: _Remote
    ) -> tuple[list[Volume], ArchiveWriter]:
        storage = remote.storage()
        remote.begin(name)
        upload = self._upload_keeping_local if remote.keep_local else self._upload_only
        try:
            volumes, archive = upload(task, plan, name, staging, compress, progress, storage)
        except BaseException as error:
            remote.clean(storage, name)
            if isinstance(error, StorageError):
                raise UploadFailed(error) from error
            raise
        remote.done()  # the journal goes with success too: a journal left behind marks a backup to sweep away
        return volumes, archive

    def _upload_only(
        self, task: Task, plan: Plan, name: str, staging: Path, compress: bool, progress: Progress, storage: Storage
    ) -> tuple[list[Volume], ArchiveWriter]:
        """No local copy: split volumes go up as each is finished, one volume streams into its file."""
        split = int(task.options.get("split_size", 0)) > 0
        volumes, archive = (
            self._upload_volumes(task, plan, name, staging, compress, progress, storage)
            if split else self._stream(plan, name, compress, progress, storage)
        )  # fmt: skip
        meta = self._meta(task, plan, name, volumes, archive)
        progress(current_item="")
        storage.write(meta.file_name, io.BytesIO(meta.to_json()))
        return volumes, archive

    def _upload_volumes(
        self, task: Task, plan: Plan, name: str, staging: Path, compress: bool, progress: Progress, storage: Storage
    ) -> tuple[list[Volume], ArchiveWriter]:
        uploader = _Uploader(storage, staging, keep_local=False)
        try:
            volumes, archive = self._write(task, plan, name, staging, compress, progress, uploader)
        except BaseException:
            uploader.finish(quiet=True)  # a stop or the writer's own error says why, not the upload it cut short
            raise
        uploader.finish()
        return volumes, archive

    def _stream(
        self, plan: Plan, name: str, compress: bool, progress: Progress, storage: Storage
    ) -> tuple[list[Volume], ArchiveWriter]:
        """split-size 0: the archive goes straight into the server's file, no local volume at all."""
        sink = _HashingSink(storage.open_write(name))
        try:
            archive = self._archive(sink, plan, compress, progress)
            size = sink.stream.commit()
        except BaseException:
            sink.stream.abort()
            raise
        return [Volume(name, size, sink.hash.hexdigest())], archive

    def _upload_keeping_local(
        self, task: Task, plan: Plan, name: str, staging: Path, compress: bool, progress: Progress, storage: Storage
    ) -> tuple[list[Volume], ArchiveWriter]:
        """keep-local-backup: the full backup is staged and published locally, whatever the upload does."""
        uploader = _Uploader(storage, staging, keep_local=True)
        try:
            volumes, archive = self._write(task, plan, name, staging, compress, progress, uploader)
        except BaseException:
            uploader.finish(quiet=True)
            raise
        meta = self._meta(task, plan, name, volumes, archive)
        progress(current_item="")
        failure = uploader.finish(quiet=True)
        if failure is None:
            with contextlib.suppress(StorageError):
                storage.write(meta.file_name, io.BytesIO(meta.to_json()))
                return self._published(staging, meta, volumes, archive)
            failure = StorageError("the metadata upload failed")
        self._published(staging, meta, volumes, archive)
        self._kept.add(task.id)
        raise failure

    def _published(
        self, staging: Path, meta: BackupMeta, volumes: list[Volume], archive: ArchiveWriter
    ) -> tuple[list[Volume], ArchiveWriter]:
        self._publish(Catalog(staging.parent), staging, meta)
        return volumes, archive

    # -- cleanup ----------------------------------------------------------------------------------

    @staticmethod
    def _apply_retention(catalog: Catalog, keep: int) -> None:
        """max-backup-files: after a backup finishes, the owner's oldest beyond the limit go."""
        if keep > 0:
            for meta in catalog.backups()[:-keep]:
                catalog.remove(meta)

    def discard(self, task: Task) -> None:
        """Remove the staging folder, name reservations and any published backup of `task`.

        A remote backup whose upload failed under keep-local-backup keeps its local copy.
        """
        catalog = self.catalog(task)
        shutil.rmtree(catalog.staging(task.id), ignore_errors=True)
        catalog.release(str(task.id))
        if task.id in self._kept:
            self._kept.discard(task.id)
            return
        for meta in catalog.backups():
            if meta.task_id == task.id:
                catalog.remove(meta)


def task_owner_dir(services: Services, task: Task) -> Path:
    return owner_dir(services.settings.dumps_root, task_owner(task))


class _HashingSink:
    """Hashes what passes into a storage stream, so the streamed file is described like a volume."""

    def __init__(self, stream: WriteStream) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.hash.update(data)
        return self.stream.write(data)


class _Uploader:
    """Uploads finished volumes in one background thread while the next volume is being written.

    `submit` (the VolumeWriter's `on_volume_complete`) first waits for the previous upload, so
    one volume uploads while one is written: local disk stays under two volumes. Without
    keep-local an upload failure surfaces in the producer at the next `submit`, stopping the
    backup; with keep-local it is remembered, later volumes are not sent, and production goes on.
    """

    def __init__(self, storage: Storage, staging: Path, *, keep_local: bool) -> None:
        self.storage = storage
        self.staging = staging
        self.keep_local = keep_local
        self.error: StorageError | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ftp-upload")
        self._pending: Future[None] | None = None

    def submit(self, volume: Volume) -> None:
        self._settle()
        if self.error is None:
            self._pending = self._pool.submit(self._upload, volume)

    def finish(self, *, quiet: bool = False) -> StorageError | None:
        """Wait for the last upload; raise its failure unless `quiet` (then return it)."""
        try:
            with contextlib.suppress(StorageError):
                self._settle()
        finally:
            self._pool.shutdown(wait=True)
        if self.error is not None and not quiet:
            raise self.error
        return self.error

    def _settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
            return
        except StorageError as error:
            self.error = error
        except OSError as error:  # the volume could not be read back: no path in the task's error
            self.error = StorageError(f"could not read a volume to upload: {error.strerror}")
        if not self.keep_local:
            raise self.error

    def _upload(self, volume: Volume) -> None:
        path = self.staging / volume.name
        with path.open("rb") as source:
            size = self.storage.write(volume.name, source)
        if size != volume.size:
            raise StorageError(f"{volume.name}: the server holds {size} bytes, the volume has {volume.size}")
        if not self.keep_local:
            path.unlink()


class _Remote:
    """The FTP side of one remote backup: its storage, the cleanup journal, cleaning up."""

    def __init__(self, endpoint: FtpEndpoint, local_dir: Path, task_id: int, keep_local: bool) -> None:
        self.endpoint = endpoint
        self.journal = local_dir / f"{JOURNAL_PREFIX}{task_id}.json"
        self.keep_local = keep_local

    def storage(self) -> FtpStorage:
        return FtpStorage(self.endpoint)

    def names(self) -> set[str]:
        try:
            return set(self.storage().list())
        except StorageError as error:
            raise UploadFailed(error) from error

    def begin(self, name: str) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.journal, json.dumps({"name": name, "where": self.endpoint.url}).encode())

    def done(self) -> None:
        self.journal.unlink(missing_ok=True)

    def clean(self, storage: Storage, name: str) -> None:
        """Best effort; when the server cannot be reached the journal stays for the next run."""
        with contextlib.suppress(StorageError):
            remove_remote_backup(storage, name)
            self.done()


def remove_remote_backup(storage: Storage, name: str) -> None:
    """Metadata first (the backup stops existing), then the volumes and their `.part` files, in order."""
    storage.remove(name + SUFFIX)
    storage.remove(name)
    number = 1
    while storage.remove(volume_name(name, number, split=True)):
        number += 1


def _sweep(session: Session, local_dir: Path, endpoint: FtpEndpoint, current_task: int) -> None:
    """Remove what earlier failed remote backups of this owner left on the server (see the journal)."""
    if not local_dir.is_dir():
        return
    storage = FtpStorage(endpoint)
    for journal in local_dir.glob(f"{JOURNAL_PREFIX}*.json"):
        task_id = journal.name[len(JOURNAL_PREFIX) : -len(".json")]
        task = session.get(Task, int(task_id)) if task_id.isdigit() else None
        if task is not None and (task.id == current_task or TaskState(task.state).active):
            continue
        if task is not None and task.state == TaskState.FINISHED:  # its backup is whole (older versions left these)
            journal.unlink(missing_ok=True)
            continue
        with contextlib.suppress(StorageError, ValueError, OSError):
            entry = json.loads(journal.read_bytes())
            if entry.get("where") == endpoint.url:
                remove_remote_backup(storage, str(entry["name"]))
                journal.unlink()
    storage.close()


def _summary(archive: ArchiveWriter, volumes: list[Volume]) -> str:
    """What a backup wrote, for its task: `archived 812 entries (41.3 MB) into 12.0 MB in 1 volume`."""
    stored = sum(volume.size for volume in volumes)
    count = f"{len(volumes)} volume" if len(volumes) == 1 else f"{len(volumes)} volumes"
    return f"archived {archive.members} entries ({archive.bytes_in / 1e6:.1f} MB) into {stored / 1e6:.1f} MB in {count}"
