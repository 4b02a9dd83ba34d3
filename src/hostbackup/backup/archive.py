"""The streaming archive writer: files → POSIX pax tar → zstd → a binary sink.

This is the hot path of every backup, so it is written for throughput and bounded memory rather
than generality:

* Tar headers are emitted here, not by the stdlib ``tarfile`` module (measured ~4x slower in stream
  mode, see the design notes). A member gets a plain ustar header; a pax extended header is added
  only when a value does not fit ustar (long or non-ASCII names, sizes ≥ 8 GiB, large ids, mtimes
  out of range). Names are raw bytes end to end: a non-UTF-8 name stays raw in the ustar fields
  when it fits and otherwise goes into a pax ``path`` record flagged ``hdrcharset=BINARY``; GNU tar
  and Python's tarfile both restore the identical byte string.
* Small files (under 64 KiB, most of a hosting account) go through one C call when the optional
  extension ``_smallfiles`` is built: it writes the same header, data and checksum line as the
  Python path below, which takes over whenever a file is anything but ordinary.
* File data is copied with ``readv`` into ONE reused 1 MiB buffer; the same buffer is hashed
  (SHA-256, for the checksum list) and handed to the compressor, so per-file work is a few
  syscalls and no allocation proportional to file size. Headers and small files are batched in a
  staging buffer so zstd sees large writes; zstd's own worker threads compress while Python reads.
* Trees are walked iteratively with directory file descriptors (``openat`` semantics,
  ``O_NOFOLLOW``): a customer who swaps a directory or file for a symlink in the middle of a backup
  cannot make the backup (typically running as root) read outside the tree. Names are sorted
  bytewise so the same tree always yields the same member order.
* Files that change while being read never abort a backup: a file that shrinks is padded with
  zeros to the size announced in its header, one that grows is cut at that size, one that vanished
  is skipped; each case is recorded in `ArchiveWriter.warnings`.
* The last member is a ``sha256sum``-format checksum list of every regular-file member, so an
  extracted backup verifies with ``sha256sum -c SHA256SUMS`` and no hostbackup installed. The list
  is spooled (memory, then a temp file) so it does not grow memory with the number of files.

The on-disk format is documented in ``docs/backup-format.md``.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import logging
import os
import pwd
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, TypeVar, cast

import zstandard

pack_small_file: (
    Callable[[int, bytes, bytes, bytearray, bytearray, dict[int, bytes], dict[int, bytes]], tuple[int, int] | None]
    | None
)
try:
    from hostbackup.backup._smallfiles import pack_small_file
except ImportError:  # built without a C compiler: `_copy_small_file` below does the same, slower
    pack_small_file = None

__all__ = [
    "CHECKSUM_ARCNAME",
    "COPY_BUFFER_SIZE",
    "DEFAULT_THREADS",
    "PROGRESS_INTERVAL",
    "SPOOL_MAX_MEMORY",
    "ArchiveWriter",
    "BinarySink",
    "encode_header",
    "normalize_arcname",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Archive-root name of the checksum list appended by `ArchiveWriter.close`.
CHECKSUM_ARCNAME = "SHA256SUMS"
#: Size of the one reused read buffer.
COPY_BUFFER_SIZE = 1 << 20
#: The checksum list is kept in memory up to this size, then in a temporary file in ``spool_dir``.
SPOOL_MAX_MEMORY = 8 << 20
#: The progress callback fires each time this many more bytes of file data have been read; it is
#: also where a stopped task learns it must stop, so it must come often even at slow levels.
PROGRESS_INTERVAL = 1 << 20
#: zstd job size with worker threads; level 3's default keeps about 80 MiB of job buffers. On the 1 GiB
#: bench corpus through the API (BENCHMARKS.md): 4 MiB jobs peaked at 152 MiB (over the 150 MiB
#: target), 3 MiB at 141 MiB with 0.3 % larger output, 2 MiB at 127 MiB but about 7 % slower.
ZSTD_JOB_SIZE = 3 << 20
#: zstd worker threads: one per logical CPU (python-zstandard's ``-1``).
DEFAULT_THREADS = -1

BLOCK_SIZE = 512
RECORD_SIZE = 20 * BLOCK_SIZE  # GNU tar's default blocking factor; the end is padded to it
_STAGE_FLUSH = 1 << 20  # staging buffer is handed to the compressor once it holds this much
_DIRECT_WRITE = 64 << 10  # data chunks at least this large bypass the staging buffer
_ZEROS = bytes(BLOCK_SIZE)

_MAX_OCTAL_7 = 0o7777777  # 8-byte numeric fields (mode, uid, gid)
_MAX_OCTAL_11 = 0o77777777777  # 12-byte numeric fields (size, mtime): 8 GiB - 1
_NAME_MAX = 100
_PREFIX_MAX = 155
_OWNER_MAX = 31  # uname/gname: 32 bytes including the terminating NUL

REGTYPE = b"0"
SYMTYPE = b"2"
DIRTYPE = b"5"
XHDTYPE = b"x"

_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
_CHECKSUM_SLICE = slice(148, 156)
_BLANK_CHECKSUM = b" " * 8
_ZERO_DEVICE = b"0000000\0"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_SPECIAL_KINDS = {
    stat.S_IFSOCK: "socket",
    stat.S_IFIFO: "fifo",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


class Spool(Protocol):
    """A temporary file that holds a whole member's data (`ArchiveWriter.add_spooled`)."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def readinto(self, buffer: memoryview, /) -> int: ...


