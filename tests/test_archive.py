"""The archive engine against the real tools: GNU tar, zstd and sha256sum from /usr/bin.

Archives written by `ArchiveWriter` through `VolumeWriter` must restore with
``cat VOLUMES | zstd -d | tar -x`` and verify with ``sha256sum -c`` — no hostbackup needed.
Races (files shrinking, growing, vanishing or being swapped for symlinks mid-backup) are triggered
deterministically from the writer's own progress callback, which runs in the middle of copying a
file, exactly where a concurrent writer on a live server would interfere.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import subprocess
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

import pytest

from hostbackup.backup import archive
from hostbackup.backup.archive import (
    CHECKSUM_ARCNAME,
    PROGRESS_INTERVAL,
    ArchiveWriter,
    encode_header,
    normalize_arcname,
)
from hostbackup.backup.volumes import Volume, VolumeWriter

TAR = "/usr/bin/tar"
ZSTD = "/usr/bin/zstd"
SHA256SUM = "/usr/bin/sha256sum"
TOOLS_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
PREFIX = "domains/example.com/files"
KIB = 1024
MIB = 1024 * KIB

pytestmark = pytest.mark.skipif(
    not all(os.access(tool, os.X_OK) for tool in (TAR, ZSTD, SHA256SUM)), reason="needs GNU tar, zstd, sha256sum"
)


# -- the source tree ------------------------------------------------------------------------------

LONG_NAME = b"n" * 150 + b".txt"
LONG_PATH = b"long/" + b"d" * 100 + b"/" + b"e" * 100 + b"/" + b"f" * 95 + b".txt"
LONG_BINARY_PATH = b"bin\xff/" + b"g" * 120 + b"\xfe.txt"


def _write(root: Path, rel: bytes, data: bytes, mode: int = 0o644, mtime: int = 1_600_000_000) -> None:
    path = os.path.join(os.fsencode(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


def _compressible(size: int) -> bytes:
    line = b"GET /index.php?page=%d HTTP/1.1 200 OK mozilla/5.0 (X11; Linux x86_64)\n"
    out = bytearray()
    i = 0
    while len(out) < size:
        out += line % i
        i += 1
    return bytes(out[:size])


def build_tree(root: Path) -> None:
    """Every kind of entry the writer has to get right, with explicit modes and mtimes."""
    root.mkdir()
    sizes = {b"zero": 0, b"one": 1, b"f511": 511, b"f512": 512, b"f513": 513, b"f1m": MIB}
    for name, size in sizes.items():
        _write(root, b"sizes/" + name, os.urandom(size))
    _write(root, b"sizes/random_3m", os.urandom(3 * MIB))
    _write(root, b"sizes/text_2m", _compressible(2 * MIB))
    _write(root, b"exec.sh", b"#!/bin/sh\necho hi\n", 0o755, 1_500_000_000)
    _write(root, b"group.txt", b"group readable\n", 0o640, 1_400_000_000)
    _write(root, b"private/secret.txt", b"s3cret\n", 0o600)
    _write(root, b"a/b/c/deep.txt", b"deep\n")
    _write(root, LONG_NAME, b"long name\n")
    _write(root, LONG_PATH, b"long path\n")
    _write(root, LONG_BINARY_PATH, b"long binary path\n")
    _write(root, "café-ñ 日本.txt".encode(), b"utf-8 name\n")
    _write(root, b"caf\xe9.txt", b"latin-1 name\n")
    _write(root, b"with space.txt", b"space\n")
    _write(root, b"back\\slash.txt", b"backslash\n")
    _write(root, b"new\nline.txt", b"newline\n")
    _write(root, b"carriage\rreturn.txt", b"cr\n")
    _write(root, b"times/old", b"before 1970\n", mtime=-86_400)
    _write(root, b"times/future", b"after 2242\n", mtime=2**33 + 100)
    os.link(os.path.join(os.fsencode(root), b"group.txt"), os.path.join(os.fsencode(root), b"hardlink.txt"))
    (root / "links").mkdir()
    os.symlink("../sizes/one", root / "links" / "relative")
    os.symlink("/etc/hostname", root / "links" / "absolute")
    os.symlink("does/not/exist", root / "links" / "dangling")
    (root / "empty").mkdir()
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(root / "socket"))
    os.chmod(root / "private", 0o700)
    for dirpath, _, _ in sorted(os.walk(os.fsencode(root)), reverse=True):  # children first
        os.utime(dirpath, (1_650_000_000, 1_650_000_000))


# -- helpers --------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Relative path → (kind, mode, mtime, content digest or link target); special files left out."""
    result: dict[bytes, tuple[object, ...]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                result[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), digest)
    return result


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, env=TOOLS_ENV, capture_output=True, check=False)


