"""Operator `x-backup-manager`: hostbackup's extensions, kept out of Plesk's structures (spec §4.19).

`get-task-progress` reports what a Plesk task record cannot carry: the internal state, bytes
done and estimated, the webspace being archived, what the task did, warnings and the error
text. `verify` checks a backup's volumes against their metadata and, deep, every member against
its checksum list; `restore` queues a restore task (Plesk's XML API cannot restore at all).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hostbackup.accounts.users import can_see_webspace
from hostbackup.backup.metadata import BackupMeta
from hostbackup.db.tables import Webspace
from hostbackup.errors import InvalidValue, NotFound, OperationFailed, PermissionDenied
from hostbackup.restore.sources import VolumeSource, not_found_text, remote_protocol, volume_source
from hostbackup.restore.verify import verify_backup
from hostbackup.storage.base import StorageError
from hostbackup.storage.layout import Owner, owner_dir
from hostbackup.tasks import queue
from hostbackup.tasks.task import TaskRequest
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.results import E, boolean, child_text, ok
from hostbackup.xmlapi.selectors import Target, find_task, resolve, selector_of

OPERATOR = "x-backup-manager"


@operation(OPERATOR, "get-task-progress")
def get_task_progress(ctx: Context, request: Element) -> list[Element]:
    task_element = request.find("task-id")
    assert task_element is not None  # required by the schema
    task = find_task(ctx, task_element)
    progress = E(
        "progress",
        None,
        E("task-id", task.id),
        E("kind", task.kind),
        E("state", task.state),
        E("created", int(task.created)),
        E("started", int(task.started_at) if task.started_at else ""),
        E("finished", int(task.finished_at) if task.finished_at else ""),
        E("bytes-done", task.bytes_done),
        E("bytes-estimated", task.bytes_estimated),
        E("worker", task.worker),
        E("current-item", task.current_item),
        E("filename", task.filename),
        E("summary", task.summary),
        *(E("warning", text) for text in task.warnings),
        E("error", task.error),
    )
    return [ok(progress)]


@dataclass
class Located:
    target: Target
    source: VolumeSource
    meta: BackupMeta
    remote: bool


def _locate(ctx: Context, request: Element) -> Located:
    """The backup a verify/restore request names: owner (1019/1013), remote (1017/1031), file (1013)."""
    target = resolve(ctx, selector_of(request))
    remote = remote_protocol(child_text(request, "remote"))
    source = volume_source(ctx.services, ctx.session, target.owner, remote=remote)
    name = child_text(request, "filename") or ""
    try:
        meta = source.find(name)
    except StorageError as exc:
        source.close()
        raise OperationFailed(str(exc)) from None
    if meta is None:
        try:
            text = not_found_text(source, name)
        except StorageError as exc:
            raise OperationFailed(str(exc)) from None
        finally:
            source.close()
        raise NotFound("File", text)
    return Located(target, source, meta, remote)


@operation(OPERATOR, "verify")
def verify(ctx: Context, request: Element) -> list[Element]:
    """Check a backup's volumes (and with `deep`, every member) without restoring it."""
    found = _locate(ctx, request)
    try:
        report = verify_backup(found.source, found.meta, deep=request.find("deep") is not None)
    finally:
        found.source.close()
    return [
        ok(
            E(
                "report",
                None,
                E("backup", report.backup),
                E("volumes", report.volumes),
                E("members", report.members),
                E("intact", boolean(report.intact)),
                E("problem", report.problem),
                E("bad-volume", report.bad_volume),
                E("bad-member", report.bad_member),
            )
        )
    ]


def _target_directory(ctx: Context, owner: Owner, text: str | None) -> str:
    """A request's target directory, confined to `<home>/restores/<owner folder>/` (1019 otherwise)."""
    if text is None:
        return ""
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith("/") or ".." in parts or not parts or "\0" in text:
        raise InvalidValue("target-directory", text)
    base = owner_dir(ctx.settings.home / "restores", owner)
    return str(base.joinpath(*parts))


def _restorable_webspaces(ctx: Context, meta: BackupMeta, chosen: str | None, into_place: bool) -> list[str]:
    if chosen is not None and chosen.lower() not in meta.webspaces:
        raise NotFound("Webspace")
    names = [chosen.lower()] if chosen else list(meta.webspaces)
    for name in names if into_place else ():
        webspace = ctx.session.scalar(select(Webspace).where(Webspace.name == name))
        if webspace is not None and not can_see_webspace(ctx.session, ctx.caller, webspace):
            raise PermissionDenied()
    return names


@operation(OPERATOR, "restore")
def restore(ctx: Context, request: Element) -> list[Element]:
    """Queue a restore task (whole backup, one webspace, one component or a path prefix)."""
    found = _locate(ctx, request)
    found.source.close()
    target, meta = found.target, found.meta
    directory = _target_directory(ctx, target.owner, child_text(request, "target-directory"))
    webspaces = _restorable_webspaces(ctx, meta, child_text(request, "webspace-name"), into_place=not directory)
    options = {
        "filename": meta.name,
        "webspace": (child_text(request, "webspace-name") or "").lower(),
        "component": child_text(request, "component") or "",
        "path": child_text(request, "path") or "",
        "target_directory": directory,
        "overwrite": child_text(request, "conflict") == "overwrite",
        "webspaces": webspaces,
        "remote": found.remote,
    }
    task = queue.enqueue(
        ctx.session,
        TaskRequest(
            target.owner.kind,
            target.owner.id,
            target.owner.name,
            ctx.caller.id,
            kind="restore",
            description=f"restore of {meta.name}",
            protocol="ftp" if found.remote else "local",  # where the backup is read from, as for a backup
            options=options,
        ),
    )
    return [ok(E("task-id", task.id))]
