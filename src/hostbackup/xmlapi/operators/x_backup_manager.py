"""Operator `x-backup-manager`: hostbackup's extensions, kept out of Plesk's structures (spec §4.19).

`get-task-progress` reports what a Plesk task record cannot carry: the internal state, bytes
done and estimated, the webspace being archived, warnings and the error text. `verify` checks a
backup's volumes against their metadata and, deep, every member against its checksum list.
"""

from __future__ import annotations

from hostbackup.backup.catalog import Catalog
from hostbackup.errors import NotFound
from hostbackup.restore.verify import verify_backup
from hostbackup.storage.layout import owner_dir
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.results import E, boolean, child_text, ok
from hostbackup.xmlapi.selectors import find_task, resolve, selector_of

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
        *(E("warning", text) for text in task.warnings),
        E("error", task.error),
    )
    return [ok(progress)]


@operation(OPERATOR, "verify")
def verify(ctx: Context, request: Element) -> list[Element]:
    """Check a backup's volumes (and with `deep`, every member) without restoring it."""
    owner = resolve(ctx, selector_of(request)).owner
    catalog = Catalog(owner_dir(ctx.settings.dumps_root, owner))
    name = child_text(request, "filename") or ""
    meta = catalog.find(name)
    if meta is None:
        raise NotFound("File", f"The file {name} does not exist")
    report = verify_backup(catalog.directory, meta, deep=request.find("deep") is not None)
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
