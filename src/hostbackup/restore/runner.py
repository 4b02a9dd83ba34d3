"""The restore job: verify the volumes, then stream the archive into place, member by member.

Volumes are checked against their metadata before anything is written, so a truncated or
damaged backup writes nothing. Then one pass over the stream routes each member: the
configuration dump re-creates missing accounts, web files go to the webspace's folder, mail
to its Maildirs, database dumps into their servers, everything under a target directory when
one is given. A failure half-way
names the member and says what was already restored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from zstandard import ZstdError

from hostbackup.backup import config_dump
from hostbackup.backup.config_dump import MEMBER_NAME, DumpRefused
from hostbackup.backup.metadata import BackupMeta
from hostbackup.backup.runner import task_owner
from hostbackup.db.tables import Task
from hostbackup.errors import ApiError
from hostbackup.restore import databases
from hostbackup.restore.accounts import recreate
from hostbackup.restore.databases import DatabaseRestoreFailed
from hostbackup.restore.decompress import TarStream
from hostbackup.restore.extract import Extraction, RefusedMember, check_name
from hostbackup.restore.reader import SUMS_NAME, parse_sums
from hostbackup.restore.sources import VolumeSource, volume_source
from hostbackup.restore.tarstream import ArchiveDamaged, Member, TarReader
from hostbackup.restore.verify import verify_backup
from hostbackup.tasks.worker import Progress
from hostbackup.xmlapi.context import Services

COMPONENTS = ("files", "mail", "databases")
PROGRESS_STEP = 1 << 20


class RestoreFailed(Exception):
    pass


@dataclass(frozen=True)
class Route:
    webspace: str
    component: str  # files, mail or databases
    relative: str  # below the component's root


def route(name: str) -> Route | None:
    """`domains/<webspace>/<component>/<rest>` → its parts; None for other members."""
    parts = name.rstrip("/").split("/", 3)
    if len(parts) < 3 or parts[0] != "domains" or parts[2] not in COMPONENTS:
        return None
    return Route(parts[1], parts[2], parts[3] if len(parts) == 4 else "")


@dataclass(frozen=True)
class RestoreOptions:
    filename: str
    webspace: str = ""
    component: str = ""
    path: str = ""
    target_directory: str = ""
    overwrite: bool = False
    remote: bool = False
    webspaces: tuple[str, ...] = ()  # the webspaces this restore may write into (checked at request time)

    @classmethod
    def of(cls, task: Task) -> RestoreOptions:
        values = {key: value for key, value in task.options.items() if key in cls.__dataclass_fields__}
        values["webspaces"] = tuple(values.get("webspaces", ()))
        return cls(**values)

    def wants(self, name: str, where: Route) -> bool:
        return (
            where.webspace in self.webspaces
            and (not self.webspace or where.webspace == self.webspace)
            and (not self.component or where.component == self.component)
            and name.startswith(self.path)
        )


def _unplaced(extraction: Extraction) -> str:
    if not extraction.unplaced:
        return ""
    return f"; new directories could not be put in place: {', '.join(extraction.unplaced[:5])}"


def _tar_size(meta: BackupMeta) -> int:
    """About the size of the tar stream: file data and a header per member (padding not counted)."""
    return meta.content_bytes + 512 * meta.members


class _Reporter:
    """Progress in bytes of tar stream, every `PROGRESS_STEP` (also where a stop request is noticed)."""

    def __init__(self, progress: Progress, estimate: int) -> None:
        self.progress = progress
        self.estimate = estimate
        self.due = 0

    def __call__(self, done: int) -> None:
        self.due = done + PROGRESS_STEP
        self.progress(bytes_done=min(done, self.estimate))


class RestoreJob:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._roots: dict[tuple[str | Path, ...], Path] = {}

    def run(self, task: Task, progress: Progress) -> dict[str, Any]:
        options = RestoreOptions.of(task)
        self._roots.clear()
        with self.services.db.session() as session:
            source = volume_source(self.services, session, task_owner(task), remote=options.remote)
        try:
            meta = source.find(options.filename)
            if meta is None:
                raise RestoreFailed(f"the backup {options.filename} no longer exists")
            self._vouch(source, meta, remote=options.remote)
            estimate = _tar_size(meta)
            progress(bytes_estimated=estimate, current_item=meta.name)
            extraction = Extraction(overwrite=options.overwrite)
            notes = self._stream(task, options, source.tar_stream(meta), extraction, _Reporter(progress, estimate))
        finally:
            source.close()
        return {"filename": meta.name, "warnings": notes, "current_item": ""}

    @staticmethod
    def _vouch(source: VolumeSource, meta: BackupMeta, *, remote: bool) -> None:
        """Check the volumes before writing anything: all of them locally; sizes only over FTP, where
        each volume's SHA-256 is checked as it streams (reading it twice would double the transfer)."""
        sized = source.size_problem(meta)
        problem = sized[1] if sized else ""
        if not problem and not remote:
            problem = verify_backup(source, meta, deep=False).problem
        if problem:
            raise RestoreFailed(f"nothing restored: {problem}")

    def _stream(
        self, task: Task, options: RestoreOptions, tar_stream: TarStream, extraction: Extraction, report: _Reporter
    ) -> list[str]:
        notes: list[str] = []
        sums: dict[bytes, str] = {}
        info: etree._Element | None = None
        member_name = ""
        try:
            with tar_stream as stream:
                archive = TarReader(stream.read)
                for member in archive.members():
                    member_name = member.name
                    if member.name == MEMBER_NAME and member.isfile():
                        document = archive.read_all(config_dump.MAX_BYTES)
                        info = config_dump.parse(document)
                        notes += self._accounts(task, options, info)
                    elif member.name == SUMS_NAME and member.isfile():
                        sums = parse_sums(archive.read_all())
                    else:
                        notes += self._member(options, member, archive, extraction, info)
                    if archive.consumed >= report.due:
                        report(archive.consumed)
                stream.drain()  # the padding after the archive (and, streamed, every volume's checksum)
            extraction.finish()
        except (
            RefusedMember, DatabaseRestoreFailed, DumpRefused, ApiError, ArchiveDamaged, ZstdError, OSError, EOFError
        ) as exc:  # fmt: skip
            extraction.close()  # what was written goes into place
            raise RestoreFailed(
                f"restore stopped at {member_name or 'the start'}: {exc}; "
                f"{extraction.written} entries were restored before it, the rest was not{_unplaced(extraction)}"
            ) from exc
        finally:
            extraction.close()
        if extraction.unplaced:
            raise RestoreFailed(f"the backup was restored{_unplaced(extraction)}")
        bad = [name for name, digest in extraction.digests.items()
               if sums.get(name.encode("utf-8", "surrogateescape")) != digest]  # fmt: skip
        if bad:
            raise RestoreFailed(f"restored files do not match the backup's checksums: {', '.join(bad[:5])}")
        notes += [f"refused link pointing outside the restore target: {link}" for link in extraction.refused_links]
        notes.append(f"restored {extraction.written} entries, kept {extraction.kept} existing ones")
        return notes

    def _accounts(self, task: Task, options: RestoreOptions, info: etree._Element) -> list[str]:
        if options.target_directory or options.component not in ("", "files", "mail"):
            return []
        settings = self.services.settings
        wanted = {options.webspace} if options.webspace else set(options.webspaces)
        with self.services.db.session() as session:
            owner_id = task.target_id if task.target_kind in ("reseller", "customer") else None
            done = recreate(session, settings.vhosts_root, settings.mail_root, info, wanted, owner_id)
        return [done.summary()] if done.summary() else []

    def _member(
        self, options: RestoreOptions, member: Member, archive: TarReader, extraction: Extraction,
        info: etree._Element | None,
    ) -> list[str]:  # fmt: skip
        """Write one member where it belongs; returns notes for the report."""
        check_name(member.name)  # every member, even one this restore would skip
        where = route(member.name)
        if where is None or not options.wants(member.name, where):
            return []
        if options.target_directory:
            extraction.write(self._root(options.target_directory), member.name, member, archive.data())
        elif where.component == "files":
            root = self._root(self.services.settings.vhosts_root, where.webspace)
            extraction.write(root, where.relative, member, archive.data())
        elif where.component == "mail":
            root = self._root(self.services.settings.mail_root, where.webspace)
            extraction.write(root, where.relative, member, archive.data())
        elif member.isfile() and where.relative.endswith(".sql"):
            return [self._database(where, archive.data(), info, overwrite=options.overwrite)]
        return []

    def _root(self, *parts: str | Path) -> Path:
        """The same Path object for the same root: joined once, not once per member."""
        root = self._roots.get(parts)
        if root is None:
            root = self._roots[parts] = Path(*parts)
        return root

    def _database(
        self, where: Route, dump: Iterable[memoryview], info: etree._Element | None, *, overwrite: bool
    ) -> str:
        name = where.relative.removesuffix(".sql")
        with self.services.db.session() as session:
            target = databases.locate(session, self.services.vault, info, where.webspace, name)
        if not databases.prepare(target, overwrite=overwrite):
            return f"database {name} kept: it already holds tables (restore with overwrite to replace it)"
        databases.load(target, dump)
        return f"database {name} restored into {target.access}"

    def discard(self, task: Task) -> None:
        """Nothing to remove: files are renamed into place one by one, never half-written."""
