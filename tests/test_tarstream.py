"""The restore side's own tar reader and extractor, against archives made by GNU tar, Python's
tarfile and our writer: same members, same bytes; damage and truncation are told apart; nothing
is written outside its root and nothing half-written stays under a real name."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import zstandard

from hostbackup.backup.archive import ArchiveWriter
from hostbackup.restore import decompress, extract, reader, tarstream
from hostbackup.restore.decompress import TarStream, decompressed
from hostbackup.restore.extract import Extraction, RefusedMember
from hostbackup.restore.reader import ConcatenatedReader, check_stream, open_stream
from hostbackup.restore.tarstream import READ_SIZE, ArchiveDamaged, ArchiveTruncated, Member, TarReader
from test_archive import build_tree

Seen = tuple[str, bytes, int, int, int, str, str]  # name, type, mode, size, mtime, link, digest


def read_ours(data: bytes) -> list[Seen]:
    archive = TarReader(io.BytesIO(data).read)
    seen = []
    for member in archive.members():
        digest = hashlib.sha256(b"".join(bytes(view) for view in archive.data())).hexdigest()
        seen.append((member.name, member.type, member.mode, member.size, member.mtime, member.linkname, digest))
    return seen


def read_in_runs(data: bytes, chunk: int) -> tuple[list[Seen], int]:
    """As `read_ours`, the way a restore reads: after each member, the files that follow directly in
    its directory come from `files_in`. The stream comes in pieces of `chunk` bytes, so runs end at
    every place a buffer can; the second value counts the files the runs took."""
    stream = io.BytesIO(data)
    archive = TarReader(lambda _size: stream.read(chunk))
    seen: list[Seen] = []

    def add(member: Member, views: Iterable[memoryview]) -> None:
        digest = hashlib.sha256(b"".join(bytes(view) for view in views)).hexdigest()
        seen.append((member.name, member.type, member.mode, member.size, member.mtime, member.linkname, digest))

    taken = 0
    for member in archive.members():
        add(member, archive.data())
        directory = member.name if member.isdir() else member.name.rpartition("/")[0]
        for file, view in archive.files_in(directory):
            parent, _, leaf = file.name.rpartition("/")
            assert file.isfile() and parent == directory and leaf not in ("", ".", ".."), (file, directory)
            add(file, [view])
            taken += 1
    return seen, taken


def read_tarfile(data: bytes) -> list[Seen]:
    seen = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            handle = archive.extractfile(member) if member.isreg() else None
            content = handle.read() if handle is not None else b""
            kind = tarfile.DIRTYPE if member.isdir() else member.type
            size = member.size if member.isreg() else 0
            link = member.linkname
            digest = hashlib.sha256(content).hexdigest()
            seen.append((member.name, kind, member.mode, size, int(member.mtime), link, digest))
    return seen


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "src"
    build_tree(root)
    os.remove(root / "fifo")
    os.remove(root / "socket")
    return root


@pytest.mark.parametrize("tar_format", ["gnu", "posix", "ustar-short"])
def test_gnu_tar_archives_read_like_tarfile_reads_them(tree: Path, tar_format: str, tmp_path: Path) -> None:
    """GNU long names (L/K), pax headers and plain ustar: names, types, modes, times and bytes agree."""
    if tar_format == "ustar-short":  # ustar cannot hold the long and odd names: a tree of short ones
        args = ["tar", "--format=ustar", "-cf", "-", "-C", str(tree), "sizes", "a", "links", "exec.sh"]
    else:
        args = ["tar", f"--format={tar_format}", "-cf", "-", "-C", str(tree), "."]
    data = subprocess.run(args, check=True, capture_output=True).stdout
    ours = read_ours(data)
    assert ours == read_tarfile(data)
    assert len(ours) > 10
    if tar_format != "ustar-short":
        assert any(len(name.encode("utf-8", "surrogateescape")) > 100 for name, *_ in ours)
        assert any(kind == tarfile.LNKTYPE for _, kind, *_ in ours)  # the hard link is reported as one


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tarfile_archives_with_big_numbers_and_global_headers(tar_format: int) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tar_format, pax_headers={"comment": "global"}) as archive:
        for name, mtime, uid in (("old.txt", -86_400, 1), ("future.txt", 2**34, 2**22), ("d" * 150, 5, 3)):
            member = tarfile.TarInfo(name)
            member.size, member.mtime, member.uid = 3, mtime, uid
            archive.addfile(member, io.BytesIO(b"abc"))
    ours = read_ours(raw.getvalue())
    assert ours == read_tarfile(raw.getvalue())
    assert [seen[4] for seen in ours] == [-86_400, 2**34, 5]


def test_our_writer_round_trips_including_odd_names(tree: Path) -> None:
    sink = io.BytesIO()
    with ArchiveWriter(sink, compress=False) as writer:
        writer.add_tree(tree, "site")
    data = sink.getvalue()
    ours = read_ours(data)
    assert ours == read_tarfile(data)
    names = {name for name, *_ in ours}
    assert "site/caf\udce9.txt" in names  # a Latin-1 name stays byte-exact
    assert "site/new\nline.txt" in names


def test_files_taken_in_runs_read_like_members_do(tree: Path) -> None:
    """A directory's files read in a run (`files_in`) are the members, with the bytes, that `members`
    reads, wherever a run meets a subdirectory, a long or odd name, a large file, a global header or
    the end of the read buffer."""
    sink = io.BytesIO()
    with ArchiveWriter(sink, compress=False) as writer:
        writer.add_tree(tree, "site")
    archives = {"ours": sink.getvalue()}
    for tar_format in ("gnu", "posix"):
        args = ["tar", f"--format={tar_format}", "-cf", "-", "-C", str(tree), "."]
        archives[tar_format] = subprocess.run(args, check=True, capture_output=True).stdout
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"mtime": "7"}) as archive:
        for index in range(5):  # a global header: every member's mtime is 7, also in a run
            member = tarfile.TarInfo(f"d/file{index}")
            member.size = 3
            archive.addfile(member, io.BytesIO(b"abc"))
    archives["global header"] = raw.getvalue()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in ("d/a", "d/sub/b", "d/c", "d/..", "d/.", "d/e"):  # no directory members between them
            member = tarfile.TarInfo(name)
            member.size = 1
            archive.addfile(member, io.BytesIO(b"x"))
    archives["files only"] = raw.getvalue()
    for label, data in archives.items():
        expected = read_ours(data)
        for chunk in (READ_SIZE, 3000, 700):
            seen, taken = read_in_runs(data, chunk)
            assert seen == expected, (label, chunk)
            if (
                label in ("ours", "gnu", "files only") and chunk == READ_SIZE
            ):  # GNU tar's pax format has a pax header per member
                assert taken > 0, label  # the runs were taken, not skipped
    assert read_in_runs(archives["global header"], READ_SIZE)[1] == 0  # a global header applies: no run
    assert {seen[4] for seen in read_ours(archives["global header"])} == {7}


def test_header_extension_is_built() -> None:
    """CI builds it; elsewhere this names what the pure-Python fallback costs and how to fix it."""
    assert tarstream.parse_header is not None, (
        "hostbackup.restore._tarheader is not built: restores work but are slower; "
        "install gcc and python3-dev, then `pip install -e .` again"
    )


def _with_number(block: bytes, offset: int, field: bytes) -> bytes:
    """`block` with `field` at `offset` and its checksum made right again."""
    changed = bytearray(block[:offset] + field + block[offset + len(field) :])
    changed[148:156] = b" " * 8
    changed[148:156] = b"%06o\0 " % sum(changed)
    return bytes(changed)


def test_c_and_python_header_parsers_agree(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every header, as written by GNU tar, tarfile and our writer, and in odd but valid or damaged
    variants: the C parser returns what the Python one does, or declines (None) and leaves it to it."""
    parse = tarstream.parse_header
    assert parse is not None
    sink = io.BytesIO()
    with ArchiveWriter(sink, compress=False) as writer:
        writer.add_tree(tree, "site")
    archives = [sink.getvalue()]
    for tar_format in ("gnu", "posix", "v7"):
        args = ["tar", f"--format={tar_format}", "-cf", "-", "-C", str(tree), "sizes", "a", "exec.sh"]
        archives.append(subprocess.run(args, check=True, capture_output=True).stdout)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, mtime, uid in (("old.txt", -86_400, 1), ("future.txt", 2**34, 2**22), ("p/" * 60 + "x", 5, 3)):
            member = tarfile.TarInfo(name)
            member.size, member.mtime, member.uid = 3, mtime, uid
            archive.addfile(member, io.BytesIO(b"abc"))
    archives.append(raw.getvalue())
    headers: list[bytes] = []
    for data in archives:
        monkeypatch.setattr(tarstream, "parse_header", None)
        in_python = read_ours(data)
        monkeypatch.setattr(tarstream, "parse_header", parse)
        assert read_ours(data) == in_python  # whole archives read alike
        headers += [data[offset : offset + 512] for offset in range(0, len(data) - 512, 512)
                    if data[offset + 257 : offset + 262] in (b"ustar", b"\0" * 5)]  # fmt: skip
    plain = next(header for header in headers if header[156:157] == b"0" and header[257:263] == b"ustar\0")
    variants = {
        "spaces": _with_number(plain, 100, b"  644 \0 "),
        "empty": _with_number(plain, 108, b"\0" * 8),
        "all digits": _with_number(plain, 124, b"000000000003"),
        "no terminator": _with_number(plain, 136, b"1" * 12),
        "a pre-POSIX directory": _with_number(plain, 0, b"olddir/".ljust(100, b"\0") + plain[100:156] + b"\0"),
    }
    declined = {
        "digits after a space": _with_number(plain, 100, b"0644 644"),
        "a sign": _with_number(plain, 100, b"-0000644"),
        "a prefix": _with_number(plain, 100, b"0o644\0\0\0"),
        "base-256": _with_number(plain, 124, b"\x80" + bytes(11)),
        "a leading NUL": _with_number(plain, 100, b"\x000000644"),
        "a wrong checksum": plain[:148] + b"0000000\0" + plain[156:],
    }
    accepted = 0
    for block in [*headers, *variants.values(), *declined.values()]:
        fields = parse(block)
        monkeypatch.setattr(tarstream, "parse_header", None)
        try:
            expected: Member | str = tarstream._parse_header(block)
        except ArchiveDamaged as exc:
            expected = str(exc)
        monkeypatch.setattr(tarstream, "parse_header", parse)
        if fields is not None:
            assert Member(*fields) == expected, block
            accepted += 1
    assert accepted >= len(headers) // 2 + len(variants)  # the common case does not fall back
    assert all(parse(block) is not None for block in variants.values())
    assert [label for label, block in declined.items() if parse(block) is not None] == []


