"""Safe extraction: archive members become files only inside their destination root.

A backup may come from anywhere (an upload, a tampered FTP server), so every member is checked
before anything is written: no absolute names, no `..`, no path through a symlink, no device
files, FIFOs or hard links, and no two names that collide once case and Unicode normalisation
are folded (they would overwrite each other on some file systems; checked per directory, so an
archive that comes back to a directory it left is refused too) — any of these stops the
restore. A symlink that points outside the root is not created and is reported; it is common in
real sites (`→ /etc/...`) and harmless once nothing can be written through it, so a later member
below it stops the restore too (it would otherwise land in a directory made in the link's place).
Read as text, a target can look inside and still leave through other links (`box → sub/l1/../..`
with `sub/l1 → ..`, in either order), so once everything is in place each link this restore made
is resolved the way the kernel would, following the links on its way, and removed (and reported)
when it ends outside its root: a web server, a mail server or the next backup would follow it.

Directories are opened one component at a time with ``O_NOFOLLOW`` relative to their parent's
descriptor (``openat``), so a symlink anywhere on the path is refused by the kernel, not by a
check that could race; the open descriptors of the current path are kept, since a tar stream
lists a directory's files together.

A restore that stops, even killed, never leaves a half-written file under a real name. Into an
existing directory each file is written under a temporary name, given its mode, owner and mtime
through the open descriptor, and renamed into place. A directory the restore has to create is
created under a temporary name instead, its files are written straight to their names inside it,
and it is renamed into place once the stream has left it (or the restore ends): one rename for a
whole new subtree instead of one per file, which was a tenth of a 1 GiB restore.

The files that follow each other in a directory this restore created take a shorter way
(`start_run`, `write_in_run`): the directory passed the path checks when it was entered, so only
the collision check and the write remain. With the tar reader's runs (`TarReader.files_in`) this
took the interpreter's time per file of a 1 GiB restore from about 13 to 8 µs (5.5 µs with the
headers parsed in C).

Nothing is put in place before the restore's ``gate`` lets it: the check of the volumes' SHA-256
runs beside the extraction, and every change to what existed before (a rename into place, a
directory's mode, a symlink in an existing directory, the directory times) first waits for that
check. When it fails, `abandon` removes what was written under temporary names and a root the
restore created, so a damaged backup still restores nothing (a directory that held them keeps its
new modification time).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import posixpath
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hostbackup.restore.tarstream import Member

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMPORARY = f".hostbackup-restoring.{os.getpid()}"  # a file, or the prefix of a new directory's name
_OWN_IDS = (os.geteuid(), os.getegid())


@dataclass
class _Run:
    fd: int
    root: Path
    directory: str  # below the root
    names: dict[str, str] | None = None  # the directory's names, once its first file has come


class RefusedMember(Exception):
    """A member that must not be written; the message says which and why."""


def _open_gate() -> None:
    """The gate of an extraction whose source needs no check before things are put in place."""


@dataclass
class Extraction:
    """Writes members below roots, remembering what it did for the report."""

    overwrite: bool
    gate: Callable[[], None] = _open_gate  # returns once things may be put in place, or raises
    hashing: bool = False  # fill `digests`: for backups whose volumes do not vouch for their members
    # run as root: give entries the archive's owners (a backup this server made, or the administrator's
    # restore), else the owner of the root they go into (an upload could name anyone's uid)
    archive_owners: bool = True
    # asked before a missing root is created: False stops the restore (its webspace was deleted meanwhile)
    may_create_root: Callable[[Path], bool] = lambda _root: True
    written: int = 0
    kept: int = 0
    digests: dict[str, str] = field(default_factory=dict)  # member name → SHA-256 of what was written
    refused_links: list[str] = field(default_factory=list)
    _not_linked: set[tuple[Path, str]] = field(default_factory=set)  # refused links: nothing goes below them
    unplaced: list[str] = field(default_factory=list)  # new directories that could not get their name
    # (root, folded directory) → {folded name: member name}, for the directories on the current path
    _names_in: dict[tuple[Path, str], dict[str, str]] = field(default_factory=dict)
    _left: set[tuple[Path, str]] = field(default_factory=set)  # directories the stream has left
    _directories: list[tuple[Path, int]] = field(default_factory=list)
    _path: _OpenPath | None = None
    _run: _Run | None = None  # the new directory whose files are written as a run (`start_run`)
    _links: list[tuple[Path, list[str], str]] = field(default_factory=list)  # made: root, parts, "name -> target"
    _root_owners: dict[Path, tuple[int, int]] = field(default_factory=dict)
    _as_root: bool = field(default_factory=lambda: os.geteuid() == 0)

    def write(self, root: Path, relative: str, member: Member, data: Iterable[memoryview] = ()) -> None:
        if not (member.isfile() or member.isdir() or member.issym()):
            raise RefusedMember(f"{member.name}: {_kind(member)} are not restored")
        parts = _checked_parts(member.name, relative)
        if not parts and not member.isdir():
            raise RefusedMember(f"{member.name}: a file without a name below its root")
        self._check_collision(root, member.name, parts)
        if self._not_linked:
            self._check_not_through_refused_link(root, member.name, parts)
        if member.isdir():
            self._make_dir(root, parts, member)
            return
        dir_fd, fresh = self._directory(root, parts[:-1], member.name)
        if member.issym():
            if not fresh:
                self.gate()
            if not self._make_symlink(root, dir_fd, parts, member):
                self._not_linked.add((root, "/".join(parts)))
        else:
            self._make_file(dir_fd, fresh, parts[-1], member, data)

    def start_run(self, root: Path, directory: str) -> bool:
        """Whether the files that follow in root/`directory` can go straight in (`write_in_run`):
        it must be the directory last written into, and one this restore created."""
        path = self._path
        parts = _parts(directory)
        if path is None or self.hashing or not path.created or path.root != root or path.names != parts:
            return False
        if self._not_linked and self._refused_link_on(root, [*parts, ""]) is not None:
            return False  # a directory made in a refused link's place: `write` refuses what is below it
        self._run = _Run(path.fd, root, "/".join(parts))
        return True

    def write_in_run(self, member: Member, data: memoryview) -> None:
        """A regular file directly in the directory `start_run` accepted: what `write` does for it,
        without the checks its directory passed when it was entered."""
        run = self._run
        assert run is not None
        if run.names is None:  # entered with its first file, as `write` does: a directory may have none
            run.names = self._names_of(run.root, _fold(run.directory), member.name)
        leaf = member.name.rpartition("/")[2]
        _add_name(run.names, _fold(leaf), member.name)
        self._make_file(run.fd, True, leaf, member, (data,))

    def finish(self) -> None:
        """New directories into place, then directory times: writing into a directory changes its mtime.

        Directories that could not get their name are listed in `unplaced` (no times are set then)."""
        self.gate()
        self.close()
        if self.unplaced:
            return
        for path, mtime in reversed(self._directories):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def close(self) -> None:
        """Close the open path, renaming new directories into place (also after a failure); then
        remove the links made that lead out of their root once resolved."""
        if self._path is not None:
            path, self._path = self._path, None
            path.close()
            self.unplaced += path.unplaced
        links, self._links = self._links, []
        for root, parts, described in links:
            try:
                if not _leaves_root(root, parts):
                    continue
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EINVAL):
                    raise
                continue  # no such link any more (a later member replaced it), or not in place
            _unlink_below(root, parts)
            self.written -= 1
            self.refused_links.append(described)

    def abandon(self) -> None:
        """Close the open path and remove what waits under a temporary name; nothing goes into place.

        For a source that failed its check: before that, the gate kept everything else as it was."""
        if self._path is not None:
            path, self._path = self._path, None
            path.abandon()

    def _owner(self, root: Path | None, member: Member) -> tuple[int, int]:
        """(uid, gid) for a restored entry below `root` (None: the root being written into)."""
        if self.archive_owners:
            return member.uid, member.gid
        where = root if root is not None else self._path.root if self._path is not None else None
        assert where is not None
        found = self._root_owners.get(where)
        if found is None:
            info = os.stat(where)
            found = self._root_owners[where] = (info.st_uid, info.st_gid)
        return found

    def _directory(self, root: Path, parts: list[str], name: str) -> tuple[int, bool]:
        if self._path is None or (self._path.root is not root and self._path.root != root):
            self.close()
            if not root.is_dir() and not self.may_create_root(root):
                raise RefusedMember(f"{name}: {root} is gone, and is no longer this restore's to make")
            self._path = _OpenPath(root, self.gate)
        return self._path.descend(parts, name)

    def _check_collision(self, root: Path, name: str, parts: list[str]) -> None:
        directory, _, leaf = _fold("/".join(parts)).rpartition("/")
        _add_name(self._names_of(root, directory, name), leaf, name)

    def _names_of(self, root: Path, directory: str, name: str) -> dict[str, str]:
        """The names seen so far in the (folded) `directory`."""
        names = self._names_in.get((root, directory))
        return self._enter(root, directory, name) if names is None else names

    def _enter(self, root: Path, directory: str, name: str) -> dict[str, str]:
        """Start the names of `directory`, forgetting those of the directories the stream has left.

        Names can only collide within one directory, and a backup lists each directory's entries
        while the stream is inside it, so memory follows the largest directory, not the archive
        (one table for every member took about 300 bytes each). An archive that comes back to a
        directory it left could hide a collision from this check: it is refused."""
        if (root, directory) in self._left:
            raise RefusedMember(f"{name}: the archive had already left this directory (backups keep it together)")
        ancestors = {directory[:end] for end, char in enumerate(directory) if char == "/"} | {"", directory}
        for key in [key for key in self._names_in if key[0] != root or key[1] not in ancestors]:
            del self._names_in[key]
            self._left.add(key)
        names: dict[str, str] = {}
        self._names_in[(root, directory)] = names
        return names

    def _check_not_through_refused_link(self, root: Path, name: str, parts: list[str]) -> None:
        """A member below a link that was not created would land in a directory in its place: the
        archive means a path through that link, and that is refused like any other."""
        if (through := self._refused_link_on(root, parts)) is not None:
            raise RefusedMember(f"{name}: a path through the link {through}, which points outside the target")

    def _refused_link_on(self, root: Path, parts: list[str]) -> str | None:
        """The refused link that a directory on the way to `parts` (the last one excluded) stands for."""
        for depth in range(1, len(parts)):
            if (root, through := "/".join(parts[:depth])) in self._not_linked:
                return through
        return None

    def _make_dir(self, root: Path, parts: list[str], member: Member) -> None:
        fd, created = self._directory(root, parts, member.name)
        if not created:
            self.gate()
        os.chmod(fd, _mode(member))
        if self._as_root:
            os.chown(fd, *self._owner(root, member))
        self._directories.append((root.joinpath(*parts), member.mtime))

    def _make_symlink(self, root: Path, dir_fd: int, parts: list[str], member: Member) -> bool:
        """False when the link points outside the root: it is not created (a later member could be
        written through it), and the restore goes on."""
        target, name = member.linkname, parts[-1]
        resolved = posixpath.normpath(posixpath.join(*parts[:-1], target)) if parts[:-1] else posixpath.normpath(target)
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            self.refused_links.append(f"{member.name} -> {target}")
            return False
        existing = _lstat(name, dir_fd)
        if existing is not None:
            if not self.overwrite:
                self.kept += 1
                return True
            if stat.S_ISDIR(existing.st_mode):
                raise RefusedMember(f"{member.name}: a directory is in the way")
            os.unlink(name, dir_fd=dir_fd)
        os.symlink(target, name, dir_fd=dir_fd)
        if self._as_root:
            os.chown(name, *self._owner(root, member), dir_fd=dir_fd, follow_symlinks=False)
        self.written += 1
        self._links.append((root, parts, f"{member.name} -> {target}"))
        return True

    def _make_file(self, dir_fd: int, fresh: bool, name: str, member: Member, data: Iterable[memoryview]) -> None:
        """`fresh`: a directory this restore created (still under its temporary name); else the file
        goes under a temporary name first and is renamed over whatever the policy lets it replace."""
        if fresh and (fd := _create(name, dir_fd, _mode(member))) is not None:
            self._fill(fd, dir_fd, name, member, data)
            self.written += 1
            return
        existing = None if fresh else _lstat(name, dir_fd)  # fresh: the archive names this file twice
        if existing is not None:
            if stat.S_ISLNK(existing.st_mode) or stat.S_ISDIR(existing.st_mode):
                raise RefusedMember(f"{member.name}: a link or directory is in the way")
            if not self.overwrite:
                self.kept += 1
                return
        self._fill(_create_temporary(dir_fd, _mode(member)), dir_fd, _TEMPORARY, member, data)
        try:
            self.gate()
        except BaseException:
            os.unlink(_TEMPORARY, dir_fd=dir_fd)
            raise
        os.rename(_TEMPORARY, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        self.written += 1

    def _fill(self, fd: int, dir_fd: int, name: str, member: Member, data: Iterable[memoryview]) -> None:
        """Write the data, mode, owner and mtime into the new file `name`; remove it on failure."""
        try:
            digest = hashlib.sha256() if self.hashing else None
            for chunk in data:
                if digest is not None:
                    digest.update(chunk)
                _write_all(fd, chunk)
            if digest is not None:
                self.digests[member.name] = digest.hexdigest()
            if _mode(member) & _UMASK:  # created with the mode, which the umask cut
                os.chmod(fd, _mode(member))
            if self._as_root and (owner := self._owner(None, member)) != _OWN_IDS:
                os.chown(fd, *owner)
            os.utime(fd, (member.mtime, member.mtime))
        except BaseException:
            os.unlink(name, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)


class _OpenPath:
    """Descriptors of the directories from a root down to the one last written into.

    Per level: its descriptor, its name, whether this restore created it, and the temporary name
    it still has when it is the top of a new subtree (renamed when the path leaves it)."""

    def __init__(self, root: Path, gate: Callable[[], None]) -> None:
        self.root = root
        self._gate = gate
        self._made: list[Path] = []  # the root and its parents this restore creates, deepest first
        missing = root
        while not missing.is_dir() and missing != missing.parent:
            self._made.append(missing)
            missing = missing.parent
        root.mkdir(parents=True, exist_ok=True)
        self._fds = [os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)]  # the root itself was chosen by us
        self._created = [False]
        self._names: list[str] = []
        self._temporary: list[str | None] = [None]
        self.unplaced: list[str] = []  # new directories left under a temporary name, and why

    @property
    def fd(self) -> int:
        """The descriptor of the directory last descended to."""
        return self._fds[-1]

    @property
    def created(self) -> bool:
        """Whether this restore created that directory (or one above it)."""
        return self._created[-1]

    @property
    def names(self) -> list[str]:
        """Its path below the root."""
        return self._names

    def descend(self, parts: list[str], member: str) -> tuple[int, bool]:
        """The descriptor of root/parts… and whether this restore created that directory.

        Missing directories are created; no symlink is followed."""
        if parts == self._names:
            return self._fds[-1], self._created[-1]
        keep = 0
        while keep < len(self._names) and keep < len(parts) and self._names[keep] == parts[keep]:
            keep += 1
        self._leave(keep + 1)
        for part in parts[keep:]:
            fd, created, temporary = _open_dir(self._fds[-1], part, member, temporary=not self._created[-1])
            self._fds.append(fd)
            self._created.append(created or self._created[-1])
            self._names.append(part)
            self._temporary.append(temporary)
        return self._fds[-1], self._created[-1]

    def close(self) -> None:
        self._leave(0)

    def abandon(self) -> None:
        """Close every level, remove the new subtree that still has its temporary name, and the
        root with its parents when this restore created them."""
        for level in range(len(self._fds) - 1, 0, -1):  # at most one: below it, names are final
            temporary = self._temporary[level]
            if temporary is not None:
                shutil.rmtree(temporary, dir_fd=self._fds[level - 1], ignore_errors=True)
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds.clear()
        for made in self._made:
            with contextlib.suppress(OSError):  # only when empty: a file another process wrote stays
                made.rmdir()

    def _leave(self, depth: int) -> None:
        """Close the levels below `depth`, deepest first, renaming new subtrees into place."""
        if any(temporary is not None for temporary in self._temporary[depth:]):
            self._gate()  # before anything is closed: a refusal leaves the path for `abandon`
        while len(self._fds) > depth:
            os.close(self._fds.pop())
            self._created.pop()
            temporary = self._temporary.pop()
            if self._names:  # not the root, which has no name
                name = self._names.pop()
                if temporary is not None:
                    self._place(temporary, name)

    def _place(self, temporary: str, name: str) -> None:
        parent = self._fds[-1]
        try:
            if _lstat(name, parent) is not None:  # appeared meanwhile: never replace it
                raise FileExistsError(errno.EEXIST, "exists")
            os.rename(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            where = "/".join([*self._names, name])
            self.unplaced.append(f"{where} (left as {temporary}: {exc.strerror})")


def _open_dir(parent: int, name: str, member: str, *, temporary: bool) -> tuple[int, bool, str | None]:
    """Open `name` in `parent`: (descriptor, created, temporary name it was created under)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent), False, None
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RefusedMember(f"{member}: passes through a symlink or a non-directory ({name})") from None
        raise
    made = _make_temporary_dir(parent) if temporary else name
    if not temporary:
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(made, _DIR_FLAGS, dir_fd=parent), True, made if temporary else None