def extract_volumes(volumes: list[Path], out: Path) -> None:
    out.mkdir()
    script = f'cat "$@" | {ZSTD} -d -c | {TAR} -x -p -f - -C "$OUT"'
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script, "extract", *map(os.fspath, volumes)],
        env={**TOOLS_ENV, "OUT": os.fspath(out)},
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def assert_restored(source: Path, restored: Path) -> None:
    assert snapshot(restored) == snapshot(source)
    root_st, restored_st = os.stat(source), os.stat(restored)
    assert stat.S_IMODE(restored_st.st_mode) == stat.S_IMODE(root_st.st_mode)
    assert int(restored_st.st_mtime) == int(root_st.st_mtime)


def assert_checksums_pass(out: Path) -> None:
    result = run([SHA256SUM, "--strict", "-c", CHECKSUM_ARCNAME], cwd=out)
    assert result.returncode == 0, result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def write_backup(
    directory: Path, source: Path, split: int | None, *, compress: bool = True
) -> tuple[list[Volume], ArchiveWriter, list[Volume]]:
    announced: list[Volume] = []

    def on_complete(volume: Volume) -> None:
        assert (directory / volume.name).is_file()  # already under its final name
        assert not (directory / f".{volume.name}.part").exists()
        announced.append(volume)

    with VolumeWriter(directory, "backup.tar.zst", split, on_volume_complete=on_complete) as sink:
        writer = ArchiveWriter(sink, compress=compress)
        writer.add_bytes("info/description.txt", b"nightly\n", mtime=1_700_000_000)
        writer.add_tree(source, PREFIX)
        writer.close()
        volumes = sink.finish()
    return volumes, writer, announced


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    build_tree(root)
    return root


# -- 1. split volumes, compressed -----------------------------------------------------------------


def test_split_volumes_restore_with_cat_zstd_tar(source: Path, tmp_path: Path) -> None:
    backups = tmp_path / "dumps"
    backups.mkdir()
    volumes, writer, announced = write_backup(backups, source, 64 * KIB)

    assert len(volumes) > 3
    assert announced == volumes
    assert [v.name for v in volumes] == [f"backup.tar.zst.{n:03d}" for n in range(1, len(volumes) + 1)]
    assert all(v.size == 64 * KIB for v in volumes[:-1]) and 0 < volumes[-1].size <= 64 * KIB
    assert sorted(os.listdir(backups)) == [v.name for v in volumes]
    paths = [backups / v.name for v in volumes]
    for volume, path in zip(volumes, paths, strict=True):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.stat().st_size == volume.size
    sums = run([SHA256SUM, *map(os.fspath, paths)]).stdout.decode().splitlines()
    assert [line.split()[0] for line in sums] == [v.sha256 for v in volumes]

    out = tmp_path / "out"
    extract_volumes(paths, out)
    assert_restored(source, out / PREFIX)
    assert (out / PREFIX / "empty").is_dir()
    assert (out / "info/description.txt").read_bytes() == b"nightly\n"
    assert_checksums_pass(out)
    assert sorted(writer.warnings) == [f"skipped fifo: {PREFIX}/fifo", f"skipped socket: {PREFIX}/socket"]


def test_checksum_list_lists_regular_files_only_in_sha256sum_format(source: Path, tmp_path: Path) -> None:
    backups = tmp_path / "dumps"
    backups.mkdir()
    volumes, _, _ = write_backup(backups, source, None)
    out = tmp_path / "out"
    extract_volumes([backups / v.name for v in volumes], out)

    listed = (out / CHECKSUM_ARCNAME).read_bytes()
    regular = sorted(
        os.path.relpath(os.path.join(d, f), os.fsencode(out))
        for d, _, files in os.walk(os.fsencode(out))
        for f in files
        if not os.path.islink(os.path.join(d, f))
    )
    regular.remove(CHECKSUM_ARCNAME.encode())
    # sha256sum itself, run on the extracted files, must produce exactly our lines (escaping included)
    reference = run([SHA256SUM, "--", *map(os.fsdecode, regular)], cwd=out).stdout
    assert sorted(listed.splitlines(keepends=True)) == sorted(reference.splitlines(keepends=True))