def test_unread_data_is_skipped_and_views_hold_the_member_bytes() -> None:
    raw = io.BytesIO()
    contents = {f"f{index}": os.urandom(size) for index, size in enumerate((0, 1, 511, 512, 513, 3 << 20))}
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in contents.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    reader = TarReader(io.BytesIO(raw.getvalue()).read)
    for index, member in enumerate(reader.members()):
        if index % 2:  # every other member is left unread
            assert reader.read_all() == contents[member.name]
    with tarfile.open(fileobj=io.BytesIO(raw.getvalue())) as archive:
        archive.getmembers()
        end = archive.offset  # where the end-of-archive blocks start
    assert reader.consumed == end + 512  # it stops right after the first zero block


def _sample_archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for index in range(20):
            member = tarfile.TarInfo(f"dir/file{index}.txt")
            content = os.urandom(700)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    return raw.getvalue()


def _drain(data: bytes) -> None:
    archive = TarReader(io.BytesIO(data).read)
    for _ in archive.members():
        archive.read_all()


@pytest.mark.parametrize("cut", [100, 512, 1000, 1536, 7000, 20 * 1536])
def test_a_cut_stream_is_truncated_never_complete(cut: int) -> None:
    with pytest.raises(ArchiveTruncated):
        _drain(_sample_archive()[:cut])


