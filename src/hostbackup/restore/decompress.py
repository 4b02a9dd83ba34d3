"""The tar stream inside a backup's raw bytes: zstd decompression beside the reader, not in its way.

Restoring is one Python thread parsing tar and writing files, a job of many short system calls.
Decompression is the other big cost, and in the same process it competes with that thread for the
GIL (python-zstandard holds it in its reader; a decompressing thread slowed a 1 GiB restore from
5 to 8 s). So when the `zstd` program is installed it decompresses in its own process and the
restore reads plain tar from its stdout. Its input is either a stream that a thread feeds it (an
FTP download, volumes checked against their SHA-256 as they pass), or volume files that were
checked just before, which zstd reads itself (one volume as its stdin, several through ``cat``):
no thread of ours then touches the compressed bytes, which saves the restoring thread the GIL
hand-offs (~10 % of a 1 GiB restore). Without the program, or for an uncompressed backup,
everything happens inline.

`TarStream.read` hands out chunks of whatever size is ready; `drain` reads to the end so that
every volume's checksum is checked and errors of the feeding side (a volume that does not match
its SHA-256, zstd's complaint about a damaged frame) surface in the reading thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1024 * 1024
PIPE_SIZE = 1024 * 1024  # Linux pipes hold 64 KiB by default: 1 MiB means 16× fewer reads and switches


class TarStream:
    """A readable tar stream; use it as a context manager."""

    def read(self, _size: int = CHUNK) -> bytes:
        raise NotImplementedError

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def decompressed(raw: io.BufferedReader) -> TarStream:
    """The tar stream inside `raw`: decompressed when it starts with zstd's magic."""
    if raw.peek(len(ZSTD_MAGIC))[: len(ZSTD_MAGIC)] != ZSTD_MAGIC:
        return _Inline(raw)
    program = shutil.which("zstd")
    if program is None:
        return _Inline(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True))
    return _ZstdProcess(program, _Input(source=raw))


def decompressed_files(paths: Sequence[Path], fallback: io.BufferedReader) -> TarStream:
    """The tar stream inside volume files, read by `zstd` itself; `fallback` (the same bytes as a
    stream) is used when the programs are missing or the volumes are not zstd-compressed."""
    program, cat = shutil.which("zstd"), shutil.which("cat")
    if program is None or cat is None or not paths or fallback.peek(len(ZSTD_MAGIC))[: len(ZSTD_MAGIC)] != ZSTD_MAGIC:
        return decompressed(fallback)
    fallback.close()
    if len(paths) == 1:
        with open(paths[0], "rb") as volume:
            return _ZstdProcess(program, _Input(volume))
    reader = subprocess.Popen([cat, "--", *map(str, paths)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None
    with reader.stdout:
        return _ZstdProcess(program, _Input(reader.stdout, reader=reader))


class _Inline(TarStream):
    def __init__(self, stream: io.BufferedReader | zstandard.ZstdDecompressionReader) -> None:
        self._stream = stream

    def read(self, _size: int = CHUNK) -> bytes:
        return self._stream.read(CHUNK)

    def close(self) -> None:
        self._stream.close()


class _Input:
    """What zstd reads: a stream our thread feeds it (``source``), or a file or pipe it reads itself
    (``stdin``, from a ``reader`` process for several volumes)."""

    def __init__(
        self, stdin: IO[bytes] | None = None, *, source: io.BufferedReader | None = None,
        reader: subprocess.Popen[bytes] | None = None,
    ) -> None:  # fmt: skip
        self.stdin = stdin
        self.source = source
        self.reader = reader


class _ZstdProcess(TarStream):
    """`zstd -d` in a child process, read through its stdout."""

    def __init__(self, program: str, feed: _Input) -> None:
        self._raw = feed.source
        self._reader = feed.reader
        self._process = subprocess.Popen(
            [program, "-d", "-c", "-q"],
            stdin=subprocess.PIPE if feed.source is not None else feed.stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self._stdout = self._process.stdout.fileno()
        pipes = [self._stdout] + ([self._process.stdin.fileno()] if self._process.stdin is not None else [])
        for pipe in pipes:
            with contextlib.suppress(OSError):  # a smaller pipe still works
                fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._failure: BaseException | None = None
        self._finished = False
        self._feeder: threading.Thread | None = None
        if self._raw is not None:
            self._feeder = threading.Thread(target=self._feed, name="zstd-feeder", daemon=True)
            self._feeder.start()

    def read(self, _size: int = CHUNK) -> bytes:
        if self._finished:
            return b""
        chunk = os.read(self._stdout, CHUNK)
        if not chunk:
            self._finish()
        return chunk

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            self._process.kill()  # the feeder's next write fails and it ends
            if self._reader is not None:
                self._reader.kill()
        if self._feeder is not None:
            self._feeder.join(timeout=30)
        self._process.wait()
        pipes = [self._process.stdout, self._process.stderr]
        if self._reader is not None:
            self._reader.wait()
            pipes.append(self._reader.stderr)
        for pipe in pipes:
            if pipe is not None:
                pipe.close()

    def _finish(self) -> None:
        self._finished = True
        if self._feeder is not None:
            self._feeder.join()
        assert self._process.stderr is not None
        complaint = self._process.stderr.read().decode(errors="replace").strip()
        status = self._process.wait()
        if self._failure is not None:
            raise self._failure
        if self._reader is not None:
            self._check_reader(self._reader)
        # a cut stream is not damage: as with python-zstandard, the output ends where the input does and
        # the tar reader says whether the archive was complete (an import then waits for more volumes)
        if status != 0 and "premature end" not in complaint:
            raise zstandard.ZstdError(f"zstd: {complaint or f'exit status {status}'}")

    @staticmethod
    def _check_reader(reader: subprocess.Popen[bytes]) -> None:
        """A volume that could not be read (removed meanwhile, an I/O error) is an error, not a cut stream."""
        assert reader.stderr is not None
        complaint = reader.stderr.read().decode(errors="replace").strip()
        if reader.wait() != 0:
            raise OSError(f"reading the volumes failed: {complaint or f'exit status {reader.returncode}'}")

    def _feed(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None and self._raw is not None
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while count := self._raw.readinto(buffer):
                chunk = view[:count]
                while chunk:
                    chunk = chunk[os.write(stdin.fileno(), chunk) :]
        except BrokenPipeError:
            pass  # zstd stopped early: its exit status and stderr say why
        except BaseException as exc:  # raised again in the reading thread
            self._failure = exc
        finally:
            with contextlib.suppress(OSError):
                stdin.close()
            self._raw.close()