class BinarySink(Protocol):
    """Where the archive bytes go; it must consume ``data`` before returning (buffers are reused)."""

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


# -- header encoding ------------------------------------------------------------------------------


def encode_header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes = b"",
    uname: bytes = b"",
    gname: bytes = b"",
) -> bytes | bytearray:
    """Return the header blocks of one member: a pax extended header if needed, then ustar.

    ``name`` is the member name as raw bytes (directories end with ``/``). Values that fit ustar
    go there; anything else is carried by a pax record and the ustar field gets a placeholder.
    """
    return _encode_header(name, typeflag, mode, uid, gid, size, mtime, linkname, uname, gname)


def _encode_header(
    name: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes,
    uname: bytes,
    gname: bytes,
) -> bytes | bytearray:
    """`encode_header` with positional arguments, for the per-file hot path."""
    if len(name) <= _NAME_MAX and name.isascii():
        ustar_name, prefix = name, b""
        records: list[tuple[bytes, bytes]] = []
    else:
        ustar_name, prefix, records = _name_fields(name)
    if size > _MAX_OCTAL_11 or not 0 <= mtime <= _MAX_OCTAL_11 or uid > _MAX_OCTAL_7 or gid > _MAX_OCTAL_7:
        size, mtime, uid, gid = _numeric_records(records, size, mtime, uid, gid)
    if linkname and (len(linkname) > _NAME_MAX or not _is_raw_ok(linkname)):
        records.append((b"linkpath", linkname))
        linkname = linkname[:_NAME_MAX]
    if len(uname) > _OWNER_MAX or len(gname) > _OWNER_MAX or not _is_raw_ok(uname + gname):
        uname, gname = _owner_records(records, uname, gname)
    header = _ustar_block(ustar_name, prefix, typeflag, mode, uid, gid, size, mtime, linkname, uname, gname)
    if not records:
        return header
    return _pax_header(name, records, mtime) + header