@pytest.mark.parametrize("offset", [0, 100, 148, 1536 + 124, 3 * 1536])
def test_a_damaged_header_is_damage(offset: int) -> None:
    data = bytearray(_sample_archive())
    data[offset] ^= 0x55
    with pytest.raises(ArchiveDamaged):
        _drain(bytes(data))


def test_an_oversized_extended_header_is_refused_not_read_into_memory() -> None:
    header = tarfile.TarInfo("x")
    header.type, header.size = tarfile.XHDTYPE, 4 << 30  # 4 GiB of "pax records"
    block = header.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(ArchiveDamaged, match="extended header"):
        _drain(block + bytes(1024))


# -- decompression --------------------------------------------------------------------------------


def _volumes(tmp_path: Path, data: bytes, parts: int) -> list[Path]:
    compressed = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    step = len(compressed) // parts + 1
    paths = []
    for index in range(parts):
        path = tmp_path / f"v.{index:03d}"
        path.write_bytes(compressed[index * step : (index + 1) * step])
        paths.append(path)
    return paths


def _stream(paths: list[Path]) -> TarStream:
    return decompressed(io.BufferedReader(ConcatenatedReader(paths), 1 << 20))


@pytest.mark.parametrize("how", ["fed", "files", "in-process"])
def test_decompression_fed_by_a_thread_read_from_files_or_in_process(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fed: zstd's stdin written by our thread (FTP); files: zstd reads one volume, or several via cat."""
    if how == "in-process":
        monkeypatch.setattr(decompress.shutil, "which", lambda _name: None)
    make = open_stream if how == "files" else _stream
    data = _sample_archive()
    with make(_volumes(tmp_path, data, 3)) as stream:
        assert how != "files" or stream._reader is not None  # type: ignore[attr-defined]
        received = b""
        while chunk := stream.read():
            received += chunk
    assert received == data
    cut = _volumes(tmp_path, data, 2)[:1]  # the first of two volumes: an import waiting for the second
    check = check_stream(make(cut))
    assert not check.complete and "ends early" in check.problem
    damaged = _volumes(tmp_path, data, 1)
    content = bytearray(damaged[0].read_bytes())
    content[len(content) // 2] ^= 0xFF
    damaged[0].write_bytes(content)
    check = check_stream(make(damaged))
    assert check.complete and not check.intact and "damaged" in check.problem


def _listed_archive(count: int, *, reverse_list: bool = False, wrong: str = "", extra: str = "") -> TarStream:
    """`count` members and their SHA256SUMS last, as the writer lists them (or in reverse)."""
    raw, lines = io.BytesIO(), []
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:

        def add(name: str, content: bytes) -> None:
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))

        for index in range(count):
            name, content = f"domains/a.test/files/f{index:06d}.txt", f"file {index}".encode()
            add(name, content)
            listed = content + b"!" if name == wrong else content
            lines.append(f"{hashlib.sha256(listed).hexdigest()}  {name}\n")
        if extra:
            lines.append(f"{hashlib.sha256(b'gone').hexdigest()}  {extra}\n")
        add("SHA256SUMS", "".join(reversed(lines) if reverse_list else lines).encode())
    return decompressed(io.BufferedReader(io.BytesIO(raw.getvalue())))