# -- 2. unsplit and uncompressed ------------------------------------------------------------------


def test_unsplit_single_volume(source: Path, tmp_path: Path) -> None:
    backups = tmp_path / "dumps"
    backups.mkdir()
    volumes, _, _ = write_backup(backups, source, 0)
    assert [v.name for v in volumes] == ["backup.tar.zst"]
    out = tmp_path / "out"
    extract_volumes([backups / "backup.tar.zst"], out)
    assert_restored(source, out / PREFIX)
    assert_checksums_pass(out)


def test_uncompressed_plain_tar_is_deterministic(source: Path, tmp_path: Path) -> None:
    archives = []
    for attempt in ("first", "second"):
        directory = tmp_path / attempt
        directory.mkdir()
        volumes, _, _ = write_backup(directory, source, None, compress=False)
        archives.append(directory / volumes[0].name)
        time.sleep(1.1)  # the second archive is written in another second: nothing may depend on "now"
    assert archives[0].read_bytes() == archives[1].read_bytes()
    assert archives[0].stat().st_size % 10240 == 0

    out = tmp_path / "out"
    out.mkdir()
    result = run([TAR, "-x", "-p", "-f", os.fspath(archives[0]), "-C", os.fspath(out)])
    assert result.returncode == 0, result.stderr
    assert_restored(source, out / PREFIX)
    assert_checksums_pass(out)

    with tarfile.open(archives[0]) as tar:
        names = tar.getnames()
    assert names[-1] == CHECKSUM_ARCNAME
    assert os.fsdecode(f"{PREFIX}/".encode() + LONG_BINARY_PATH) in names
    assert os.fsdecode(f"{PREFIX}/".encode() + b"caf\xe9.txt") in names


