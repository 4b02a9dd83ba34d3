"""Importing uploaded files into an owner's storage (import-file, spec §4.15).

A backup comes back volume by volume (it left volume by volume through download-file). Each
imported file that looks like a volume of ours is checked together with its siblings: once
the volumes present from .001 on form a complete archive whose checksums match, a metadata
file is written and the set lists as a backup again. Until then, and for foreign files, the
files list as "not a backup".
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

from lxml import etree

from hostbackup.backup import config_dump
from hostbackup.backup.catalog import Catalog
from hostbackup.backup.metadata import SUFFIX, BackupMeta, write_atomically
from hostbackup.backup.volumes import Volume
from hostbackup.errors import AlreadyExists, InvalidValue, OperationFailed
from hostbackup.restore.decompress import ZSTD_MAGIC
from hostbackup.restore.reader import ArchiveCheck, check_archive
from hostbackup.storage.layout import Owner, sanitise

VOLUME_NAME = re.compile(r"(?P<backup>.+\.tar(?:\.zst)?)(?:\.(?P<number>\d{3,}))?")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _volume_set(directory: Path, name: str, pending: Path) -> tuple[str, list[Path]] | None:
    """The backup name and its volumes in order (with `pending` standing for `name`), if contiguous."""
    match = VOLUME_NAME.fullmatch(name)
    if match is None:
        return None
    backup = match["backup"]
    if match["number"] is None:
        return backup, [pending]
    numbered: dict[int, Path] = {}
    for entry in os.scandir(directory):
        found = VOLUME_NAME.fullmatch(entry.name)
        if found and found["backup"] == backup and found["number"]:
            numbered[int(found["number"])] = Path(entry.path)
    numbered[int(match["number"])] = pending
    order = sorted(numbered)
    if order != list(range(1, len(order) + 1)):
        return None
    return backup, [numbered[number] for number in order]


def _meta_for(owner: Owner, backup: str, volumes: list[Path], check: ArchiveCheck) -> BackupMeta:
    try:
        info = config_dump.parse(check.info) if check.info else None
    except config_dump.DumpRefused:
        info = None  # the backup is stored; its creation time and description fall back to defaults
    with volumes[0].open("rb") as first:
        compressed = first.read(4) == ZSTD_MAGIC
    warnings = [] if check.intact else [f"imported with a failed integrity check: {check.problem}"]
    return BackupMeta(
        name=backup, owner_kind=owner.kind.value, owner_id=owner.id, owner_name=owner.name,
        created=int(info.get("created", time.time())) if info is not None else int(time.time()),
        description=(info.findtext("description") or "") if info is not None else "", task_id=None,
        compression="zstd" if compressed else "none", options={"imported": True, "intact": check.intact},
        volumes=[Volume(path.name, path.stat().st_size, _sha256(path)) for path in volumes],
        members=check.members, warnings=warnings,
        webspaces=_webspaces(info),
    )  # fmt: skip


def _webspaces(info: etree._Element | None) -> list[str]:
    """The webspaces the configuration dump lists: what a restore of the backup may write into."""
    return [name for element in info.iter("webspace") if (name := element.get("name"))] if info is not None else []


def import_upload(catalog: Catalog, owner: Owner, upload: Path, name: str, *, ignore_sign: bool) -> None:
    """Move `upload` into the storage as `name` (sanitised); adopt the backup it completes."""
    final = catalog.directory / sanitise(os.path.basename(name), limit=200)
    if final.name.endswith(SUFFIX):  # a backup's metadata is written here, never taken from an upload
        raise InvalidValue("name", final.name, f"Invalid value of name: '{final.name}' (reserved for backup metadata).")
    catalog.directory.mkdir(parents=True, exist_ok=True)
    if final.exists() or catalog.find(final.name) is not None:
        raise AlreadyExists()
    found = _volume_set(catalog.directory, final.name, upload)
    check = check_archive(found[1]) if found else None
    if check is not None and check.complete and not check.intact and not ignore_sign:
        raise OperationFailed(f"the backup's integrity check failed ({check.problem}); import it with ignore-sign")
    shutil.move(upload, final)
    final.chmod(0o600)
    if found is None or check is None or not check.complete:
        return
    volumes = [final if path == upload else path for path in found[1]]
    meta = _meta_for(owner, found[0], volumes, check)
    write_atomically(catalog.directory / meta.file_name, meta.to_json())