def test_checking_an_archive_keeps_its_digests_on_disk_not_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "SPOOL_MAX_MEMORY", 64 << 10)
    peaks = []
    for count in (4_000, 16_000):
        stream = _listed_archive(count)
        tracemalloc.start()
        try:
            check = check_stream(stream)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert check.intact and check.members == count + 1, check.problem
    assert peaks[1] < 1.5 * peaks[0], peaks  # four times the members: held in tables, about four times the memory


def test_checking_names_wrong_and_missing_members_in_any_list_order() -> None:
    check = check_stream(_listed_archive(50, wrong="domains/a.test/files/f000007.txt"))
    assert check.complete and not check.intact
    assert check.mismatched == ["domains/a.test/files/f000007.txt"]
    assert check.problem == "checksum mismatch: domains/a.test/files/f000007.txt"
    assert check_stream(_listed_archive(50, reverse_list=True)).intact  # another order: compared as tables
    check = check_stream(_listed_archive(50, reverse_list=True, extra="domains/a.test/files/lost.txt"))
    assert check.mismatched == ["domains/a.test/files/lost.txt"]


def test_a_volume_that_cannot_be_read_is_an_error_not_a_short_archive(tmp_path: Path) -> None:
    data = _sample_archive()
    paths = _volumes(tmp_path, data, 2)
    unreadable = tmp_path / "directory-not-volume"
    unreadable.mkdir()
    with open_stream([*paths, unreadable]) as stream, pytest.raises(OSError, match="reading the volumes failed"):
        stream.drain()


