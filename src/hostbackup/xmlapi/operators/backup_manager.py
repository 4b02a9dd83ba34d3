"""Operator `backup-manager` (spec §4): start backups, report tasks, list what they produced.

A backup operation only validates and queues: the answer carries the task id at once and a
worker does the work. Checks run in the spec's order: selector (1019, 1013) → rights (1006) →
values (1019) → protocol (1017) → remote configuration (1031) → execute.
"""

from __future__ import annotations

from hostbackup import server_settings
from hostbackup.accounts.users import has_backup_right
from hostbackup.backup.catalog import Catalog
from hostbackup.backup.importer import import_upload
from hostbackup.db.tables import Task, User, Webspace
from hostbackup.errors import InvalidValue, NotConfigured, NotFound, NotSupported, PermissionDenied, WrongStatus
from hostbackup.storage import remote_settings
from hostbackup.storage.layout import Owner, owner_dir
from hostbackup.tasks import queue
from hostbackup.tasks.task import TargetKind, TaskRequest, TaskState
from hostbackup.xmlapi.context import Context, Download, Element, operation
from hostbackup.xmlapi.results import E, boolean, child_text, ok, parse_bool
from hostbackup.xmlapi.selectors import (
    Target,
    TaskSummary,
    find_task,
    find_task_summary,
    owner_element,
    resolve,
    selector_of,
    task_summaries,
)
from hostbackup.xmlapi.upload import find_upload, original_name

OPERATOR = "backup-manager"
LEVELS = {
    "backup-server": TargetKind.SERVER,
    "backup-reseller": TargetKind.RESELLER,
    "backup-customer": TargetKind.CUSTOMER,
    "backup-webspace": TargetKind.WEBSPACE,
}


def _backup_target(ctx: Context, request: Element, level: TargetKind) -> Target:
    if level is TargetKind.SERVER:
        ctx.require_admin()
        return Target(Owner(TargetKind.SERVER, None, ""), None)
    selector = selector_of(request)
    assert selector is not None  # the schema requires it
    return resolve(ctx, selector)


def _rights_holder(ctx: Context, target: Target) -> User | None:
    if isinstance(target.record, Webspace):
        return ctx.session.get(User, target.record.owner_id)
    return target.account


def _destination(request: Element) -> str:
    """`local`, or the remote protocol (only `ftp`; spec §2.5 → 1017 otherwise)."""
    if request.find("local") is not None:
        return "local"
    protocol = (child_text(request, "remote") or "").lower()
    if protocol != "ftp":
        raise NotSupported(f"Protocol '{child_text(request, 'remote')}' is not supported.")
    return "ftp"


def start_backup(ctx: Context, request: Element) -> list[Element]:
    level = LEVELS[str(request.tag)]
    target = _backup_target(ctx, request, level)
    holder = _rights_holder(ctx, target)
    remote = request.find("local") is None
    right = "allow_ftp_backups" if remote else "allow_local_backups"
    if holder is not None and not has_backup_right(ctx.session, holder, right):
        raise PermissionDenied()
    split_text = child_text(request, "split-size") or "0"
    if int(split_text) < 0:
        raise InvalidValue("split-size", split_text)
    protocol = _destination(request)
    if protocol == "ftp" and not remote_settings.is_configured(ctx.session, target.owner):
        raise NotConfigured("Remote storage is not configured.")
    options = {
        "split_size": int(split_text),
        "only_hosting": request.find("only-hosting") is not None,
        "only_mail": request.find("only-mail") is not None,
        "only_configuration": request.find("only-configuration") is not None,
    }
    task = queue.enqueue(
        ctx.session,
        TaskRequest(
            target_kind=target.owner.kind,
            target_id=target.owner.id,
            target_name=target.owner.name,
            requested_by=ctx.caller.id,
            protocol=protocol,
            prefix=child_text(request, "prefix") or "",
            description=child_text(request, "description") or "",
            options=options,
        ),
    )
    return [ok(E("task-id", task.id))]


for _name in LEVELS:
    operation(OPERATOR, _name)(start_backup)


def task_element(task: Task | TaskSummary) -> Element:
    state = TaskState(task.state)
    owner = Owner(TargetKind(task.target_kind), task.target_id, task.target_name)
    return E(
        "task",
        None,
        owner_element(owner),
        E("id", task.id),
        E("status", state.plesk_status),
        E("started", int(task.created)),
        E("prefix", task.prefix),
        E("filename", task.filename if state is TaskState.FINISHED else ""),
        E("protocol", task.protocol),
    )


@operation(OPERATOR, "get-tasks-info")
def get_tasks_info(ctx: Context, request: Element) -> list[Element]:
    task_id = request.find("task-id")
    if task_id is not None:
        return [ok(task_element(find_task_summary(ctx, task_id)))]
    owner = resolve(ctx, selector_of(request)).owner
    same_id = Task.target_id == owner.id if owner.id is not None else Task.target_id.is_(None)
    tasks = task_summaries(ctx.session, Task.kind == "backup", Task.target_kind == owner.kind.value, same_id)
    return [ok(*(task_element(task) for task in tasks))]


def catalog_of(ctx: Context, owner: Owner) -> Catalog:
    return Catalog(owner_dir(ctx.settings.dumps_root, owner))


