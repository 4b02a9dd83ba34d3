"""The backup job: plan → archive stream → volumes in a staging folder → published atomically.

Volumes are written into `.staging-<task id>/` inside the owner's storage; only when the whole
archive is complete are they renamed into place, and the metadata file goes last. A failure or
stop at any point leaves nothing that lists as a backup, and `discard` removes the rest.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from hostbackup import priority, server_settings
from hostbackup.backup.archive import ArchiveWriter
from hostbackup.backup.catalog import Catalog
from hostbackup.backup.config_dump import MEMBER_NAME
from hostbackup.backup.metadata import BackupMeta, write_atomically
from hostbackup.backup.planner import Plan, plan_backup
from hostbackup.backup.volumes import Volume, VolumeWriter
from hostbackup.db.tables import Task
from hostbackup.storage.layout import Owner, owner_dir
from hostbackup.tasks.task import TargetKind
from hostbackup.tasks.worker import Progress
from hostbackup.xmlapi.context import Services


def task_owner(task: Task) -> Owner:
    return Owner(TargetKind(task.target_kind), task.target_id, task.target_name)


class BackupJob:
    def __init__(self, services: Services) -> None:
        self.services = services

    def catalog(self, task: Task) -> Catalog:
        return Catalog(owner_dir(self.services.settings.dumps_root, task_owner(task)))

    def run(self, task: Task, progress: Progress) -> dict[str, Any]:
        settings = self.services.settings
        with self.services.db.session() as session:
            plan = plan_backup(session, settings, task)
            server_wide = server_settings.load(session)
        priority.apply(server_wide.low_priority)
        compress = not server_wide.do_not_compress
        progress(bytes_estimated=plan.estimated_bytes(), bytes_done=0)
        catalog = self.catalog(task)
        name = catalog.reserve_name(task.prefix, ".tar.zst" if compress else ".tar", holder=str(task.id))
        staging = catalog.staging(task.id)
        staging.mkdir(mode=0o700)
        try:
            volumes, archive = self._write(task, plan, name, staging, compress, progress)
            meta = BackupMeta(
                name=name, owner_kind=task.target_kind, owner_id=task.target_id, owner_name=task.target_name,
                created=int(time.time()), description=task.description, task_id=task.id,
                compression="zstd" if compress else "none", options=dict(task.options), volumes=volumes,
                members=archive.members, content_bytes=archive.bytes_in, webspaces=plan.webspaces,
                warnings=list(archive.warnings),
            )  # fmt: skip
            progress(current_item="")  # last chance for a stop before the backup is published
            for volume in volumes:
                (staging / volume.name).rename(catalog.directory / volume.name)
            write_atomically(catalog.directory / meta.file_name, meta.to_json())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            catalog.release(str(task.id))
        self._apply_retention(catalog, server_wide.max_backup_files)
        return {"filename": volumes[0].name, "warnings": list(archive.warnings), "current_item": ""}

    def _write(
        self, task: Task, plan: Plan, name: str, staging: Any, compress: bool, progress: Progress
    ) -> tuple[list[Volume], ArchiveWriter]:
        split_bytes = int(task.options.get("split_size", 0)) * 1024
        writer = VolumeWriter(staging, name, split_bytes or None)
        with writer:
            archive = ArchiveWriter(writer, compress=compress, level=self.services.settings.zstd_level)
            archive.progress = lambda done: progress(bytes_done=done)
            archive.add_bytes(MEMBER_NAME, plan.configuration)
            for source in plan.sources:
                progress(current_item=source.webspace, bytes_done=archive.bytes_in)
                source.write(archive)
            archive.close()
            volumes = writer.finish()
        progress(bytes_done=archive.bytes_in)
        return volumes, archive

    @staticmethod
    def _apply_retention(catalog: Catalog, keep: int) -> None:
        """max-backup-files: after a backup finishes, the owner's oldest beyond the limit go."""
        if keep > 0:
            for meta in catalog.backups()[:-keep]:
                catalog.remove(meta)

    def discard(self, task: Task) -> None:
        """Remove the staging folder, name reservations and any published backup of `task`."""
        catalog = self.catalog(task)
        shutil.rmtree(catalog.staging(task.id), ignore_errors=True)
        catalog.release(str(task.id))
        for meta in catalog.backups():
            if meta.task_id == task.id:
                catalog.remove(meta)
