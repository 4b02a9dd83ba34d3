"""The jobs a worker can run, by task kind. Adding a kind means adding it here."""

from __future__ import annotations

from hostbackup.backup.runner import BackupJob
from hostbackup.db.tables import Task
from hostbackup.restore.runner import RestoreJob
from hostbackup.tasks.worker import Job
from hostbackup.xmlapi.context import Services


def jobs_for(services: Services) -> dict[str, Job]:
    return {"backup": BackupJob(services), "restore": RestoreJob(services)}


def discard(services: Services, task: Task) -> None:
    """Clean up after a task whose worker died (called by the supervisor)."""
    job = jobs_for(services).get(task.kind)
    if job is not None:
        job.discard(task)