@operation(OPERATOR, "get-local-backup-list")
def get_local_backup_list(ctx: Context, request: Element) -> list[Element]:
    catalog = catalog_of(ctx, resolve(ctx, selector_of(request)).owner)
    listed: list[tuple[int, Element]] = []  # (creation date, <backup>): oldest first, foreign files among them
    stored = catalog.backups()
    for meta in stored:
        files = (
            E("file", None, E("name", volume.name), E("creation-date", meta.created),
              E("description", meta.description), E("size", volume.size))
            for volume in meta.volumes
        )  # fmt: skip
        listed.append((meta.created, E("backup", None, *files)))
    for foreign in catalog.foreign_files(stored):
        file = E("file", None, E("name", foreign.name), E("creation-date", foreign.created), E("description"),
                 E("size", foreign.size), E("not-backup"))  # fmt: skip
        listed.append((foreign.created, E("backup", None, file)))
    listed.sort(key=lambda entry: entry[0])
    return [ok(*(backup for _, backup in listed))]


@operation(OPERATOR, "get-supported-protocols")
def get_supported_protocols(ctx: Context, request: Element) -> list[Element]:
    return [ok(E("protocol", "ftp"))]


SERVER_WIDE = (
    ("max-backup-files", "max_backup_files"),
    ("max-backup-processes", "max_backup_processes"),
    ("low-priority", "low_priority"),
    ("do-not-compress", "do_not_compress"),
    ("allow-local-ftp-backup", "allow_local_ftp_backup"),
    ("keep-local-backup", "keep_local_backup"),
)


@operation(OPERATOR, "get-server-wide-settings")
def get_server_wide_settings(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    current = server_settings.load(ctx.session)
    values = {"max_backup_processes": current.processes}
    elements = []
    for tag, name in SERVER_WIDE:
        value = values.get(name, getattr(current, name))
        elements.append(E(tag, boolean(value) if isinstance(value, bool) else value))
    return [ok(E("settings", None, *elements))]


def _setting_value(tag: str, name: str, text: str) -> int | bool:
    if isinstance(getattr(server_settings.ServerWideSettings(), name), bool):
        return parse_bool(text)
    number = int(text)
    if (name == "max_backup_processes" and not 1 <= number <= server_settings.MAX_PROCESSES) or (
        name == "max_backup_files" and number not in (-1,) and number < 1
    ):
        raise InvalidValue(tag, text)
    return number


@operation(OPERATOR, "set-server-wide-settings")
def set_server_wide_settings(ctx: Context, request: Element) -> list[Element]:
    ctx.require_admin()
    settings = request.find("settings")
    assert settings is not None  # required by the schema
    changes = {}
    for tag, name in SERVER_WIDE:
        text = child_text(settings, tag)
        if text is not None:
            changes[name] = _setting_value(tag, name, text)
    server_settings.save(ctx.session, **changes)
    return [ok()]


@operation(OPERATOR, "stop-backup")
def stop_backup(ctx: Context, request: Element) -> list[Element]:
    task_element = request.find("task-id")
    assert task_element is not None  # required by the schema
    task = find_task(ctx, task_element)
    if not TaskState(task.state).active:
        raise WrongStatus(f"Task {task.id} is not running.")
    queue.request_stop(ctx.session, task)
    return [ok()]


def _storage_file(ctx: Context, request: Element) -> tuple[Catalog, str]:
    catalog = catalog_of(ctx, resolve(ctx, selector_of(request)).owner)
    return catalog, child_text(request, "filename") or ""


def _missing(name: str) -> NotFound:
    return NotFound("File", f"The file {name} does not exist")


@operation(OPERATOR, "remove-file")
def remove_file(ctx: Context, request: Element) -> list[Element]:
    """Naming any file of a backup removes the whole backup; unsafe names never touch the disk."""
    catalog, name = _storage_file(ctx, request)
    meta = catalog.find(name)
    if meta is not None:
        catalog.remove(meta)
        return [ok()]
    foreign = next((item for item in catalog.foreign_files() if item.name == name), None)
    if foreign is None:
        raise _missing(name)
    (catalog.directory / foreign.name).unlink(missing_ok=True)
    return [ok()]


@operation(OPERATOR, "download-file")
def download_file(ctx: Context, request: Element) -> list[Element]:
    """Answered with the file itself when alone in its packet (spec §4.13), else 1017."""
    if not ctx.sole_operation:
        raise NotSupported("Operation is not supported.")
    catalog, name = _storage_file(ctx, request)
    meta = catalog.find(name)
    known = {volume.name for volume in meta.volumes} if meta else {item.name for item in catalog.foreign_files()}
    if name not in known:
        raise _missing(name)
    path = catalog.directory / name
    try:
        size = path.stat().st_size
    except OSError:
        raise _missing(name) from None
    ctx.download = Download(path, name, size)
    return []


@operation(OPERATOR, "import-file")
def import_file(ctx: Context, request: Element) -> list[Element]:
    owner = resolve(ctx, selector_of(request)).owner
    reference = child_text(request, "tmp-filename") or ""
    upload = find_upload(ctx.settings.upload_root, ctx.caller.id, reference)
    if upload is None:
        raise NotFound("File", "File does not exist.")
    ignore_sign = parse_bool(child_text(request, "ignore-sign"))
    import_upload(catalog_of(ctx, owner), owner, upload, original_name(upload), ignore_sign=ignore_sign)
    return [ok()]
