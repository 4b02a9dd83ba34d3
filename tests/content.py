"""Source trees with every awkward case, and a comparison that a user would care about."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

Snapshot = dict[bytes, tuple[str, int, int, bytes]]


def build_site(root: Path, seed: int = 1) -> None:
    """Web content with sizes around block boundaries, modes, mtimes, links, long and odd names."""
    rng = random.Random(seed)
    docs = root / "httpdocs"
    docs.mkdir(parents=True, exist_ok=True)
    for size in (0, 1, 511, 512, 513, 10_000):
        (docs / f"size-{size}.bin").write_bytes(rng.randbytes(size))
    (docs / "random.bin").write_bytes(rng.randbytes(3 * 1024 * 1024 + 17))
    (docs / "index.php").write_text("<?php echo 'hello';\n" * 50_000)
    (docs / "empty-dir").mkdir()
    secret = docs / "private.conf"
    secret.write_text("mode 0600\n")
    secret.chmod(0o600)
    script = docs / "cgi.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    locked = docs / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text("x")
    locked.chmod(0o750)
    (docs / "link-relative").symlink_to("index.php")
    (docs / "link-absolute").symlink_to("/etc/hostname")
    (docs / "link-dangling").symlink_to("does/not/exist")
    (docs / ("n" * 150 + ".txt")).write_text("long name\n")
    deep = docs / "/".join(["segment-of-a-long-path-" + str(i) for i in range(12)])
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("deep\n")
    (docs / "café ünïcode.txt").write_text("utf-8 name\n")
    os.close(os.open(os.fsencode(docs) + b"/caf\xe9-latin1.txt", os.O_WRONLY | os.O_CREAT, 0o644))
    for number, path in enumerate(sorted(docs.rglob("*"))):
        if not path.is_symlink():
            os.utime(path, (1_700_000_000 + number * 97, 1_700_000_000 + number * 97))


def snapshot(root: Path) -> Snapshot:
    """Relative path → (kind, mode, mtime, content or link target) for everything below `root`."""
    found: Snapshot = {}
    base = os.fsencode(root)
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, base)
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", 0, 0, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("dir", stat.S_IMODE(info.st_mode), int(info.st_mtime), b"")
            else:
                with open(path, "rb") as handle:
                    found[relative] = ("file", stat.S_IMODE(info.st_mode), int(info.st_mtime), handle.read())
    return found


def assert_same_tree(source: Path, restored: Path) -> None:
    expected, actual = snapshot(source), snapshot(restored)
    assert sorted(actual) == sorted(expected), set(actual) ^ set(expected)
    for path, entry in expected.items():
        if entry[0] == "dir":  # tar sets a directory's mtime after filling it: compare kind and mode
            assert actual[path][:2] == entry[:2], path
        else:
            assert actual[path] == entry, path
