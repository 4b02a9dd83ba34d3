"""The restore job: check the volumes, and stream the archive into place, member by member.

Volume sizes are checked first; the SHA-256 of local volumes is checked on a thread beside the
extraction, and nothing is put in place (a file under its name, an account, a database) before
that check has passed, so a truncated or damaged backup writes nothing. With zstd's frame
checksum, the volumes' digests prove every byte of the stream, so restored files are not hashed
again: that was a fifth of a restore's time, and two name → digest tables that grew with the
member count. Only a backup imported after a failed check, whose volume digests vouch for
nothing, has its members compared with its SHA256SUMS.

The stream is one pass that routes each member: the configuration dump re-creates missing
accounts, web files go to the webspace's folder, mail to its Maildirs, database dumps into their
servers, everything under a target directory when one is given. A backup can be an edited
upload, so the restore acts with the rights of the owner of the storage it came from
(`acting_user`), whatever the configuration dump says: accounts it may not create are refused,
and content goes only into webspaces that owner has. After a web or mail member, the
files that follow it in a new directory are taken as a run (`TarReader.files_in`): they share its
route and its checks, so each costs one header parse and the writing. A failure half-way names the
member and says what was already restored.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import select
from zstandard import ZstdError

from hostbackup.accounts.users import Caller, Role, can_see_webspace
from hostbackup.backup import config_dump
from hostbackup.backup.config_dump import MEMBER_NAME, DumpRefused
from hostbackup.backup.metadata import BackupMeta
from hostbackup.backup.runner import task_owner
from hostbackup.db.tables import Task, User, Webspace
from hostbackup.errors import AlreadyExists, ApiError
from hostbackup.restore import databases
from hostbackup.restore.accounts import acting_user, recreate
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


class VolumesRejected(RestoreFailed):
    """The volumes failed their check: nothing was put in place."""


class _VolumeCheck:
    """The SHA-256 of local volumes (`verify_backup`), read on a thread beside the extraction.

    It used to run before the stream, a tenth of a 1 GiB restore; now the extraction's gate
    (`wait`) holds back only what would change existing things. Over FTP (`source` None) each
    volume is checked as it streams instead: reading it twice would double the transfer."""

    def __init__(self, source: VolumeSource | None, meta: BackupMeta) -> None:
        self._problem = ""
        self._thread: threading.Thread | None = None
        if source is not None:
            self._thread = threading.Thread(target=self._run, args=(source, meta), daemon=True, name="volume-check")
            self._thread.start()

    def _run(self, source: VolumeSource, meta: BackupMeta) -> None:
        try:
            self._problem = verify_backup(source, meta, deep=False).problem
        except Exception as exc:  # reported by `wait`, in the restoring thread
            self._problem = f"the volumes could not be checked: {exc}"

    def failed(self) -> bool:
        """Whether the volumes failed, once the check has ended (waits for it)."""
        if self._thread is not None:
            self._thread.join()
        return bool(self._problem)

    def wait(self) -> None:
        """Return once the volumes passed; raise `VolumesRejected` when they did not."""
        if self.failed():
            raise VolumesRejected(f"nothing restored: {self._problem}")


@dataclass
class _Outcome:
    """What a restore reports: what it did (the task's summary), and what it did not do."""

    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
    administrator: bool = False  # the administrator asked for this restore
    # False for an uploaded backup, or one read from the owner's own FTP server, restored at another's
    # request than the administrator's: its content is whatever the owner wrote, so no SQL of it runs
    # and no owner of it is given to files
    vouched: bool = True

    @classmethod
    def of(cls, task: Task) -> RestoreOptions:
        values = {key: value for key, value in task.options.items() if key in cls.__dataclass_fields__}
        values["webspaces"] = tuple(values.get("webspaces", ()))
        return cls(**values)

    def choice(self) -> str:
        """What this restore was asked to take, in words: `component files, path domains/a.test/x`; "" for all."""
        choices = (("webspace", self.webspace), ("component", self.component), ("path", self.path))
        chosen = [f"{label} {value}" for label, value in choices if value]
        return ", ".join(chosen)

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
    """Progress in bytes of tar stream, every `PROGRESS_STEP` or a little more: a run of files is
    reported when it ends, at most a read buffer later (also where a stop request is noticed)."""

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
            administrator = self._by_administrator(task)
            owners_own = bool(meta.options.get("imported")) or options.remote  # an upload, or the owner's FTP server
            options = replace(options, administrator=administrator, vouched=administrator or not owners_own)
            check = self._check(source, meta, remote=options.remote)
            try:
                estimate = _tar_size(meta)
                progress(bytes_estimated=estimate, current_item=meta.name)
                placeable = functools.partial(self._still_placeable, task, options)
                extraction = Extraction(overwrite=options.overwrite, gate=check.wait, hashing=not meta.volumes_vouch,
                                        archive_owners=options.vouched, may_create_root=placeable)  # fmt: skip
                reporter = _Reporter(progress, estimate)
                outcome = self._stream(task, options, source.tar_stream(meta), extraction, check, reporter)
            finally:
                check.failed()  # its thread reads the volumes: it ends before they are let go
        finally:
            source.close()
        return {"filename": meta.name, "summary": "; ".join(outcome.done), "warnings": outcome.warnings,
                "current_item": ""}  # fmt: skip

    @staticmethod
    def _check(source: VolumeSource, meta: BackupMeta, *, remote: bool) -> _VolumeCheck:
        """Sizes at once (a missing or truncated volume restores nothing); the SHA-256 of local
        volumes beside the stream (`_VolumeCheck`)."""
        sized = source.size_problem(meta)
        if sized:
            raise RestoreFailed(f"nothing restored: {sized[1]}")
        return _VolumeCheck(None if remote else source, meta)

    def _stream(
        self, task: Task, options: RestoreOptions, tar_stream: TarStream, extraction: Extraction,
        check: _VolumeCheck, report: _Reporter,
    ) -> _Outcome:  # fmt: skip
        outcome = _Outcome()
        confined = False
        matched = False  # whether any member was this restore's to take
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
                        self._accounts(task, options, info, extraction.gate, outcome)
                    elif member.name == SUMS_NAME and member.isfile():
                        sums = parse_sums(archive.read_all()) if extraction.hashing else {}
                    else:
                        if not confined:  # after the accounts: only into webspaces the acting owner has
                            options, confined = self._confine(task, options, outcome), True
                        where = self._wanted(options, member)
                        matched = matched or where is not None
                        destination = self._destination(options, where, member.name) if where else None
                        if destination is not None:
                            extraction.write(*destination, member, archive.data())
                            directory = self._run_directory(options, member, destination, extraction)
                            if directory is not None:
                                for file, data in archive.files_in(directory):  # at most a read buffer's worth
                                    member_name = file.name
                                    extraction.write_in_run(file, data)
                        elif where is not None and member.isfile() and where.relative.endswith(".sql"):
                            extraction.gate()  # a database is replaced only from volumes that passed their check
                            self._database(where, archive.data(), info, options, outcome)
                    if archive.consumed >= report.due:
                        report(archive.consumed)
                stream.drain()  # the padding after the archive (and, streamed, every volume's checksum)
            extraction.finish()
        except (
            RefusedMember, DatabaseRestoreFailed, DumpRefused, ApiError, ArchiveDamaged, ZstdError, OSError, EOFError
        ) as exc:  # fmt: skip
            check.wait()  # a damaged volume may break the stream before its check ends: then nothing is kept
            extraction.close()  # what was written goes into place
            raise RestoreFailed(
                f"restore stopped at {member_name or 'the start'}: {exc}; "
                f"{extraction.written} files and links were restored before it, the rest was not{_unplaced(extraction)}"
            ) from exc
        finally:
            if check.failed():
                extraction.abandon()  # only temporary names were written: they go
            else:
                extraction.close()
        if extraction.unplaced:
            raise RestoreFailed(f"the backup was restored{_unplaced(extraction)}")
        bad = [name for name, digest in extraction.digests.items()
               if sums.get(name.encode("utf-8", "surrogateescape")) != digest]  # fmt: skip
        if bad:
            raise RestoreFailed(f"restored files do not match the backup's checksums: {', '.join(bad[:5])}")
        outcome.done.insert(0, f"restored {extraction.written} files and links")
        refused = options.webspace and options.webspace not in options.webspaces  # `_confine` said why
        if not matched and options.choice() and not refused:  # a mistyped path looks like a success otherwise
            outcome.warnings.append(f"nothing in the backup matched {options.choice()}")
        outcome.warnings += [f"refused link pointing outside the restore target: {link}"
                             for link in extraction.refused_links]  # fmt: skip
        if extraction.kept:
            outcome.warnings.append(f"{extraction.kept} existing files or links were kept as they were "
                                    "(restore with overwrite to replace them)")  # fmt: skip
        return outcome

    def _accounts(
        self, task: Task, options: RestoreOptions, info: etree._Element, gate: Callable[[], None], outcome: _Outcome
    ) -> None:
        if options.target_directory or options.component not in ("", "files", "mail"):
            return
        gate()  # accounts are put in place like files: only from volumes that passed their check
        settings = self.services.settings
        wanted = {options.webspace} if options.webspace else set(options.webspaces)
        with self.services.db.session() as session:
            acting = acting_user(session, task)
            done = recreate(session, settings.vhosts_root, settings.mail_root, info, wanted, acting)
        outcome.done += [done.summary()] if done.summary() else []
        outcome.warnings += done.refused

    def _confine(self, task: Task, options: RestoreOptions, outcome: _Outcome) -> RestoreOptions:
        """In place, content goes only into webspaces that exist and that the restore's acting owner
        has: a webspace the backup names but that was not re-created, or is someone else's, gets
        nothing (a directory planted for a name would greet its next owner)."""
        if options.target_directory:
            return options
        actor, existing, placeable = self._acting_owners(task, options.webspaces)
        for name in options.webspaces:
            if name not in placeable:
                why = f"is not one of {actor}'s" if name in existing else "does not exist"
                outcome.warnings.append(f"webspace {name} {why}: its content was not restored")
        return replace(options, webspaces=tuple(name for name in options.webspaces if name in placeable))

    def _still_placeable(self, task: Task, options: RestoreOptions, root: Path) -> bool:
        """Whether a missing root may be made: a target directory's, or a webspace's that still exists
        and is still the acting owner's (one deleted during the restore must not be made anew, for
        the next webspace of its name to find)."""
        return bool(options.target_directory) or root.name in self._acting_owners(task, (root.name,))[2]

    def _acting_owners(self, task: Task, names: Iterable[str]) -> tuple[str, set[str], set[str]]:
        """(the acting owner's login, the webspaces of `names` that exist, those of them it has)."""
        with self.services.db.session() as session:
            actor = Caller.of(acting_user(session, task))
            found = list(session.scalars(select(Webspace).where(Webspace.name.in_(names))))
            placeable = {webspace.name for webspace in found if can_see_webspace(session, actor, webspace)}
        return actor.login, {webspace.name for webspace in found}, placeable

    @staticmethod
    def _wanted(options: RestoreOptions, member: Member) -> Route | None:
        """Where a member belongs, if this restore takes it."""
        check_name(member.name)  # every member, even one this restore skips
        where = route(member.name)
        return where if where is not None and options.wants(member.name, where) else None

    def _destination(self, options: RestoreOptions, where: Route, name: str) -> tuple[Path, str] | None:
        """(root, path below it) of a member written as a file; None for a database dump."""
        if options.target_directory:
            return self._root(options.target_directory), name
        if where.component == "files":
            return self._root(self.services.settings.vhosts_root, where.webspace), where.relative
        if where.component == "mail":
            return self._root(self.services.settings.mail_root, where.webspace), where.relative
        return None

    @staticmethod
    def _run_directory(
        options: RestoreOptions, member: Member, destination: tuple[Path, str], extraction: Extraction
    ) -> str | None:
        """The directory of a member just written at `destination`, when the files that follow it
        there can be taken straight from the stream as a run (`TarReader.files_in`,
        `Extraction.start_run`).

        Only for names in plain form (no empty or "." parts, as our writer makes them), so that the
        directory in the stream and the one the extraction has open are the same; never under a
        path filter, which could tell files of one directory apart."""
        parts = member.name.split("/")
        if options.path or not (member.isfile() or member.isdir()) or "" in parts or "." in parts:
            return None
        root, relative = destination
        if member.isfile():
            relative = relative.rpartition("/")[0]
        if not extraction.start_run(root, relative):
            return None
        return member.name if member.isdir() else member.name.rpartition("/")[0]

    def _root(self, *parts: str | Path) -> Path:
        """The same Path object for the same root: joined once, not once per member."""
        root = self._roots.get(parts)
        if root is None:
            root = self._roots[parts] = Path(*parts)
        return root

    def _by_administrator(self, task: Task) -> bool:
        with self.services.db.session() as session:
            requester = session.get(User, task.requested_by)
            return requester is not None and requester.kind == Role.ADMIN.value

    def _database(
        self, where: Route, dump: Iterable[memoryview], info: etree._Element | None, options: RestoreOptions,
        outcome: _Outcome,
    ) -> None:  # fmt: skip
        name = where.relative.removesuffix(".sql")
        if not options.vouched:  # its SQL runs as the database server's administrator: anything goes
            outcome.warnings.append(f"database {name} was not restored: the backup was uploaded, and only the "
                                    "administrator restores databases from uploaded backups")  # fmt: skip
            return
        try:
            with self.services.db.session() as session:
                # an unregistered database may be the server's own, or another tenant's: the administrator's call
                target = databases.locate(
                    session, self.services.vault, info, where.webspace, name, adopt=options.administrator
                )
        except AlreadyExists as exc:
            outcome.warnings.append(f"database {name} was not restored: {exc.text} A restore the administrator "
                                    "starts brings it back.")  # fmt: skip
            return
        if not databases.prepare(target, overwrite=options.overwrite):
            outcome.warnings.append(
                f"database {name} kept: it already holds tables (restore with overwrite to replace it)"
            )
            return
        databases.load(target, dump)
        outcome.done.append(f"database {name} restored into {target.access}")

    def discard(self, task: Task) -> None:
        """Nothing to remove: files are renamed into place one by one, never half-written."""
