"""Reading a tar stream, member by member, fast and without trusting it.

Python's `tarfile` costs about 100 µs per member in stream mode (buffer copies, a file object per
member, a member list kept for the whole archive): more than writing the file itself. This
reader parses the dialects a backup can hold — ustar, pax extended headers (``x``, ``g``) and GNU
long names (``L``, ``K``) — and hands out each member's data as memoryviews of one read buffer,
so a small file costs one slice. Names stay byte-exact (decoded with ``surrogateescape``) and
every header's checksum is checked. A stream that stops before the end-of-archive block raises
`ArchiveTruncated`; a header that is not a tar header raises `ArchiveDamaged`. Member types are
reported as they are: deciding what may be written is the extractor's job.

A header is parsed in C when the optional extension ``_tarheader`` is built (0.7 instead of
2.3 µs); it takes the common case and leaves anything else, damage included, to `_parse_header`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from zlib import adler32 as _adler32

parse_header: Callable[[bytes], tuple[str, bytes, int, int, int, int, int, str] | None] | None
try:
    from hostbackup.restore._tarheader import parse_header
except ImportError:  # built without a C compiler: `_parse_header` does the same, slower
    parse_header = None

BLOCK = 512
READ_SIZE = 1 << 20
MAX_EXTENDED_HEADER = 1 << 20  # a pax or GNU long-name body is read into memory: bounded

REGTYPE, AREGTYPE, CONTTYPE = b"0", b"\0", b"7"
LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = b"1", b"2", b"3", b"4", b"5", b"6"
_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK = b"x", b"g", b"L", b"K"
_REGULAR = (REGTYPE, AREGTYPE, CONTTYPE)
_ZERO_BLOCK = bytes(BLOCK)
_PAD = b"\0 "  # what may follow the digits of a numeric field
# name, mode, uid, gid, size, mtime, checksum, type, linkname, magic (+version), …, prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s82x155s")


class ArchiveTruncated(EOFError):
    """The stream ended before the archive did."""


class ArchiveDamaged(ValueError):
    """Bytes that are not a valid tar header where one must be."""


@dataclass(slots=True)
class Member:
    """One archive member, with the attributes the extractor needs (`tarfile.TarInfo`'s names)."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str = ""

    def isfile(self) -> bool:
        return self.type in _REGULAR

    def isdir(self) -> bool:
        return self.type == DIRTYPE

    def issym(self) -> bool:
        return self.type == SYMTYPE

    def islnk(self) -> bool:
        return self.type == LNKTYPE

    def isdev(self) -> bool:
        return self.type in (CHRTYPE, BLKTYPE, FIFOTYPE)


class TarReader:
    """Iterate `members()`; read each regular member's data with `data()` before the next one.

    ``read`` is the decompressed stream's read function. Data views are only valid until the
    next call into the reader (the buffer is reused); data not read is skipped.
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buffer = b""
        self._position = 0
        self._unread = 0  # data bytes plus padding of the current member not consumed yet
        self._pending = 0  # of which data (the rest is padding)
        self.consumed = 0  # bytes of tar stream consumed so far, for progress
        self._defaults: dict[str, bytes] = {}  # pax global records: they apply to every later member

    def members(self) -> Iterator[Member]:
        overrides: dict[str, bytes] = {}
        defaults = self._defaults
        while True:
            self._skip_rest()
            block = self._take(BLOCK)
            if block == _ZERO_BLOCK:
                return
            member = _parse_header(block)
            if member.type in (_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                if not 0 <= member.size <= MAX_EXTENDED_HEADER:
                    raise ArchiveDamaged(f"an extended header of {member.size} bytes")
                body = self._take(member.size + -member.size % BLOCK)[: member.size]
                if member.type == _PAX:
                    overrides.update(_pax_records(body))
                elif member.type == _PAX_GLOBAL:
                    defaults.update(_pax_records(body))
                else:
                    key = "path" if member.type == _GNU_LONGNAME else "linkpath"
                    overrides[key] = body.split(b"\0", 1)[0]
                continue
            if overrides or defaults:
                _apply_records(member, {**defaults, **overrides})
                overrides = {}
            if member.size < 0:
                raise ArchiveDamaged(f"{member.name}: negative size")
            if member.isdir():
                member.name = member.name.rstrip("/") or member.name  # as tarfile names them ("/" stays)
            if member.isdir() or member.issym() or member.islnk() or member.isdev():
                member.size = 0  # headers of data-less members may carry a size; tar ignores it
            self._pending = member.size
            self._unread = member.size + -member.size % BLOCK
            yield member

    def files_in(self, directory: str) -> Iterator[tuple[Member, memoryview]]:
        """The regular files that come next in the stream, directly in `directory`, with their data.

        Call it between two members of `members`. A directory's files usually follow each other,
        and this loop takes each with one header parse and one slice: no extended headers, no
        checks of other member types. It stops at the first member that is anything else (a
        subdirectory, an extended header, a file whose data is not in the read buffer yet), or at
        the end of the buffer, and leaves that member to `members`.
        """
        self._skip_rest()
        if self._defaults:
            return
        prefix = directory + "/"
        start = len(prefix)
        buffer = self._buffer
        while (header_end := (position := self._position) + BLOCK) <= len(buffer):
            block = buffer[position:header_end]
            if block == _ZERO_BLOCK:
                return
            member = _parse_header(block)
            end = header_end + member.size + -member.size % BLOCK
            name = member.name
            if (
                member.type not in _REGULAR or not name.startswith(prefix) or "/" in name[start:]
                or name[start:] in ("", ".", "..") or member.size < 0 or end > len(buffer)
            ):  # fmt: skip
                return
            self._position = end
            self.consumed += end - position
            yield member, memoryview(buffer)[header_end : header_end + member.size]

    def data(self) -> Iterator[memoryview]:
        """The current member's data as views into the read buffer, in order."""
        while self._pending:
            view = self._view(min(self._pending, READ_SIZE))
            self._pending -= len(view)
            self._unread -= len(view)
            yield view

    def read_all(self, limit: int | None = None) -> bytes:
        """The current member's data in memory; a member larger than `limit` is refused as damage."""
        if limit is not None and self._pending > limit:
            raise ArchiveDamaged(f"a member of {self._pending} bytes where at most {limit} are allowed")
        return b"".join(bytes(view) for view in self.data())

    def _skip_rest(self) -> None:
        while self._unread:
            self._unread -= len(self._view(min(self._unread, READ_SIZE)))
        self._pending = 0

    def _view(self, most: int) -> memoryview:
        """Up to `most` bytes (at least one) at the read position, without copying."""
        if self._position == len(self._buffer):
            self._buffer = self._read(READ_SIZE)
            self._position = 0
            if not self._buffer:
                raise ArchiveTruncated("the archive ends in the middle of a member")
        start = self._position
        self._position = min(len(self._buffer), start + most)
        self.consumed += self._position - start
        return memoryview(self._buffer)[start : self._position]

    def _take(self, count: int) -> bytes:
        """Exactly `count` bytes (a header, a pax body)."""
        if len(self._buffer) - self._position >= count:
            start = self._position
            self._position += count
            self.consumed += count
            return self._buffer[start : self._position]
        parts = []
        while count:
            try:
                view = self._view(count)
            except ArchiveTruncated:
                raise ArchiveTruncated("the archive ends before its end-of-archive block") from None
            parts.append(bytes(view))
            count -= len(view)
        return b"".join(parts)


def _parse_header(block: bytes) -> Member:
    if parse_header is not None and (fields := parse_header(block)) is not None:
        return Member(*fields)
    (name, mode, uid, gid, size, mtime, stored, kind, linkname, magic, prefix) = _HEADER.unpack_from(block)
    try:
        checksum = int(stored.rstrip(_PAD) or b"0", 8)
    except ValueError:
        checksum = _number(stored, "checksum")
    if checksum != _header_sum(block, stored):
        raise ArchiveDamaged("a tar header with a wrong checksum (not a tar archive, or damaged)")
    name = name.split(b"\0", 1)[0]
    if magic == b"ustar\0" and prefix[0]:  # POSIX: a prefix field holds the leading directories
        name = prefix.split(b"\0", 1)[0] + b"/" + name
    if kind == AREGTYPE and name.endswith(b"/"):
        kind = DIRTYPE  # pre-POSIX directories
    try:
        if (mode[0] | uid[0] | gid[0] | size[0] | mtime[0]) & 0x80:  # GNU base-256: rare, the slow path
            raise ValueError
        # unrolled, not a list comprehension: this runs once per member and the comprehension has a frame
        mode_ = int(mode.rstrip(_PAD) or b"0", 8)
        uid_ = int(uid.rstrip(_PAD) or b"0", 8)
        gid_ = int(gid.rstrip(_PAD) or b"0", 8)
        size_ = int(size.rstrip(_PAD) or b"0", 8)
        mtime_ = int(mtime.rstrip(_PAD) or b"0", 8)
    except ValueError:  # base-256, or a malformed field, which `_number` names
        mode_, uid_, gid_, size_, mtime_ = (_number(field, what) for field, what in (
            (mode, "mode"), (uid, "uid"), (gid, "gid"), (size, "size"), (mtime, "mtime")))  # fmt: skip
    link = _text(linkname.split(b"\0", 1)[0]) if linkname[0] else ""
    return Member(_text(name), kind, mode_, uid_, gid_, size_, mtime_, link)


def _header_sum(block: bytes, stored: bytes) -> int:
    """Sum of the header's bytes with the checksum field (`stored`) counted as spaces (see archive.py)."""
    # adler32's low half is the byte sum modulo 65521: exact for 256 bytes (at most 65 280)
    return (_adler32(block[:256], 0) & 0xFFFF) + (_adler32(block[256:], 0) & 0xFFFF) - sum(stored) + 8 * 0x20


def _number(field: bytes, what: str) -> int:
    """Octal (NUL/space padded), or GNU base-256 when the first byte has its high bit set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else value
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise ArchiveDamaged(f"a tar header with a malformed {what} field") from None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _pax_records(body: bytes) -> dict[str, bytes]:
    """``"<length> key=value\\n"`` records; malformed ones are damage."""
    records: dict[str, bytes] = {}
    position = 0
    while position < len(body) and body[position] != 0:
        space = body.find(b" ", position)
        try:
            length = int(body[position:space])
        except ValueError:
            raise ArchiveDamaged("a malformed pax header record") from None
        record = body[space + 1 : position + length]
        if length <= 0 or space < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveDamaged("a malformed pax header record")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value
        position += length
    return records


def _apply_records(member: Member, records: dict[str, bytes]) -> None:
    try:
        if "path" in records:
            member.name = _text(records["path"])
        if "linkpath" in records:
            member.linkname = _text(records["linkpath"])
        if "size" in records:
            member.size = int(records["size"])
        if "mtime" in records:
            member.mtime = int(float(records["mtime"]))
        if "uid" in records:
            member.uid = int(records["uid"])
        if "gid" in records:
            member.gid = int(records["gid"])
    except ValueError:
        raise ArchiveDamaged(f"{member.name}: a malformed pax header value") from None
