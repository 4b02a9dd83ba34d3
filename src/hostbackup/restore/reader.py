"""Reading a backup back: volumes in order → one stream → zstd → tar, with checksums checked.

The volumes are never joined on disk: a reader walks them one after the other. `check_archive`
decompresses everything, hashes every regular member and compares with the SHA256SUMS member
(the archive's own signature), telling a complete, intact archive from a truncated or a
corrupted one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from hostbackup.backup.config_dump import MAX_BYTES, MEMBER_NAME
from hostbackup.backup.volumes import Volume
from hostbackup.restore.decompress import CHUNK, TarStream, decompressed_files
from hostbackup.restore.tarstream import ArchiveDamaged, ArchiveTruncated, TarReader

SUMS_NAME = "SHA256SUMS"


class VolumeMismatch(OSError):
    """A volume's bytes do not match the SHA-256 its metadata records."""

    def __init__(self, volume: str) -> None:
        super().__init__(f"volume {volume} does not match its SHA-256")
        self.volume = volume


class ConcatenatedReader(io.RawIOBase):
    """The volumes as one readable stream; with `expected`, each volume is checked as it ends."""

    def __init__(self, paths: Sequence[Path], expected: Sequence[Volume] = ()) -> None:
        self._paths = list(paths)
        self._expected = list(expected)
        self._handle: io.BufferedReader | None = None
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self._handle is None:
                if not self._paths:
                    return 0
                self._handle = self._paths.pop(0).open("rb")
                self._digest = hashlib.sha256()
            count: int = self._handle.readinto(buffer)
            if count:
                if self._expected:
                    self._digest.update(memoryview(buffer)[:count])
                return count
            self._handle.close()
            self._handle = None
            if self._expected:
                volume = self._expected.pop(0)
                if self._digest.hexdigest() != volume.sha256:
                    raise VolumeMismatch(volume.name)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        super().close()


def open_stream(paths: Sequence[Path]) -> TarStream:
    """The tar stream of volume files, in order; their SHA-256 is not checked here."""
    return decompressed_files(paths, io.BufferedReader(ConcatenatedReader(paths), CHUNK))


def parse_sums(data: bytes) -> dict[bytes, str]:
    """`sha256sum` output → {path: hex}; handles the `\\` escaped form for odd names."""
    sums = {}
    for line in filter(None, data.split(b"\n")):
        escaped = line.startswith(b"\\")
        if escaped:
            line = line[1:]
        digest, _, name = line.partition(b"  ")
        sums[_unescape(name) if escaped else name] = digest.decode()
    return sums


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("\\"): b"\\"}


def _unescape(name: bytes) -> bytes:
    """coreutils' escaping of odd names: `\\n`, `\\r`, `\\\\`, read left to right."""
    out, index = bytearray(), 0
    while index < len(name):
        if name[index] == ord("\\") and index + 1 < len(name) and name[index + 1] in _ESCAPES:
            out += _ESCAPES[name[index + 1]]
            index += 2
        else:
            out.append(name[index])
            index += 1
    return bytes(out)


@dataclass
class ArchiveCheck:
    complete: bool = False
    intact: bool = False
    problem: str = ""
    info: bytes = b""  # the configuration dump
    members: int = 0
    mismatched: list[str] = field(default_factory=list)


def check_archive(paths: Sequence[Path]) -> ArchiveCheck:
    return check_stream(open_stream(paths))


def check_stream(tar_stream: TarStream) -> ArchiveCheck:
    """Read a whole tar stream, hashing members and comparing with its SHA256SUMS member."""
    result = ArchiveCheck()
    digests: dict[bytes, str] = {}
    sums: bytes | None = None
    try:
        with tar_stream:
            archive = TarReader(tar_stream.read)
            for member in archive.members():
                result.members += 1
                if not member.isfile():
                    continue
                if member.name == SUMS_NAME:
                    sums = archive.read_all()
                elif member.name == MEMBER_NAME and not result.info:
                    result.info = archive.read_all(MAX_BYTES)
                    digests[member.name.encode()] = hashlib.sha256(result.info).hexdigest()
                else:
                    digest = hashlib.sha256()
                    for chunk in archive.data():
                        digest.update(chunk)
                    digests[member.name.encode("utf-8", "surrogateescape")] = digest.hexdigest()
            tar_stream.drain()
    except VolumeMismatch:
        raise  # the caller names the volume
    except ArchiveTruncated as exc:
        result.problem = f"the archive ends early ({exc})"
        return result
    except (zstandard.ZstdError, ArchiveDamaged, OSError) as exc:
        result.complete = True
        result.problem = f"the archive is damaged ({exc})"
        return result
    result.complete = True
    if sums is None:
        result.problem = "the archive has no SHA256SUMS member"
        return result
    expected = parse_sums(sums)
    result.mismatched = sorted(
        name.decode(errors="replace")
        for name in expected.keys() | digests.keys()
        if expected.get(name) != digests.get(name)
    )
    if result.mismatched:
        result.problem = f"checksum mismatch: {result.mismatched[0]}"
    result.intact = not result.problem
    return result