@pytest.mark.parametrize("how", ["fed", "files"])
def test_a_failing_consumer_leaves_no_process_behind(how: str, tmp_path: Path) -> None:
    data = os.urandom(4 << 20) * 4  # larger than the pipes: zstd blocks writing when nobody reads
    stream = (open_stream if how == "files" else _stream)(_volumes(tmp_path, data, 2))
    assert stream.read()
    processes = [stream._process, stream._reader]  # type: ignore[attr-defined]
    stream.close()
    assert all(process is None or process.poll() is not None for process in processes)


# -- extraction -----------------------------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o640) -> Member:
    return Member(name, kind, mode, os.getuid(), os.getgid(), 0, 1_600_000_000, link)


def _chunks(*parts: bytes) -> Iterator[memoryview]:
    return iter(memoryview(part) for part in parts)


def test_extraction_writes_mode_mtime_and_reports_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extraction = Extraction(overwrite=False, hashing=True)
    extraction.write(tmp_path, "a/b", _member("a/b/", tarfile.DIRTYPE, mode=0o750), ())
    extraction.write(tmp_path, "a/b/c.txt", _member("x/c.txt"), _chunks(b"hello ", b"world"))
    extraction.write(tmp_path, "a/link", _member("x/link", tarfile.SYMTYPE, "b/c.txt"), ())
    extraction.finish()
    path = tmp_path / "a" / "b" / "c.txt"
    assert path.read_bytes() == b"hello world"
    assert (path.stat().st_mode & 0o777, int(path.stat().st_mtime)) == (0o640, 1_600_000_000)
    assert ((tmp_path / "a" / "b").stat().st_mode & 0o777, int((tmp_path / "a" / "b").stat().st_mtime)) == (
        0o750, 1_600_000_000,
    )  # fmt: skip
    assert os.readlink(tmp_path / "a" / "link") == "b/c.txt"
    assert extraction.digests == {"x/c.txt": hashlib.sha256(b"hello world").hexdigest()}
    old_umask = os.umask(0o022)  # what a daemon usually has: it would cut the group and other bits
    monkeypatch.setattr(extract, "_UMASK", 0o022)  # as read when the worker started
    try:
        extraction = Extraction(overwrite=True, hashing=True)
        for name in ("a/b/shared.txt", "new/shared.txt"):  # in an existing directory, in a new one
            extraction.write(tmp_path, name, _member(name, mode=0o666), _chunks(b"x"))
        extraction.finish()
    finally:
        os.umask(old_umask)
    assert {(tmp_path / name).stat().st_mode & 0o777 for name in ("a/b/shared.txt", "new/shared.txt")} == {0o666}
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["c.txt", "shared.txt"]  # no temporary name left
    assert extraction.digests == dict.fromkeys(("a/b/shared.txt", "new/shared.txt"), hashlib.sha256(b"x").hexdigest())


def test_keep_and_overwrite(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"mine")
    kept = Extraction(overwrite=False)
    kept.write(tmp_path, "f.txt", _member("f.txt"), _chunks(b"theirs"))
    assert (tmp_path / "f.txt").read_bytes() == b"mine" and kept.kept == 1
    replaced = Extraction(overwrite=True)
    replaced.write(tmp_path, "f.txt", _member("f.txt"), _chunks(b"theirs"))
    assert (tmp_path / "f.txt").read_bytes() == b"theirs" and replaced.written == 1


def test_nothing_is_written_through_a_symlink_already_on_disk(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "up").symlink_to(outside)
    extraction = Extraction(overwrite=True)
    with pytest.raises(RefusedMember, match="symlink"):
        extraction.write(root, "up/evil.txt", _member("up/evil.txt"), _chunks(b"evil"))
    with pytest.raises(RefusedMember, match="in the way"):
        extraction.write(root, "up", _member("up"), _chunks(b"evil"))
    extraction.close()
    assert list(outside.iterdir()) == []


def test_nothing_is_written_below_a_link_that_was_not_created(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=False)
    extraction.write(tmp_path, "site/up", _member("site/up", tarfile.SYMTYPE, "../.."), ())
    extraction.write(tmp_path, "site/upper.txt", _member("site/upper.txt"), _chunks(b"fine"))  # a name, not a path
    with pytest.raises(RefusedMember, match=r"site/up/evil\.txt: a path through the link site/up,"):
        extraction.write(tmp_path, "site/up/evil.txt", _member("site/up/evil.txt"), _chunks(b"evil"))
    extraction.close()
    assert extraction.refused_links == ["site/up -> ../.."]
    assert os.listdir(tmp_path / "site") == ["upper.txt"]  # no directory in the link's place