def _name_fields(name: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """Split ``name`` into ustar name/prefix fields, adding a pax ``path`` record when needed.

    A name that does not fit ustar always gets a pax record. One that fits gets a record only when
    it is non-ASCII UTF-8 (so readers convert it to their locale); a non-UTF-8 name that fits stays
    as raw bytes in the ustar fields, which every tar reads back verbatim without complaint.
    """
    fit = _split_ustar_name(name)
    if fit is None:
        return name[:_NAME_MAX], b"", [(b"path", name)]
    records = [] if _is_raw_ok(name) else [(b"path", name)]
    return fit[1], fit[0], records


def _split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """Return (prefix, name) fields for ``name``, or None when it cannot be stored in ustar."""
    if len(name) <= _NAME_MAX:
        return b"", name
    # Rightmost '/' that leaves a prefix of <= 155 bytes; a directory's trailing '/' stays in name.
    cut = name.rfind(b"/", 0, min(_PREFIX_MAX + 1, len(name) - 1))
    if cut <= 0 or len(name) - cut - 1 > _NAME_MAX:
        return None
    return name[:cut], name[cut + 1 :]


def _numeric_records(
    records: list[tuple[bytes, bytes]], size: int, mtime: int, uid: int, gid: int
) -> tuple[int, int, int, int]:
    """Move numeric values that overflow ustar into pax records; return ustar placeholders."""
    if size > _MAX_OCTAL_11:
        records.append((b"size", b"%d" % size))
        size = 0
    if not 0 <= mtime <= _MAX_OCTAL_11:
        records.append((b"mtime", b"%d" % mtime))
        mtime = min(max(mtime, 0), _MAX_OCTAL_11)
    if uid > _MAX_OCTAL_7:
        records.append((b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX_OCTAL_7:
        records.append((b"gid", b"%d" % gid))
        gid = 0
    return size, mtime, uid, gid


def _owner_records(records: list[tuple[bytes, bytes]], uname: bytes, gname: bytes) -> tuple[bytes, bytes]:
    if len(uname) > _OWNER_MAX or not _is_raw_ok(uname):
        records.append((b"uname", uname))
        uname = b""
    if len(gname) > _OWNER_MAX or not _is_raw_ok(gname):
        records.append((b"gname", gname))
        gname = b""
    return uname, gname


def _ustar_block(
    name: bytes,
    prefix: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes,
    uname: bytes,
    gname: bytes,
) -> bytearray:
    block = bytearray(
        _HEADER.pack(
            name,
            b"%07o\0" % mode,
            b"%07o\0" % uid,
            b"%07o\0" % gid,
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            _BLANK_CHECKSUM,
            typeflag,
            linkname,
            b"ustar\0",
            b"00",
            uname,
            gname,
            _ZERO_DEVICE,
            _ZERO_DEVICE,
            prefix,
            b"",
        )
    )
    # The checksum is the plain sum of the header bytes, computed ~5x faster than sum(block):
    # Adler-32 started at 0 keeps the byte sum modulo 65521 in its low 16 bits, and each 256-byte
    # half sums to at most 65280, so the modulo never applies and the two halves add up exactly.
    view = memoryview(block)
    checksum = (zlib.adler32(view[:256], 0) & 0xFFFF) + (zlib.adler32(view[256:], 0) & 0xFFFF)
    block[_CHECKSUM_SLICE] = b"%06o\0 " % checksum
    return block


def _pax_header(name: bytes, records: list[tuple[bytes, bytes]], mtime: int) -> bytearray:
    """Encode a typeflag 'x' member holding ``records`` for the member called ``name``."""
    binary = any(key in (b"path", b"linkpath", b"uname", b"gname") and not _is_utf8(value) for key, value in records)
    if binary:
        records = [(b"hdrcharset", b"BINARY"), *records]
    body = b"".join(_pax_record(key, value) for key, value in records)
    header = _ustar_block(_pax_member_name(name), b"", XHDTYPE, 0o644, 0, 0, len(body), mtime, b"", b"", b"")
    header += body
    header += _ZEROS[: -len(body) % BLOCK_SIZE]
    return header


def _pax_record(key: bytes, value: bytes) -> bytes:
    """``"<len> key=value\\n"`` where <len> counts the whole record including its own digits."""
    payload = len(key) + len(value) + 3  # ' ', '=', '\n'
    length = payload + len(str(payload))
    if len(str(length)) != len(str(payload)):
        length = payload + len(str(length))
    return b"%d %s=%s\n" % (length, key, value)


def _pax_member_name(name: bytes) -> bytes:
    """GNU tar's ``%d/PaxHeaders/%f`` naming, shortened when it would not fit the name field."""
    directory, _, base = name.rstrip(b"/").rpartition(b"/")
    pax_name = (directory or b".") + b"/PaxHeaders/" + base
    if len(pax_name) > _NAME_MAX:
        pax_name = b"./PaxHeaders/" + base[: _NAME_MAX - 13]
    return pax_name


def _is_raw_ok(value: bytes) -> bool:
    """Whether a string that fits its ustar field may stay there: ASCII, or not UTF-8 at all."""
    return value.isascii() or not _is_utf8(value)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- names ----------------------------------------------------------------------------------------


def normalize_arcname(arcname: str) -> bytes:
    """Return ``arcname`` as a relative POSIX member name in raw bytes, or raise ValueError.

    Empty and ``.`` components are dropped; absolute names, ``..`` components and NUL are refused.
    Surrogate-escaped ``str`` (from ``os.fsdecode``) maps back to the original bytes.
    """
    raw = os.fsencode(arcname)
    if raw.startswith(b"/") or b"\0" in raw:
        raise ValueError(f"member name must be relative and without NUL: {arcname!r}")
    parts = [part for part in raw.split(b"/") if part not in (b"", b".")]
    if not parts or b".." in parts:
        raise ValueError(f"invalid member name: {arcname!r}")
    return b"/".join(parts)


def _display(member: bytes) -> str:
    """A printable form of a member name for warnings (undecodable bytes shown as ``\\xNN``)."""
    return member.decode("utf-8", "backslashreplace")


def _checksum_line(hexdigest: bytes, member: bytes) -> bytes:
    """One line in GNU ``sha256sum`` text format, escaping names as coreutils 9 does."""
    if b"\\" in member or b"\n" in member or b"\r" in member:
        escaped = member.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        return b"\\" + hexdigest + b"  " + escaped + b"\n"
    return hexdigest + b"  " + member + b"\n"


# -- source helpers (everything that may fail because the tree changes under us) ---------------


class _ChangedType(Exception):
    """The entry is no longer the kind of object the directory listing said it was."""


def _entry_kind(entry: os.DirEntry[str]) -> int:
    """The S_IFMT type of a directory entry, from d_type when the filesystem provides it."""
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)


def _open_checked(
    name: bytes, dir_fd: int | None, flags: int, is_kind: Callable[[int], bool]
) -> tuple[int, os.stat_result]:
    """Open ``name`` without following a symlink and check the opened object's type."""
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not is_kind(st.st_mode):
        os.close(fd)
        raise _ChangedType
    return fd, st


def _read_symlink(entry: os.DirEntry[str], name: bytes, dir_fd: int) -> tuple[os.stat_result, bytes]:
    return entry.stat(follow_symlinks=False), os.readlink(name, dir_fd=dir_fd)


def _has_more(readinto: Callable[[memoryview], int], view: memoryview) -> bool:
    """True when one more byte can be read (the source grew); read errors count as no."""
    try:
        return readinto(view[:1]) > 0
    except OSError:
        return False


# -- the writer -----------------------------------------------------------------------------------

_DirFrame = tuple[int, bytes, Iterator[tuple[bytes, os.DirEntry[str]]]]


class ArchiveWriter:
    """Write a pax tar stream (zstd-compressed unless ``compress=False``) into ``sink``.

    Add content with `add_tree`, `add_file`, `add_bytes` and `add_spooled`, then call `close`,
    which appends the checksum list and ends the tar stream and the zstd frame. The sink itself is
    never closed. ``warnings`` collects what was skipped or changed; ``members`` and ``bytes_in``
    (file data read so far) feed progress reports, and ``progress`` is called with ``bytes_in``
    every `PROGRESS_INTERVAL` bytes.
    """

    def __init__(
        self,
        sink: BinarySink,
        *,
        compress: bool = True,
        level: int = 3,
        threads: int = DEFAULT_THREADS,
        spool_dir: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.warnings: list[str] = []
        self.members = 0
        self.bytes_in = 0
        self.progress = progress
        self._next_progress = PROGRESS_INTERVAL
        self._sink = sink
        self._compressor: zstandard.ZstdCompressionWriter | None = None
        self._out: BinarySink = sink
        if compress:
            params = zstandard.ZstdCompressionParameters.from_level(
                level, threads=threads, job_size=ZSTD_JOB_SIZE if threads else 0, write_checksum=1
            )
            cctx = zstandard.ZstdCompressor(compression_params=params)
            # python-zstandard only ever calls write() (and flush() when present) on its writer.
            self._compressor = cctx.stream_writer(cast(IO[bytes], sink), closefd=False)
            self._out = self._compressor
        self._view = memoryview(bytearray(COPY_BUFFER_SIZE))
        self._stage = bytearray()
        self._written = 0  # tar bytes handed to the compressor/sink (the stage not included)
        self._spool_dir = spool_dir
        self._sums = self._spool()
        self._sum_lines = bytearray()  # batched before going to the spool file
        self._closed = False
        self._unames: dict[int, bytes] = {}
        self._gnames: dict[int, bytes] = {}
        self._default_mtime = int(time.time())
        self._newest_mtime = 0  # of the archived files: the checksum list's date
        self._own_ids = (os.geteuid(), os.getegid())

    # -- public API -------------------------------------------------------------------------------

    def add_tree(self, root: Path, arcprefix: str) -> None:
        """Add ``root`` and everything below it under ``arcprefix`` (``""``: at the archive root).

        ``root`` itself is trusted and may be a symlink; nothing below it is ever followed.
        """
        prefix = b"" if arcprefix.strip("/.") == "" else normalize_arcname(arcprefix)
        root_fd = os.open(root, _ROOT_FLAGS)
        try:
            if prefix:
                prefix += b"/"
                self._emit_member(prefix, DIRTYPE, os.fstat(root_fd))
            frame = (root_fd, prefix, self._list_dir(root_fd, prefix))
        except BaseException:
            os.close(root_fd)
            raise
        self._walk(frame)

    def add_file(self, path: Path, arcname: str) -> None:
        """Add one filesystem object (regular file, symlink, or a directory without its contents)."""
        member = normalize_arcname(arcname)
        raw_path = os.fsencode(path)
        st = self._from_source(member, os.lstat, raw_path)
        if st is None:
            return
        if stat.S_ISREG(st.st_mode):
            self._add_regular(raw_path, member, None)
        elif stat.S_ISDIR(st.st_mode):
            self._emit_member(member + b"/", DIRTYPE, st)
        elif stat.S_ISLNK(st.st_mode):
            target = self._from_source(member, os.readlink, raw_path)
            if target is not None:
                self._emit_member(member, SYMTYPE, st, linkname=target)
        else:
            self._skip_special(member, st.st_mode)

    def add_bytes(self, arcname: str, data: bytes, *, mode: int = 0o600, mtime: float | None = None) -> None:
        """Add a regular file with the given content (configuration dumps, metadata)."""
        member = normalize_arcname(arcname)
        view = memoryview(data).cast("B")
        self._emit(self._generated_header(member, len(view), mode, mtime))
        digest = hashlib.sha256(view)
        self._emit_data(view)
        self._emit(_ZEROS[: -len(view) % BLOCK_SIZE])
        self._count_bytes(len(view))
        self._end_regular(member, digest)

    def add_spooled(self, arcname: str, spool: Spool, *, mode: int = 0o600, mtime: float | None = None) -> None:
        """Add a regular file whose whole data a temporary file holds (`spool`, read from its start to
        its end): a stream that was spooled before, like a database dump run ahead of its turn."""
        member = normalize_arcname(arcname)
        size = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        self._emit(self._generated_header(member, size, mode, mtime))
        digest, _ = self._copy_data(spool.readinto, size)
        self._end_regular(member, digest)

    def close(self) -> None:
        """Append the checksum list and the end-of-archive blocks; end the zstd frame.

        The sink is flushed but not closed. Calling close twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        self._append_checksum_list()
        self._emit(bytes(2 * BLOCK_SIZE))
        self._emit(bytes(-(self._written + len(self._stage)) % RECORD_SIZE))
        self._flush_stage()
        if self._compressor is not None:
            self._compressor.flush(zstandard.FLUSH_FRAME)  # ends the frame; the sink stays open
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close on success only: a failed backup must not end with a valid-looking archive."""
        if exc_type is None:
            self.close()
        else:
            self._sums.close()

    # -- tree walk --------------------------------------------------------------------------------

    def _walk(self, top: _DirFrame) -> None:
        """Depth-first, pre-order walk without recursion; one open directory fd per level."""
        stack = [top]
        try:
            while stack:
                dir_fd, prefix, entries = stack[-1]
                for name, entry in entries:
                    child = self._add_entry(dir_fd, prefix, name, entry)
                    if child is not None:
                        stack.append(child)
                        break
                else:
                    stack.pop()
                    os.close(dir_fd)
        finally:
            for dir_fd, _, _ in stack:
                os.close(dir_fd)

    def _list_dir(self, dir_fd: int, prefix: bytes) -> Iterator[tuple[bytes, os.DirEntry[str]]]:
        try:
            with os.scandir(dir_fd) as scan:
                entries = sorted((os.fsencode(entry.name), entry) for entry in scan)
        except OSError as exc:
            self._warn(f"cannot list directory: {_display(prefix)} ({exc.strerror})")
            entries = []
        return iter(entries)

    def _add_entry(self, dir_fd: int, prefix: bytes, name: bytes, entry: os.DirEntry[str]) -> _DirFrame | None:
        """Add one directory entry; return a frame to descend into when it is a directory."""
        member = prefix + name
        try:
            regular = entry.is_file(follow_symlinks=False)  # d_type: no syscall on most filesystems
        except OSError:
            regular = False
        if regular:
            if not self._pack_small_file(dir_fd, name, member):
                self._add_regular(name, member, dir_fd)
            return None
        kind = self._from_source(member, _entry_kind, entry)
        if kind == stat.S_IFREG:
            self._add_regular(name, member, dir_fd)
        elif kind == stat.S_IFDIR:
            return self._enter_dir(dir_fd, name, member + b"/")
        elif kind == stat.S_IFLNK:
            link = self._from_source(member, _read_symlink, entry, name, dir_fd)
            if link is not None:
                self._emit_member(member, SYMTYPE, link[0], linkname=link[1])
        elif kind is not None:
            self._skip_special(member, kind)
        return None

    def _enter_dir(self, dir_fd: int, name: bytes, member: bytes) -> _DirFrame | None:
        opened = self._from_source(member, _open_checked, name, dir_fd, _DIR_FLAGS, stat.S_ISDIR)
        if opened is None:
            return None
        fd, st = opened
        try:
            self._emit_member(member, DIRTYPE, st)
            return fd, member, self._list_dir(fd, member)
        except BaseException:
            os.close(fd)
            raise

    def _skip_special(self, member: bytes, mode: int) -> None:
        kind = _SPECIAL_KINDS.get(stat.S_IFMT(mode), "file of unknown type")
        self._warn(f"skipped {kind}: {_display(member)}")

    # -- regular files ----------------------------------------------------------------------------

    def _add_regular(self, name: bytes, member: bytes, dir_fd: int | None) -> None:
        """Open without following symlinks, fstat the open file, then stream it."""
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            self._source_failed(member, exc)
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _ChangedType
        except (OSError, _ChangedType) as exc:
            os.close(fd)
            self._source_failed(member, exc)
            return
        try:
            size = st.st_size
            header = self._stat_header(member, REGTYPE, st, size, b"")
            if size < _DIRECT_WRITE:
                digest = self._copy_small_file(fd, size, header, member)
            else:
                self._emit(header)
                digest = self._copy_file(fd, size, member)
        finally:
            os.close(fd)
        self._end_regular(member, digest)

    def _pack_small_file(self, dir_fd: int, name: bytes, member: bytes) -> bool:
        """The common case in C (`pack_small_file`); False when it declined and wrote nothing."""
        if pack_small_file is None:
            return False
        packed = pack_small_file(dir_fd, name, member, self._stage, self._sum_lines, self._unames, self._gnames)
        if packed is None:
            return False
        size, mtime = packed
        self.members += 1
        if mtime > self._newest_mtime:
            self._newest_mtime = mtime
        if len(self._stage) >= _STAGE_FLUSH:
            self._flush_stage()
        if len(self._sum_lines) >= _STAGE_FLUSH:
            self._flush_sum_lines()
        self._count_bytes(size)
        return True

    def _copy_small_file(self, fd: int, size: int, header: bytes | bytearray, member: bytes) -> hashlib._Hash:
        """Most files: one read of size + 1 bytes shows the file is unchanged; stage it all at once.

        Anything unusual (short read, growth, read error) rewinds and takes the general path.
        """
        view = self._view
        try:
            count = os.readv(fd, (view[: size + 1],))
        except OSError:
            count = -1
        if count != size:
            os.lseek(fd, 0, os.SEEK_SET)
            self._emit(header)
            return self._copy_file(fd, size, member)
        data = view[:size]
        stage = self._stage
        stage += header
        stage += data
        stage += _ZEROS[: -size % BLOCK_SIZE]
        if len(stage) >= _STAGE_FLUSH:
            self._flush_stage()
        self._count_bytes(size)
        return hashlib.sha256(data)

    def _copy_file(self, fd: int, size: int, member: bytes) -> hashlib._Hash:
        """Copy exactly ``size`` bytes of ``fd``, whatever the file does meanwhile."""

        def readinto(buffer: memoryview) -> int:
            return os.readv(fd, (buffer,))

        digest, outcome = self._copy_data(readinto, size)
        if outcome:
            self._warn(f"file changed while being read: {_display(member)} ({outcome})")
        return digest

    def _copy_data(self, readinto: Callable[[memoryview], int], size: int) -> tuple[hashlib._Hash, str]:
        """Copy ``size`` bytes from ``readinto`` through the shared buffer into the archive.

        Returns the digest and "" or a description of how the source deviated from ``size``.
        Short reads are treated as EOF only when a read returns 0. The last read asks for one byte
        more than needed so that growth is noticed without an extra syscall.
        """
        view = self._view
        digest = hashlib.sha256()
        remaining = size
        probed = size == 0
        outcome = ""
        while remaining:
            want = remaining + 1 if remaining < COPY_BUFFER_SIZE else COPY_BUFFER_SIZE
            try:
                count = readinto(view[:want])
            except OSError as exc:
                outcome = f"read error: {exc.strerror}"
                break
            if not count:
                break
            probed = want > remaining
            if count > remaining:
                count = remaining
                outcome = "grew, cut at the size it had when opened"
            chunk = view[:count]
            digest.update(chunk)
            self._emit_data(chunk)
            remaining -= count
            self._count_bytes(count)
        if remaining:
            outcome = outcome or f"shrank by {remaining} bytes, padded with zeros"
            self._pad_data(digest, remaining)
        elif not probed and _has_more(readinto, view):
            outcome = "grew, cut at the size it had when opened"
        self._emit(_ZEROS[: -size % BLOCK_SIZE])
        return digest, outcome

    def _pad_data(self, digest: hashlib._Hash, count: int) -> None:
        zeros = bytes(min(count, COPY_BUFFER_SIZE))
        while count:
            chunk = memoryview(zeros)[: min(count, len(zeros))]
            digest.update(chunk)
            self._emit_data(chunk)
            count -= len(chunk)

    def _end_regular(self, member: bytes, digest: hashlib._Hash) -> None:
        """Record a finished regular-file member in the checksum list."""
        self._sum_lines += _checksum_line(digest.hexdigest().encode("ascii"), member)
        if len(self._sum_lines) >= _STAGE_FLUSH:
            self._flush_sum_lines()

    def _flush_sum_lines(self) -> None:
        self._sums.write(self._sum_lines)
        self._sum_lines = bytearray()

    def _append_checksum_list(self) -> None:
        member = normalize_arcname(CHECKSUM_ARCNAME)
        self._sums.write(self._sum_lines)
        size = self._sums.tell()
        self._sums.seek(0)
        # dated like the newest content, not "now": the same tree gives the same bytes
        self._emit(self._generated_header(member, size, 0o600, self._newest_mtime or None))
        self._copy_data(self._sums.readinto, size)
        self._sums.close()

    # -- headers ----------------------------------------------------------------------------------

    def _emit_member(self, member: bytes, typeflag: bytes, st: os.stat_result, *, linkname: bytes = b"") -> None:
        """Emit the header of a member without data (directory, symlink)."""
        self._emit(self._stat_header(member, typeflag, st, 0, linkname))

    def _stat_header(
        self, member: bytes, typeflag: bytes, st: os.stat_result, size: int, linkname: bytes
    ) -> bytes | bytearray:
        """Header for a filesystem object, with its mode, owner and mtime (whole seconds)."""
        uid, gid = st.st_uid, st.st_gid
        mtime = st.st_mtime_ns // 1_000_000_000
        if mtime > self._newest_mtime:
            self._newest_mtime = mtime
        self.members += 1
        return _encode_header(
            member,
            typeflag,
            st.st_mode & 0o7777,
            uid,
            gid,
            size,
            mtime,
            linkname,
            self._uname(uid),
            self._gname(gid),
        )

    def _generated_header(self, member: bytes, size: int, mode: int, mtime: float | None) -> bytes | bytearray:
        """Header for content produced by the backup itself, owned by the running process."""
        uid, gid = self._own_ids
        self.members += 1
        return encode_header(
            member,
            REGTYPE,
            mode=mode & 0o7777,
            uid=uid,
            gid=gid,
            size=size,
            mtime=self._default_mtime if mtime is None else int(mtime // 1),
            uname=self._uname(uid),
            gname=self._gname(gid),
        )

    def _spool(self) -> tempfile.SpooledTemporaryFile[bytes]:
        directory = None if self._spool_dir is None else os.fspath(self._spool_dir)
        return tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY, dir=directory)

    def _uname(self, uid: int) -> bytes:
        name = self._unames.get(uid)
        if name is None:
            try:
                name = os.fsencode(pwd.getpwuid(uid).pw_name)
            except KeyError:
                name = b""
            self._unames[uid] = name
        return name

    def _gname(self, gid: int) -> bytes:
        name = self._gnames.get(gid)
        if name is None:
            try:
                name = os.fsencode(grp.getgrgid(gid).gr_name)
            except KeyError:
                name = b""
            self._gnames[gid] = name
        return name

    # -- output -----------------------------------------------------------------------------------

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        """Queue tar bytes; small pieces are batched so the compressor sees large writes."""
        self._stage += data
        if len(self._stage) >= _STAGE_FLUSH:
            self._flush_stage()

    def _emit_data(self, chunk: memoryview) -> None:
        if len(chunk) < _DIRECT_WRITE:
            self._emit(chunk)
            return
        self._flush_stage()
        self._out.write(chunk)
        self._written += len(chunk)

    def _flush_stage(self) -> None:
        if self._stage:
            self._out.write(self._stage)
            self._written += len(self._stage)
            self._stage = bytearray()

    def _count_bytes(self, count: int) -> None:
        self.bytes_in += count
        if self.bytes_in >= self._next_progress:
            self._next_progress = self.bytes_in + PROGRESS_INTERVAL
            if self.progress is not None:
                self.progress(self.bytes_in)

    def _from_source(self, member: bytes, func: Callable[..., _T], *args: object) -> _T | None:
        """Call a source-side operation; turn races and unreadable entries into warnings.

        Only reads of the tree go through here: errors writing the archive must propagate.
        """
        try:
            return func(*args)
        except (OSError, _ChangedType) as exc:
            self._source_failed(member, exc)
        return None

    def _source_failed(self, member: bytes, exc: OSError | _ChangedType) -> None:
        if isinstance(exc, FileNotFoundError):
            self._warn(f"vanished: {_display(member)}")
        elif isinstance(exc, _ChangedType) or exc.errno in (errno.ELOOP, errno.ENOTDIR):
            # O_NOFOLLOW met a symlink, or a path component stopped being a directory
            self._warn(f"changed type while being read, skipped: {_display(member)}")
        else:
            self._warn(f"cannot read: {_display(member)} ({exc.strerror})")

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)