def test_members_are_in_bytewise_sorted_preorder(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for rel in ["b/z", "b/a", "a", "B", "c/d/e"]:
        _write(root, rel.encode(), b"x")
    sink = io.BytesIO()
    writer = ArchiveWriter(sink, compress=False)
    writer.add_tree(root, "t")
    writer.close()
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        names = [m.name for m in tar]
    assert names == ["t", "t/B", "t/a", "t/b", "t/b/a", "t/b/z", "t/c", "t/c/d", "t/c/d/e", CHECKSUM_ARCNAME]


def _members(sink: io.BytesIO) -> list[tuple[str, bytes, str]]:
    sink.seek(0)
    with tarfile.open(fileobj=sink) as tar:
        return [(m.name, m.type, m.linkname) for m in tar]


def test_add_file_and_tree_at_the_archive_root(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _write(root, b"sub/file.txt", b"content")
    os.symlink("sub/file.txt", root / "link")
    os.mkfifo(root / "pipe")
    sink = io.BytesIO()
    writer = ArchiveWriter(sink, compress=False)
    writer.add_file(root / "sub" / "file.txt", "single/file.txt")
    writer.add_file(root / "link", "single/link")
    writer.add_file(root / "sub", "single/dir")
    writer.add_file(root / "pipe", "single/pipe")
    writer.add_file(root / "missing", "single/missing")
    writer.add_tree(root / "sub", "")
    writer.close()
    assert _members(sink) == [
        ("single/file.txt", tarfile.REGTYPE, ""),
        ("single/link", tarfile.SYMTYPE, "sub/file.txt"),
        ("single/dir", tarfile.DIRTYPE, ""),
        ("file.txt", tarfile.REGTYPE, ""),
        (CHECKSUM_ARCNAME, tarfile.REGTYPE, ""),
    ]
    assert writer.warnings == ["skipped fifo: single/pipe", "vanished: single/missing"]
    assert writer.members == 5


def test_context_manager_closes_only_on_success(tmp_path: Path) -> None:
    ok, failed = io.BytesIO(), io.BytesIO()
    with ArchiveWriter(ok, compress=False) as writer:
        writer.add_bytes("a", b"x")
    assert [name for name, _, _ in _members(ok)] == ["a", CHECKSUM_ARCNAME]
    with pytest.raises(RuntimeError), ArchiveWriter(failed, compress=False) as writer:
        writer.add_bytes("a", b"x" * (2 * MIB))
        raise RuntimeError("dump failed")
    assert CHECKSUM_ARCNAME.encode() not in failed.getvalue()


# -- 3. files changing under the writer -----------------------------------------------------------


BIG = 12 * MIB + 100  # not a multiple of the read buffer: growth is seen by the last read


def _race_tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    _write(root, b"a_big.bin", os.urandom(BIG))
    _write(root, b"b_vanishes.txt", b"gone soon\n")
    _write(root, b"c_swapped.txt", b"will become a symlink\n")
    _write(root, b"d_swapped_dir/inside.txt", b"inside\n")
    _write(root, b"e_after.txt", b"still here\n")
    return root


def _archive_with_progress(
    tmp_path: Path, root: Path, on_progress: Callable[[int], None]
) -> tuple[ArchiveWriter, Path]:
    backups = tmp_path / "dumps"
    backups.mkdir()
    with VolumeWriter(backups, "race.tar.zst") as sink:
        writer = ArchiveWriter(sink, progress=on_progress)
        writer.add_tree(root, "files")
        writer.close()
        sink.finish()
    out = tmp_path / "out"
    extract_volumes([backups / "race.tar.zst"], out)
    assert_checksums_pass(out)
    return writer, out


def test_shrink_vanish_and_swaps_become_warnings(tmp_path: Path) -> None:
    root = _race_tree(tmp_path)
    original = (root / "a_big.bin").read_bytes()
    outside = tmp_path / "outside"
    _write(outside, b"inside.txt", b"NOT FOR THIS CUSTOMER\n")
    calls: list[int] = []

    def on_progress(bytes_in: int) -> None:
        # Runs while a_big.bin is being copied, after the directory was listed.
        if not calls:
            os.truncate(root / "a_big.bin", 9 * MIB)
            (root / "b_vanishes.txt").unlink()
            (root / "c_swapped.txt").unlink()
            os.symlink("/etc/passwd", root / "c_swapped.txt")
            os.rename(root / "d_swapped_dir", tmp_path / "moved_away")
            os.symlink(outside, root / "d_swapped_dir")
        calls.append(bytes_in)

    writer, out = _archive_with_progress(tmp_path, root, on_progress)

    assert calls and calls[0] >= PROGRESS_INTERVAL
    assert writer.warnings == [
        f"file changed while being read: files/a_big.bin (shrank by {BIG - 9 * MIB} bytes, padded with zeros)",
        "vanished: files/b_vanishes.txt",
        "changed type while being read, skipped: files/c_swapped.txt",
        "changed type while being read, skipped: files/d_swapped_dir/",
    ]
    restored = (out / "files/a_big.bin").read_bytes()
    assert restored == original[: 9 * MIB] + bytes(BIG - 9 * MIB)
    assert not (out / "files/b_vanishes.txt").exists()
    assert not (out / "files/c_swapped.txt").exists()
    assert not (out / "files/d_swapped_dir").exists()
    assert (out / "files/e_after.txt").read_bytes() == b"still here\n"


def test_growing_file_is_cut_at_its_opened_size(tmp_path: Path) -> None:
    root = _race_tree(tmp_path)
    original = (root / "a_big.bin").read_bytes()

    def on_progress(bytes_in: int) -> None:
        with open(root / "a_big.bin", "ab") as f:
            f.write(b"appended while reading" * 1000)

    writer, out = _archive_with_progress(tmp_path, root, on_progress)
    assert writer.warnings == [
        "file changed while being read: files/a_big.bin (grew, cut at the size it had when opened)"
    ]
    assert (out / "files/a_big.bin").read_bytes() == original


def test_growth_detected_on_buffer_multiple_sizes(tmp_path: Path) -> None:
    """A file whose size is an exact multiple of the read buffer needs the extra probe read."""
    root = tmp_path / "src"
    _write(root, b"exact", b"x" * (9 * MIB))

    def on_progress(bytes_in: int) -> None:
        with open(root / "exact", "ab") as f:
            f.write(b"more")

    writer, out = _archive_with_progress(tmp_path, root, on_progress)
    assert writer.warnings == ["file changed while being read: files/exact (grew, cut at the size it had when opened)"]
    assert (out / "files/exact").read_bytes() == b"x" * (9 * MIB)


def test_sink_errors_propagate_instead_of_becoming_warnings(source: Path) -> None:
    class FullDisk:
        def write(self, data: bytes | bytearray | memoryview, /) -> int:
            raise OSError(28, "No space left on device")

    writer = ArchiveWriter(FullDisk(), compress=False)
    with pytest.raises(OSError, match="No space left"):
        writer.add_tree(source, PREFIX)
        writer.close()
    assert not any(w.startswith("cannot read") for w in writer.warnings)


# -- 4. streams of unknown size and bounded memory ------------------------------------------------


def _spooled(directory: Path, total: int, chunk: int = 256 * KIB) -> IO[bytes]:
    """A temporary file holding `total` bytes of compressible data, like a database dump run ahead."""
    spool = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - the caller closes it
    block = _compressible(chunk)
    for offset in range(0, total, chunk):
        spool.write(block[: min(chunk, total - offset)])
    return spool


def test_add_spooled_round_trips(tmp_path: Path) -> None:
    backups = tmp_path / "dumps"
    backups.mkdir()
    total = 20 * 1000 * 1000 + 7
    with VolumeWriter(backups, "db.tar.zst", 1 * MIB) as sink, _spooled(tmp_path, total) as dump_spool:
        writer = ArchiveWriter(sink, spool_dir=tmp_path)
        writer.add_spooled("domains/example.com/databases/shop.sql", dump_spool)
        writer.add_spooled("empty.sql", _spooled(tmp_path, 0), mode=0o640, mtime=1_234_567_890.9)
        writer.close()
        volumes = sink.finish()
    out = tmp_path / "out"
    extract_volumes([backups / v.name for v in volumes], out)
    dump = out / "domains/example.com/databases/shop.sql"
    block = _compressible(256 * KIB)
    assert dump.read_bytes() == (block * (total // len(block) + 1))[:total]
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    empty = out / "empty.sql"
    assert empty.read_bytes() == b"" and empty.stat().st_mtime == 1_234_567_890
    assert stat.S_IMODE(empty.stat().st_mode) == 0o640
    assert_checksums_pass(out)


class CountingSink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.size += len(data)
        return len(data)


def test_memory_stays_bounded_for_large_files_and_streams(tmp_path: Path) -> None:
    big = tmp_path / "src" / "big.img"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(200 * MIB)  # sparse: cheap to create, 200 MB to read
        for offset in range(0, 200 * MIB, 16 * MIB):
            f.seek(offset)
            f.write(os.urandom(64 * KIB))
    tracemalloc.start()
    try:
        writer = ArchiveWriter(CountingSink(), spool_dir=tmp_path)
        writer.add_tree(big.parent, "files")
        with _spooled(tmp_path, 64 * MIB, MIB) as dump_spool:
            writer.add_spooled("dump.sql", dump_spool)
        assert writer.bytes_in == 264 * MIB
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * MIB, f"peak traced memory {peak / MIB:.1f} MiB"


# -- 5. abort -------------------------------------------------------------------------------------


def test_abort_removes_finished_and_partial_volumes(source: Path, tmp_path: Path) -> None:
    backups = tmp_path / "dumps"
    backups.mkdir()
    sink = VolumeWriter(backups, "backup.tar.zst", 64 * KIB)
    writer = ArchiveWriter(sink)
    writer.add_tree(source, PREFIX)
    writer.close()
    assert len(os.listdir(backups)) > 2  # finished volumes plus the open .part
    sink.abort()
    assert os.listdir(backups) == []
    sink.abort()  # idempotent


def test_failure_inside_the_context_manager_leaves_nothing(source: Path, tmp_path: Path) -> None:
    backups = tmp_path / "dumps"
    backups.mkdir()
    with pytest.raises(RuntimeError), VolumeWriter(backups, "backup.tar.zst", 64 * KIB) as sink:
        writer = ArchiveWriter(sink)
        writer.add_tree(source, PREFIX)
        raise RuntimeError("task cancelled")
    assert os.listdir(backups) == []


def test_empty_stream_yields_one_empty_volume_and_names_keep_counting(tmp_path: Path) -> None:
    with VolumeWriter(tmp_path, "empty.bin", 10) as sink:
        assert sink.finish() == [Volume("empty.bin.001", 0, hashlib.sha256().hexdigest())]
    many = tmp_path / "many"
    many.mkdir()
    with VolumeWriter(many, "x", 1) as sink:
        sink.write(b"y" * 1001)
        volumes = sink.finish()
    assert [v.name for v in volumes[998:]] == ["x.999", "x.1000", "x.1001"]
    assert (many / "x.1000").read_bytes() == b"y"


def test_volume_writer_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"old backup")
    sink = VolumeWriter(tmp_path, "taken")
    with pytest.raises(FileExistsError):
        sink.write(b"new")
    assert (tmp_path / "taken").read_bytes() == b"old backup"
    for bad in ["", "a/b", "..", ".hidden"]:
        with pytest.raises(ValueError):
            VolumeWriter(tmp_path, bad)


# -- 6. header encoding ---------------------------------------------------------------------------


def _parse(header: bytes | bytearray) -> tarfile.TarInfo:
    with tarfile.open(fileobj=io.BytesIO(bytes(header)), mode="r:") as tar:
        member = tar.firstmember
    assert member is not None
    return member


def test_nine_gib_size_goes_to_a_pax_record() -> None:
    size = 9 * 1024**3
    header = encode_header(b"big.img", b"0", mode=0o644, uid=1000, gid=1000, size=size, mtime=1_700_000_000)
    assert len(header) == 3 * 512  # pax header block + one block of records + ustar block
    assert header[156:157] == b"x" and b" size=9663676416\n" in header[512:1024]
    member = _parse(header)
    assert (member.name, member.size, member.mtime, member.mode) == ("big.img", size, 1_700_000_000, 0o644)
    assert member.pax_headers["size"] == str(size)


def test_small_values_need_no_pax_header() -> None:
    header = encode_header(b"a" * 100, b"0", mode=0o755, uid=33, gid=33, size=8 * 1024**3 - 1, mtime=0)
    assert len(header) == 512
    assert _parse(header).size == 8 * 1024**3 - 1


@pytest.mark.parametrize(
    ("name", "pax", "binary"),
    [
        (b"x/" * 60 + b"file", False, False),  # 124 bytes: fits prefix + name
        (b"p" * 155 + b"/" + b"n" * 100, False, False),  # the largest ustar split
        (b"p" * 156 + b"/" + b"n" * 10, True, False),  # prefix too long
        (b"d/" + b"n" * 101, True, False),  # last component too long
        (b"dir/" * 30, False, False),  # directory: trailing slash kept in the name field
        ("café.txt".encode(), True, False),  # UTF-8: pax path
        (b"caf\xe9.txt", False, False),  # not UTF-8 but fits: raw bytes in ustar
        (b"caf\xe9/" * 60, True, True),  # not UTF-8 and too long: hdrcharset=BINARY
    ],
)
def test_names_round_trip_through_tarfile(name: bytes, pax: bool, binary: bool) -> None:
    typeflag = b"5" if name.endswith(b"/") else b"0"
    header = encode_header(name, typeflag, mode=0o600, uid=0, gid=0, size=0, mtime=1)
    assert (header[156:157] == b"x") is pax
    assert (b" hdrcharset=BINARY\n" in header) is binary
    assert os.fsencode(_parse(header).name) == name.rstrip(b"/")


def test_numeric_and_owner_overflows_round_trip() -> None:
    header = encode_header(
        b"f",
        b"2",
        mode=0o777,
        uid=2**21,
        gid=2**32 - 2,
        size=0,
        mtime=-86_400,
        linkname=b"t" * 150,
        uname=b"u" * 40,
        gname="grüppe".encode(),
    )
    member = _parse(header)
    assert (member.uid, member.gid, member.mtime) == (2**21, 2**32 - 2, -86_400)
    assert (member.linkname, member.uname, member.gname) == ("t" * 150, "u" * 40, "grüppe")


@pytest.mark.parametrize("length", [*range(88, 96), *range(988, 997)])
def test_pax_record_lengths_at_digit_boundaries(length: int) -> None:
    """A record counts its own length digits: 98 payload bytes make a 101-byte record."""
    name = b"d/" * ((length - 2) // 2) + b"f" * (length % 2) + "é".encode()
    assert len(name) == length
    header = encode_header(name, b"0", mode=0o600, uid=0, gid=0, size=0, mtime=0)
    assert os.fsencode(_parse(header).name) == name


def test_arcnames_are_normalized_and_checked() -> None:
    assert normalize_arcname("./a//b/") == b"a/b"
    for bad in ["", "/etc/passwd", "a/../../b", "..", "a\0b"]:
        with pytest.raises(ValueError):
            normalize_arcname(bad)


# -- 7. the small-file path in C ------------------------------------------------------------------


def test_small_files_extension_is_built() -> None:
    """CI builds it; elsewhere this names what the pure-Python fallback costs and how to fix it."""
    assert archive.pack_small_file is not None, (
        "hostbackup.backup._smallfiles is not built: backups work but are slower; "
        "install gcc, python3-dev and libssl-dev, then `pip install -e .` again"
    )


def _plain_tar(root: Path) -> bytes:
    sink = io.BytesIO()
    writer = ArchiveWriter(sink, compress=False)
    writer.add_tree(root, PREFIX)
    writer.close()
    return sink.getvalue()


def test_c_and_python_paths_write_identical_archives(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packed: list[bytes] = []
    pack = archive.pack_small_file
    assert pack is not None

    def counting_pack(*args: object) -> tuple[int, int] | None:
        result = pack(*args)  # type: ignore[arg-type]
        if result is not None:
            packed.append(cast(bytes, args[2]))
        return result

    _write(source, b"modes/setuid", b"#!/bin/sh\n", 0o4755)
    _write(source, b"modes/sticky", b"", 0o1777)
    _write(source, b"sizes/just_under_64k", os.urandom(64 * KIB - 1))
    _write(source, b"sizes/exactly_64k", os.urandom(64 * KIB))
    _write(source, b"times/epoch", b"1970\n", mtime=0)
    if os.geteuid() == 0:  # owners without a name, or without an entry in /etc/passwd
        _write(source, b"owners/nobody", b"n\n")
        os.chown(source / "owners/nobody", 65534, 65534)
        _write(source, b"owners/unknown", b"u\n")
        os.chown(source / "owners/unknown", 54321, 54321)

    monkeypatch.setattr(archive, "pack_small_file", counting_pack)
    with_c = _plain_tar(source)
    monkeypatch.setattr(archive, "pack_small_file", None)
    without_c = _plain_tar(source)

    assert with_c == without_c
    prefix = PREFIX.encode() + b"/"
    assert prefix + b"sizes/just_under_64k" in packed
    assert prefix + b"modes/setuid" in packed
    for general in (b"sizes/exactly_64k", b"times/old", b"back\\slash.txt", b"caf\xe9.txt", LONG_NAME):
        assert prefix + general not in packed


def test_c_path_declines_and_writes_nothing_for_the_unusual(tmp_path: Path) -> None:
    pack = archive.pack_small_file
    assert pack is not None
    root = tmp_path / "src"
    _write(root, b"small", b"ordinary\n")
    _write(root, b"big", bytes(64 * KIB))
    os.symlink("small", root / "link")
    os.mkfifo(root / "fifo")
    stage, lines = bytearray(b"before"), bytearray(b"lines")
    owners = {os.geteuid(): b"me"}, {os.getegid(): b"us"}
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    proc_fd = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        declined = [
            (dir_fd, b"big", b"big"),  # the chunked path streams it
            (dir_fd, b"link", b"link"),  # never followed
            (dir_fd, b"fifo", b"fifo"),  # opened without blocking, then refused
            (dir_fd, b"missing", b"missing"),  # the Python path reports it as vanished
            (dir_fd, b"small", b"n\xc3\xa9w"),  # needs a pax header
            (dir_fd, b"small", b"a" * 101),  # does not fit the ustar name field
            (proc_fd, b"status", b"status"),  # says size 0, then reads more: changed while read
        ]
        for fd, name, member in declined:
            assert pack(fd, name, member, stage, lines, *owners) is None, member
            assert (stage, lines) == (b"before", b"lines"), member
        assert pack(dir_fd, b"small", b"small", stage, lines, {}, {}) is None  # owner names not looked up
        assert pack(dir_fd, b"small", b"small", stage, lines, *owners) == (9, 1_600_000_000)
    finally:
        os.close(dir_fd)
        os.close(proc_fd)
    header = tarfile.TarInfo.frombuf(bytes(stage[6:518]), "utf-8", "surrogateescape")
    assert (header.name, header.size, header.uname, header.gname) == ("small", 9, "me", "us")
    assert stage[518:] == b"ordinary\n" + bytes(503)
    assert lines == b"lines" + hashlib.sha256(b"ordinary\n").hexdigest().encode() + b"  small\n"
