"""Safe extraction: archive members become files only inside their destination root.

A backup may come from anywhere (an upload, a tampered FTP server), so every member is checked
before anything is written: no absolute names, no `..`, no path through a symlink, no device
files, FIFOs or hard links, and no two names that collide once case and Unicode normalisation
are folded (they would overwrite each other on some file systems) — any of these stops the
restore. A symlink that points outside the root is not created and is reported; it is common in
real sites (`→ /etc/...`) and harmless once nothing can be written through it.

Directories are opened one component at a time with ``O_NOFOLLOW`` relative to their parent's
descriptor (``openat``), so a symlink anywhere on the path is refused by the kernel, not by a
check that could race; the open descriptors of the current path are kept, since a tar stream
lists a directory's files together. Files are written under a temporary name, given their mode,
owner and mtime through the open descriptor, and renamed into place: a restore that stops never
leaves a half-written file under a real name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hostbackup.restore.tarstream import Member

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMPORARY = f".hostbackup-restoring.{os.getpid()}"
_OWN_IDS = (os.geteuid(), os.getegid())


class RefusedMember(Exception):
    """A member that must not be written; the message says which and why."""


@dataclass
class Extraction:
    """Writes members below roots, remembering what it did for the report."""

    overwrite: bool
    written: int = 0
    kept: int = 0
    digests: dict[str, str] = field(default_factory=dict)  # member name → SHA-256 of what was written
    refused_links: list[str] = field(default_factory=list)
    _seen: dict[tuple[Path, str], str] = field(default_factory=dict)
    _directories: list[tuple[Path, int]] = field(default_factory=list)
    _path: _OpenPath | None = None
    _as_root: bool = field(default_factory=lambda: os.geteuid() == 0)

    def write(self, root: Path, relative: str, member: Member, data: Iterable[memoryview] = ()) -> None:
        if not (member.isfile() or member.isdir() or member.issym()):
            raise RefusedMember(f"{member.name}: {_kind(member)} are not restored")
        parts = _checked_parts(member.name, relative)
        if not parts and not member.isdir():
            raise RefusedMember(f"{member.name}: a file without a name below its root")
        self._check_collision(root, member.name, parts)
        if member.isdir():
            self._make_dir(root, parts, member)
            return
        dir_fd, fresh = self._directory(root, parts[:-1], member.name)
        if member.issym():
            self._make_symlink(dir_fd, parts, member)
        else:
            self._make_file(dir_fd, fresh, parts[-1], member, data)

    def finish(self) -> None:
        """Directory times last: writing into a directory changes its mtime."""
        self.close()
        for path, mtime in reversed(self._directories):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def close(self) -> None:
        if self._path is not None:
            self._path.close()
            self._path = None

    def _directory(self, root: Path, parts: list[str], name: str) -> tuple[int, bool]:
        if self._path is None or (self._path.root is not root and self._path.root != root):
            self.close()
            self._path = _OpenPath(root)
        return self._path.descend(parts, name)

    def _check_collision(self, root: Path, name: str, parts: list[str]) -> None:
        joined = "/".join(parts)
        key = joined.lower() if joined.isascii() else unicodedata.normalize("NFC", joined).casefold()
        earlier = self._seen.setdefault((root, key), name)
        if earlier != name:
            raise RefusedMember(f"{name}: collides with {earlier} when case and Unicode normalisation are ignored")

    def _make_dir(self, root: Path, parts: list[str], member: Member) -> None:
        fd, _ = self._directory(root, parts, member.name)
        os.chmod(fd, _mode(member))
        if self._as_root:
            os.chown(fd, member.uid, member.gid)
        self._directories.append((root.joinpath(*parts), member.mtime))

    def _make_symlink(self, dir_fd: int, parts: list[str], member: Member) -> None:
        target, name = member.linkname, parts[-1]
        resolved = posixpath.normpath(posixpath.join(*parts[:-1], target)) if parts[:-1] else posixpath.normpath(target)
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            # not created (a later member could be written through it); the restore goes on
            self.refused_links.append(f"{member.name} -> {target}")
            return
        existing = _lstat(name, dir_fd)
        if existing is not None:
            if not self.overwrite:
                self.kept += 1
                return
            if stat.S_ISDIR(existing.st_mode):
                raise RefusedMember(f"{member.name}: a directory is in the way")
            os.unlink(name, dir_fd=dir_fd)
        os.symlink(target, name, dir_fd=dir_fd)
        if self._as_root:
            os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
        self.written += 1

    def _make_file(self, dir_fd: int, fresh: bool, name: str, member: Member, data: Iterable[memoryview]) -> None:
        """Write under a temporary name, then rename; `fresh`: the directory is new, nothing is in the way."""
        existing = None if fresh else _lstat(name, dir_fd)
        if existing is not None:
            if stat.S_ISLNK(existing.st_mode) or stat.S_ISDIR(existing.st_mode):
                raise RefusedMember(f"{member.name}: a link or directory is in the way")
            if not self.overwrite:
                self.kept += 1
                return
        fd = _create_temporary(dir_fd)
        try:
            digest = hashlib.sha256()
            for chunk in data:
                digest.update(chunk)
                _write_all(fd, chunk)
            os.chmod(fd, _mode(member))
            if self._as_root and (member.uid, member.gid) != _OWN_IDS:
                os.chown(fd, member.uid, member.gid)
            os.utime(fd, (member.mtime, member.mtime))
        except BaseException:
            os.unlink(_TEMPORARY, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)
        os.rename(_TEMPORARY, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        self.digests[member.name] = digest.hexdigest()
        self.written += 1


class _OpenPath:
    """Descriptors of the directories from a root down to the one last written into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._fds = [os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)]  # the root itself was chosen by us
        self._created = [False]
        self._names: list[str] = []

    def descend(self, parts: list[str], member: str) -> tuple[int, bool]:
        """The descriptor of root/parts… and whether this restore created that directory.

        Missing directories are created; no symlink is followed."""
        if parts == self._names:
            return self._fds[-1], self._created[-1]
        keep = 0
        while keep < len(self._names) and keep < len(parts) and self._names[keep] == parts[keep]:
            keep += 1
        for fd in self._fds[keep + 1 :]:
            os.close(fd)
        del self._fds[keep + 1 :], self._created[keep + 1 :], self._names[keep:]
        for part in parts[keep:]:
            fd, created = _open_dir(self._fds[-1], part, member)
            self._fds.append(fd)
            self._created.append(created or self._created[-1])
            self._names.append(part)
        return self._fds[-1], self._created[-1]

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds, self._created, self._names = [], [], []


def _open_dir(parent: int, name: str, member: str) -> tuple[int, bool]:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent), False
    except FileNotFoundError:
        os.mkdir(name, 0o755, dir_fd=parent)
        return os.open(name, _DIR_FLAGS, dir_fd=parent), True
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RefusedMember(f"{member}: passes through a symlink or a non-directory ({name})") from None
        raise


def _create_temporary(dir_fd: int) -> int:
    try:
        return os.open(_TEMPORARY, _NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
    except FileExistsError:  # left by a restore that was killed
        os.unlink(_TEMPORARY, dir_fd=dir_fd)
        return os.open(_TEMPORARY, _NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)


def _write_all(fd: int, chunk: memoryview) -> None:
    while chunk:
        chunk = chunk[os.write(fd, chunk) :]


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
    return [part for part in relative.split("/") if part not in ("", ".")]


def _mode(member: Member) -> int:
    return stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID)