def _make_temporary_dir(parent: int) -> str:
    for number in itertools.count():
        name = f"{_TEMPORARY}.{number}"
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:  # left by a restore that was killed, or another new subtree of ours
            continue
        return name
    raise AssertionError("unreachable")


def _fold(name: str) -> str:
    """The name that two names have in common when they differ only in case or Unicode normalisation."""
    return name.lower() if name.isascii() else unicodedata.normalize("NFC", name).casefold()


def _add_name(names: dict[str, str], folded: str, name: str) -> None:
    earlier = names.setdefault(folded, name)
    if earlier != name:
        raise RefusedMember(f"{name}: collides with {earlier} when case and Unicode normalisation are ignored")


def _create(name: str, dir_fd: int, mode: int) -> int | None:
    """A new file `name`, or None when the name exists already."""
    try:
        return os.open(name, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
    except FileExistsError:
        return None


def _create_temporary(dir_fd: int, mode: int) -> int:
    try:
        return os.open(_TEMPORARY, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
    except FileExistsError:  # left by a restore that was killed
        os.unlink(_TEMPORARY, dir_fd=dir_fd)
        return os.open(_TEMPORARY, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)


def _read_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: every file gets an explicit chmod


_UMASK = _read_umask()


def _write_all(fd: int, chunk: memoryview) -> None:
    while chunk:
        chunk = chunk[os.write(fd, chunk) :]


def _leaves_root(root: Path, parts: list[str]) -> bool:
    """Whether the symlink at `root`/`parts` ends outside `root` when resolved as the kernel would:
    component by component from the link's directory, following the links found on the way (their
    own targets read from disk), with the kernel's limit of 40 links."""
    where = parts[:-1]
    pending = os.readlink(root.joinpath(*parts)).split("/")
    for _hop in range(40):
        if pending and pending[0] == "":  # absolute
            return True
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if not where:
                    return True
                where.pop()
                continue
            here = root.joinpath(*where, name)
            if not here.is_symlink():
                where = [*where, name]
                continue
            pending = [*os.readlink(here).split("/"), *pending]
            break
        else:
            return False
    return True  # a loop, or too long a chain: the kernel would refuse it too


def _unlink_below(root: Path, parts: list[str]) -> None:
    """Remove `root`/`parts`, reaching its directory without following a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            below = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = below
        os.unlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _kind(member: Member) -> str:
    if member.islnk():
        return "hard links"
    if member.isdev():
        return "device files and FIFOs"
    return "special members"


def check_name(name: str) -> None:
    """Refuse absolute, `..`-climbing and malformed member names."""
    if "\0" in name or name.startswith("/"):
        raise RefusedMember(f"{name}: absolute or malformed name")
    if ".." in name and ".." in name.split("/"):
        raise RefusedMember(f"{name}: name climbs out with ..")


def _checked_parts(name: str, relative: str) -> list[str]:
    check_name(name)
    check_name(relative)
    return _parts(relative)


def _parts(relative: str) -> list[str]:
    """The directories and name of a path below a root, without empty and "." parts."""
    return [part for part in relative.split("/") if part not in ("", ".")]


def _mode(member: Member) -> int:
    return stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID)