def test_names_that_collide_once_folded_are_refused_within_a_directory(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=False)
    extraction.write(tmp_path, "d/Readme.txt", _member("d/Readme.txt"), _chunks(b"one"))
    extraction.write(tmp_path, "d/sub/README.txt", _member("d/sub/README.txt"), _chunks(b"two"))  # another directory
    with pytest.raises(RefusedMember, match=r"d/README\.txt: collides with d/Readme\.txt"):
        extraction.write(tmp_path, "d/README.txt", _member("d/README.txt"), _chunks(b"three"))
    extraction.write(tmp_path, "d/caf\u00e9.txt", _member("d/caf\u00e9.txt"), _chunks(b"nfc"))
    with pytest.raises(RefusedMember, match="collides with d/caf"):
        extraction.write(tmp_path, "d/cafe\u0301.txt", _member("d/cafe\u0301.txt"), _chunks(b"nfd"))
    extraction.close()


def test_an_archive_that_comes_back_to_a_directory_it_left_is_refused(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=False)
    for name in ("a/x.txt", "a/deeper/y.txt", "a/z.txt", "b/y.txt"):  # below a directory is still inside it
        extraction.write(tmp_path, name, _member(name), _chunks(b"x"))
    with pytest.raises(RefusedMember, match=r"a/again\.txt: the archive had already left this directory"):
        extraction.write(tmp_path, "a/again.txt", _member("a/again.txt"), _chunks(b"x"))
    extraction.close()


def test_the_collision_check_holds_one_directory_not_every_member(tmp_path: Path) -> None:
    peaks = []
    for directories in (4, 16):
        extraction = Extraction(overwrite=False)
        tracemalloc.start()
        try:
            for directory in range(directories):
                for index in range(300):
                    name = f"site{directories}/d{directory:03d}/message-{index:05d}.eml"
                    extraction.write(tmp_path, name, _member(name), _chunks(b"m"))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        extraction.close()
    assert peaks[1] < 1.5 * peaks[0], peaks  # four times the members in a table: about four times the memory


def test_a_failing_data_stream_leaves_no_file_under_a_real_name(tmp_path: Path) -> None:
    def broken() -> Iterator[memoryview]:
        yield memoryview(b"first part")
        raise OSError("the stream broke")

    extraction = Extraction(overwrite=False)
    with pytest.raises(OSError, match="broke"):
        extraction.write(tmp_path, "d/f.txt", _member("d/f.txt"), broken())
    extraction.close()
    assert os.listdir(tmp_path / "d") == []


def test_a_new_directory_appears_whole_when_the_stream_leaves_it(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=False)
    extraction.write(tmp_path, "new/sub/a.txt", _member("new/sub/a.txt"), _chunks(b"a"))
    (temporary,) = os.listdir(tmp_path)  # files go straight in, under a directory not yet named
    assert temporary.startswith(".hostbackup-restoring.") and not (tmp_path / "new").exists()
    extraction.write(tmp_path, "other.txt", _member("other.txt"), _chunks(b"o"))
    assert (tmp_path / "new" / "sub" / "a.txt").read_bytes() == b"a"
    extraction.write(tmp_path, "new/b.txt", _member("new/b.txt"), _chunks(b"b"))  # back in: it exists now
    extraction.write(tmp_path, "new/b.txt", _member("new/b.txt"), _chunks(b"again"))  # kept: overwrite is off
    extraction.finish()
    assert sorted(os.listdir(tmp_path)) == ["new", "other.txt"]
    assert sorted(os.listdir(tmp_path / "new")) == ["b.txt", "sub"]
    assert (tmp_path / "new" / "b.txt").read_bytes() == b"b" and extraction.kept == 1


def test_a_name_twice_in_a_new_directory_keeps_the_later_member_like_tar(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=False)
    extraction.write(tmp_path, "d/x.txt", _member("d/x.txt"), _chunks(b"first"))
    extraction.write(tmp_path, "d/x.txt", _member("d/x.txt"), _chunks(b"second"))
    extraction.finish()
    assert os.listdir(tmp_path / "d") == ["x.txt"] and (tmp_path / "d" / "x.txt").read_bytes() == b"second"


