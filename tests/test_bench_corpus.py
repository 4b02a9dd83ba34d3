"""The benchmark's corpus (`bench/corpus.py`): the same seed gives the same tree, and the databases
it promises are really filled. `bench/run.py` is run by hand, so nothing else would notice when a
change to the library breaks the corpus it measures on."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbservers import DbServerHandle, mariadb_server, postgres_password_server
from hostbackup.accounts.databases import ServerAccess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from corpus import MiB, build_corpus

SIZE = 3 * MiB


def tree_digest(home: Path) -> str:
    """Names, sizes, modification times and contents of the web and mail content below `home`."""
    digest = hashlib.sha256()
    for top in ("vhosts", "mail"):
        for folder, directories, files in sorted(os.walk(home / top)):
            directories.sort()
            for name in sorted(files):
                path = Path(folder, name)
                stat = path.stat()
                digest.update(f"{path.relative_to(home)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_same_seed_gives_the_same_tree(tmp_path: Path) -> None:
    first = build_corpus(tmp_path / "a", total_bytes=SIZE, seed=1, quiet=True)
    again = build_corpus(tmp_path / "b", total_bytes=SIZE, seed=1, quiet=True)
    other = build_corpus(tmp_path / "c", total_bytes=SIZE, seed=2, quiet=True)
    assert first.files > 100 and (first.files, first.bytes) == (again.files, again.bytes)
    assert tree_digest(first.home) == tree_digest(again.home)
    assert tree_digest(first.home) != tree_digest(other.home)
    assert (first.home / "mail" / "shop1.example" / "info" / "cur").is_dir()


@pytest.fixture(scope="module")
def db_servers() -> Iterator[list[DbServerHandle]]:
    with mariadb_server() as maria, postgres_password_server() as pg:
        yield [maria, pg]


def test_databases_hold_the_rows_of_their_share(tmp_path: Path, db_servers: list[DbServerHandle]) -> None:
    access = [ServerAccess(s.type, s.host, s.port, s.admin, s.password) for s in db_servers]
    corpus = build_corpus(tmp_path / "home", total_bytes=SIZE, quiet=True, db_servers=access, db_bytes=SIZE // 4)
    assert SIZE // 5 < corpus.database_bytes <= SIZE // 4
    maria, pg = db_servers
    shop, blog = corpus.customers[0].databases()
    assert (shop[0].type, shop[1], blog[0].type, blog[1]) == ("mysql", "shop1_wp", "postgresql", "blog1_db")
    for server, name in ((maria, "shop1_wp"), (pg, "blog1_db")):
        posts, meta = server.sql(name, "SELECT count(*) FROM posts; SELECT count(*) FROM postmeta;").split()
        assert int(posts) > 10 and int(meta) > 10
