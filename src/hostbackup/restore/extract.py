"""Safe extraction: archive members become files only inside their destination root.

A backup may come from anywhere (an upload, a tampered FTP server), so every member is checked
before anything is written: no absolute names, no `..`, no path through a symlink, no device
files, FIFOs or hard links, and no two names that collide once case and Unicode normalisation
are folded (they would overwrite each other on some file systems) — any of these stops the
restore. A symlink that points outside the root is not created and is reported; it is common in
real sites (`→ /etc/...`) and harmless once nothing can be written through it. Files are written
under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CHUNK = 1024 * 1024
ALLOWED = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE}


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

    def write(self, root: Path, relative: str, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        if member.type not in ALLOWED:
            raise RefusedMember(f"{member.name}: {_kind(member)} are not restored")
        parts = _checked_parts(member.name, relative)
        self._check_collision(root, member.name, parts)
        path = _inside(root, parts, member.name)
        if member.isdir():
            self._make_dir(path, member)
        elif member.issym():
            self._make_symlink(path, parts, member)
        else:
            self._make_file(path, member, data)

    def finish(self) -> None:
        """Directory times last: writing into a directory changes its mtime."""
        for path, mtime in reversed(self._directories):
            os.utime(path, (mtime, mtime), follow_symlinks=False)

    def _check_collision(self, root: Path, name: str, parts: list[str]) -> None:
        key = unicodedata.normalize("NFC", "/".join(parts)).casefold()
        earlier = self._seen.setdefault((root, key), name)
        if earlier != name:
            raise RefusedMember(f"{name}: collides with {earlier} when case and Unicode normalisation are ignored")

    def _make_dir(self, path: Path, member: tarfile.TarInfo) -> None:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise RefusedMember(f"{member.name}: a non-directory is in the way")
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, _mode(member))
        _chown(path, member)
        self._directories.append((path, int(member.mtime)))

    def _make_symlink(self, path: Path, parts: list[str], member: tarfile.TarInfo) -> None:
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(*parts[:-1], target)) if parts[:-1] else posixpath.normpath(target)
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            # not created (a later member could be written through it); the restore goes on
            self.refused_links.append(f"{member.name} -> {target}")
            return
        if path.is_symlink() or path.exists():
            if not self.overwrite:
                self.kept += 1
                return
            if path.is_dir() and not path.is_symlink():
                raise RefusedMember(f"{member.name}: a directory is in the way")
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        _chown(path, member)
        self.written += 1

    def _make_file(self, path: Path, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        if path.is_symlink() or path.is_dir():
            raise RefusedMember(f"{member.name}: a link or directory is in the way")
        if path.exists() and not self.overwrite:
            self.kept += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.restoring")
        digest = hashlib.sha256()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                while data is not None and (chunk := data.read(CHUNK)):
                    digest.update(chunk)
                    handle.write(chunk)
            os.chmod(temporary, _mode(member))
            _chown(temporary, member)
            os.utime(temporary, (member.mtime, member.mtime))
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.digests[member.name] = digest.hexdigest()
        self.written += 1


def _kind(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return "hard links"
    if member.isdev() or member.isfifo():
        return "device files and FIFOs"
    return "special members"


def check_name(name: str) -> None:
    """Refuse absolute, `..`-climbing and malformed member names."""
    if "\0" in name or name.startswith("/"):
        raise RefusedMember(f"{name}: absolute or malformed name")
    if ".." in name.split("/"):
        raise RefusedMember(f"{name}: name climbs out with ..")


def _checked_parts(name: str, relative: str) -> list[str]:
    check_name(name)
    check_name(relative)
    return [part for part in relative.split("/") if part not in ("", ".")]


def _inside(root: Path, parts: list[str], name: str) -> Path:
    """`root/parts…`, refusing a path that passes through an existing symlink."""
    path = root
    for part in parts[:-1]:
        path = path / part
        if path.is_symlink():
            raise RefusedMember(f"{name}: passes through the symlink {path}")
    return path / parts[-1] if parts else root


def _mode(member: tarfile.TarInfo) -> int:
    return stat.S_IMODE(member.mode) & ~(stat.S_ISUID | stat.S_ISGID)


def _chown(path: Path, member: tarfile.TarInfo) -> None:
    if os.geteuid() == 0:
        os.lchown(path, member.uid, member.gid)