def test_files_that_follow_in_a_new_directory_go_straight_in_with_the_same_checks(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=False)
    extraction.write(tmp_path, "site/d", _member("site/d", tarfile.DIRTYPE, mode=0o750), ())
    assert not extraction.start_run(tmp_path, "site")  # only the directory last written into
    assert extraction.start_run(tmp_path, "site/d")
    extraction.write_in_run(_member("site/d/Readme.txt"), memoryview(b"one"))
    extraction.write_in_run(_member("site/d/x.txt"), memoryview(b"first"))
    extraction.write_in_run(_member("site/d/x.txt"), memoryview(b"second"))  # named twice: the later one, as tar does
    with pytest.raises(RefusedMember, match=r"site/d/README\.txt: collides with site/d/Readme\.txt"):
        extraction.write_in_run(_member("site/d/README.txt"), memoryview(b"two"))
    extraction.finish()
    directory = tmp_path / "site" / "d"
    assert sorted(os.listdir(directory)) == ["Readme.txt", "x.txt"] and extraction.written == 3
    assert (directory / "x.txt").read_bytes() == b"second"
    readme = (directory / "Readme.txt").stat()
    assert (readme.st_mode & 0o777, int(readme.st_mtime)) == (0o640, 1_600_000_000)


def test_files_in_an_existing_directory_below_a_refused_link_or_hashed_take_the_general_path(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    extraction = Extraction(overwrite=False)
    extraction.write(tmp_path, "old/a.txt", _member("old/a.txt"), _chunks(b"a"))
    assert not extraction.start_run(tmp_path, "old")  # its files go under a temporary name and wait for the gate
    extraction.write(tmp_path, "site/up", _member("site/up", tarfile.SYMTYPE, "../.."), ())
    extraction.write(tmp_path, "site/up", _member("site/up", tarfile.DIRTYPE), ())  # made in the refused link's place
    assert not extraction.start_run(tmp_path, "site/up")
    with pytest.raises(RefusedMember, match="a path through the link site/up"):
        extraction.write(tmp_path, "site/up/evil.txt", _member("site/up/evil.txt"), _chunks(b"evil"))
    extraction.close()
    hashed = Extraction(overwrite=False, hashing=True)
    hashed.write(tmp_path, "new/a.txt", _member("new/a.txt"), _chunks(b"a"))
    assert not hashed.start_run(tmp_path, "new")  # its digests are taken by `write`
    hashed.close()


def test_a_killed_restore_leaves_no_file_under_a_real_name_and_a_retry_completes(tmp_path: Path) -> None:
    killed = Extraction(overwrite=False)
    killed.write(tmp_path, "site/index.html", _member("site/index.html"), _chunks(b"complete"))
    killed.write(tmp_path, "site/big.bin", _member("site/big.bin"), _chunks(b"half of it"))
    # the process dies here: no close, no rename; a retry that keeps existing files runs next
    assert not (tmp_path / "site").exists()
    retry = Extraction(overwrite=False)
    retry.write(tmp_path, "site/index.html", _member("site/index.html"), _chunks(b"complete"))
    retry.write(tmp_path, "site/big.bin", _member("site/big.bin"), _chunks(b"half of it", b" and the rest"))
    retry.finish()
    assert (tmp_path / "site" / "big.bin").read_bytes() == b"half of it and the rest" and retry.kept == 0


def test_a_directory_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    extraction = Extraction(overwrite=True)
    extraction.write(tmp_path, "new/a.txt", _member("new/a.txt"), _chunks(b"restored"))
    (tmp_path / "new").mkdir()  # somebody else made it while the restore wrote into its new copy
    (tmp_path / "new" / "theirs.txt").write_bytes(b"theirs")
    extraction.finish()
    assert extraction.unplaced and extraction.unplaced[0].startswith("new (left as .hostbackup-restoring.")
    assert os.listdir(tmp_path / "new") == ["theirs.txt"]
    (left,) = [name for name in os.listdir(tmp_path) if name != "new"]
    assert (tmp_path / left / "a.txt").read_bytes() == b"restored"
