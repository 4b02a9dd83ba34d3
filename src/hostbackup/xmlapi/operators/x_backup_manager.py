"""Operator `x-backup-manager`: hostbackup's extensions, kept out of Plesk's structures (spec §4.19).

`get-task-progress` reports what a Plesk task record cannot carry: the internal state, bytes
done and estimated, the webspace being archived, warnings and the error text.
"""

from __future__ import annotations

from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.results import E, ok
from hostbackup.xmlapi.selectors import find_task

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
