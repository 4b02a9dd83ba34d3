"""Uploads (spec §4.14): multipart bodies streamed straight into the caller's upload folder.

Step one of import-file. The body is parsed as it arrives (python-multipart's push parser), so
a multi-gigabyte volume never sits in memory and never lands twice on disk. Each file part
becomes `<upload root>/<user id>/<name>_<token>`; that path is the opaque `file` value a
client passes back to import-file, and the folder tells whose upload it is.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from hostbackup.storage.layout import sanitise

TOKEN_LENGTH = 8
EXPIRY_SECONDS = 24 * 3600


@dataclass
class UploadedFile:
    name: str  # original name from the part's filename (or field name)
    path: Path | None  # None when writing failed
    error: str = ""


@dataclass
class UploadReceiver:
    """Feed it the body chunk by chunk; it writes each file part into `folder`."""

    folder: Path
    boundary: bytes
    files: list[UploadedFile] = field(default_factory=list)
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _field: bytes = b""
    _value: bytes = b""
    _handle: BinaryIO | None = None
    _current: UploadedFile | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        sweep_expired(self.folder.parent)
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(self.boundary, callbacks)  # type: ignore[arg-type]

    def feed(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> list[UploadedFile]:
        self._parser.finalize()
        self._close(failed=self._handle is not None)  # a part cut off by the end of the body
        return self.files

    def abort(self) -> None:
        self._close(failed=True)
        for upload in self.files:
            if upload.path is not None:
                upload.path.unlink(missing_ok=True)

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"filename" not in options:
            return  # not a file part: ignored (spec §4.14)
        original = options[b"filename"].decode(errors="replace") or options.get(b"name", b"file").decode(
            errors="replace"
        )
        name = os.path.basename(original.replace("\\", "/")) or "upload"
        path = self.folder / f"{sanitise(name, limit=200)}_{secrets.token_hex(TOKEN_LENGTH // 2)}"
        self._current = UploadedFile(name, path)
        try:
            self._handle = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")  # noqa: SIM115
        except OSError as exc:
            self._current.path, self._current.error = None, str(exc)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is not None and self._current is not None:
            try:
                self._handle.write(data[start:end])
            except OSError as exc:
                self._current.error = exc.strerror or str(exc)
                self._close(failed=True)

    def _part_end(self) -> None:
        self._close(failed=False)

    def _close(self, *, failed: bool) -> None:
        current, handle = self._current, self._handle
        self._current, self._handle = None, None
        if handle is not None:
            handle.close()
        if current is None:
            return
        if (failed or current.error) and current.path is not None:
            current.path.unlink(missing_ok=True)
            current.path = None
            current.error = current.error or "the upload was cut off"
        self.files.append(current)


def original_name(path: Path) -> str:
    """The name a client uploaded the file as (its path without the random token)."""
    return path.name[: -(TOKEN_LENGTH + 1)]


def find_upload(upload_root: Path, user_id: int, reference: str) -> Path | None:
    """The caller's own, unexpired upload that `reference` names; expired ones are deleted."""
    folder = upload_root / str(user_id)
    candidate = Path(reference)
    if candidate.parent != folder or not candidate.name or candidate.name.startswith("."):
        return None
    try:
        info = candidate.lstat()
    except OSError:
        return None
    if time.time() - info.st_mtime > EXPIRY_SECONDS:
        candidate.unlink(missing_ok=True)
        return None
    return candidate if candidate.is_file() and not candidate.is_symlink() else None


def sweep_expired(upload_root: Path, now: float | None = None) -> None:
    """Delete uploads older than a day that were never imported."""
    limit = (now or time.time()) - EXPIRY_SECONDS
    for path in upload_root.glob("*/*"):
        try:
            if path.lstat().st_mtime < limit:
                path.unlink()
        except OSError:
            continue
