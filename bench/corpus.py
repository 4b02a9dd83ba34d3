"""A deterministic, realistic hosting tree for benchmarks: customers, webspaces, web content, Maildirs
and databases.

Usage::

    .venv/bin/python bench/corpus.py HOME                 # ~1 GiB, 1 customer, seed 1
    .venv/bin/python bench/corpus.py HOME --small         # ~100 MB
    .venv/bin/python bench/corpus.py HOME --size-mb 4096 --customers 3 --seed 7

The command line writes files and mail only; databases need running servers, which `bench/run.py`
starts (private MariaDB and PostgreSQL, as the tests do) and hands to `build_corpus`.

HOME becomes a hostbackup home: the accounts (customers, webspaces, mailboxes) are created through the
library (`open_home`, `create_user`, `create_webspace`, `create_mailbox`) and the content is written
where the service looks for it: ``HOME/vhosts/<webspace>/…`` and ``HOME/mail/<webspace>/<mailbox>/``.

What a customer gets, as shares of its byte budget (the same seed always yields the same bytes, names
and modification times):

* ~22 % CMS code: tens of thousands of small PHP/JS/CSS/HTML/JSON files (log-normal sizes around
  5 KiB) in a WordPress-like layout (``wp-admin``, ``wp-includes``, plugins, themes), compressible;
* ~33 % media uploads: JPEG/MP4-like incompressible files, PNG-like half-compressible ones, SVG text;
* ~25 % a few large files: an access log (very compressible), a SQL dump, a ``.tar.gz`` and a video
  (incompressible);
* ~20 % mail: Maildirs with thousands of small messages (``cur/`` and ``new/``), a few with base64
  attachments;
* with database servers, ``db_bytes`` of it (by default a tenth) in real databases registered to the
  webspaces: the shop's in MariaDB, the blog's in PostgreSQL (or both in the one server given), each
  with WordPress-like ``posts`` (text of a few KiB a row) and ``postmeta`` (many short rows) tables,
  so a backup runs ``mariadb-dump`` and ``pg_dump`` on data of a known size.

Random bytes come from ``random.Random.randbytes`` (never a repeated pool), so deduplicating peers
(restic, borg) find no artificial duplicates; text is cut from a token pool at random offsets.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostbackup.accounts.databases import ServerAccess

MiB = 1024 * 1024
DEFAULT_BYTES = 1024 * MiB
SMALL_BYTES = 100 * MiB
ADMIN_PASSWORD = "Bench-Admin-1"
CUSTOMER_PASSWORD = "Bench-Customer-1"
EPOCH = 1_700_000_000  # modification times are fixed offsets from this, so trees are reproducible

CODE_SHARE, MEDIA_SHARE, LARGE_SHARE = 0.22, 0.33, 0.25  # the rest is mail
CODE_EXTENSIONS = ("php", "php", "php", "php", "js", "js", "css", "html", "json", "txt", "po")
MEDIA_KINDS = ("jpg", "jpg", "jpg", "png", "png", "webp", "svg", "pdf")
_TOKEN_TEXT = (
    "<?php function $post $wpdb->prepare( return array( 'post_type' => esc_html__( apply_filters( "
    "add_action( 'init', if ( ! defined( 'ABSPATH' ) ) { exit; } $this->get_option( foreach ( $items as "
    "$key => $value ) { echo '<div class=\"wrap\">'; } @param string $name The name. @return bool "
    "public static function __construct( WP_Query( new get_post_meta( $post_id, true ); } else { "
    "var jQuery document.querySelector( addEventListener('click', function (event) { const let "
    ".entry-content { margin: 0 auto; padding: 1.5rem; color: #333; font-family: sans-serif; } "
    '<div class="widget"><ul><li><a href="/wp-content/">Home</a></li></ul></div> translate msgid msgstr'
)
_WORD_TEXT = (
    "the of and to in is you that it he was for on are as with his they at be this have from or one had "
    "by word but not what all were we when your can said there use an each which she do how their if will "
    "up other about out many then them these so some her would make like him into time has look two more "
    "invoice order meeting shipment account password reset newsletter offer delivery attached regards"
)
TOKENS = _TOKEN_TEXT.split()
WORDS = _WORD_TEXT.split()


@dataclass
class Webspace:
    name: str
    mailboxes: list[str] = field(default_factory=list)
    databases: list[tuple[ServerAccess, str]] = field(default_factory=list)  # (server, database name)


@dataclass
class Customer:
    login: str
    id: int
    webspaces: list[Webspace]

    def databases(self) -> list[tuple[ServerAccess, str]]:
        return [database for webspace in self.webspaces for database in webspace.databases]

    def paths(self) -> list[str]:
        """Content of this customer relative to the home: what a customer-level backup holds."""
        paths = [f"vhosts/{w.name}" for w in self.webspaces]
        paths += [f"mail/{w.name}" for w in self.webspaces if w.mailboxes]
        return paths


@dataclass
class Corpus:
    home: Path
    customers: list[Customer]
    files: int = 0
    bytes: int = 0  # files, mail and database rows
    database_bytes: int = 0  # of which database rows
    seconds: float = 0.0


class _Writer:
    """Writes files with deterministic content and mtimes, counting them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.files = 0
        self.bytes = 0
        pieces = [rng.choice(TOKENS) for _ in range(400_000)]
        self.code_pool = " ".join(pieces).replace("; ", ";\n").encode()
        self.text_pool = " ".join(rng.choice(WORDS) for _ in range(400_000)).encode()

    def text(self, pool: bytes, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            take = min(size - len(out), self.rng.randint(2048, 65536))
            start = self.rng.randrange(0, len(pool) - take)
            out += pool[start : start + take]
        return bytes(out)

    def half_compressible(self, size: int) -> bytes:
        """PNG-like: alternating runs of noise and flat colour."""
        out = bytearray()
        while len(out) < size:
            run = min(size - len(out), 4096)
            out += self.rng.randbytes(run) if self.rng.random() < 0.5 else bytes([self.rng.randrange(256)]) * run
        return bytes(out)

    def write(self, path: Path, data: bytes | bytearray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        stamp = EPOCH + self.rng.randrange(0, 86400 * 365)
        os.utime(path, (stamp, stamp))
        self.files += 1
        self.bytes += len(data)

    def write_large(self, path: Path, size: int, kind: str) -> None:
        """Large files are written in 8 MiB pieces so generation memory stays small."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                piece = min(left, 8 * MiB)
                if kind == "random":
                    f.write(self.rng.randbytes(piece))
                elif kind == "log":
                    f.write(self.log_lines(piece))
                else:
                    f.write(self.text(self.code_pool, piece))
                left -= piece
        os.utime(path, (EPOCH, EPOCH))
        self.files += 1
        self.bytes += size

    def log_lines(self, size: int) -> bytes:
        rng, out = self.rng, bytearray()
        pages = [f"/{'/'.join(rng.choices(WORDS, k=rng.randint(1, 3)))}.php" for _ in range(300)]
        while len(out) < size:
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
            line = (
                f"{ip} - - [12/Nov/2024:{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} +0000] "
                f'"GET {rng.choice(pages)} HTTP/1.1" {rng.choice((200, 200, 200, 304, 404))} {rng.randrange(99999)} '
                f'"-" "Mozilla/5.0 (X11; Linux x86_64)"\n'
            )
            out += line.encode()
        return bytes(out[:size])


def _lognormal_sizes(rng: random.Random, budget: int, mu: float, sigma: float, cap: int) -> list[int]:
    sizes: list[int] = []
    total = 0
    while total < budget:
        size = max(64, min(int(rng.lognormvariate(mu, sigma)), cap, budget - total))
        sizes.append(size)
        total += size
    return sizes


def _write_cms(writer: _Writer, root: Path, budget: int) -> None:
    rng = writer.rng
    sizes = _lognormal_sizes(rng, budget, 8.4, 1.1, 512 * 1024)  # median ~4.4 KiB
    plugins = [f"plugin-{rng.choice(WORDS)}-{n}" for n in range(max(4, len(sizes) // 400))]
    tops = ["wp-admin/includes", "wp-admin/css", "wp-admin/js", "wp-includes", "wp-includes/js", "wp-includes/blocks"]
    tops += [f"wp-content/plugins/{p}/{sub}" for p in plugins for sub in ("", "includes", "assets/js", "languages")]
    tops += ["wp-content/themes/twentytwenty/template-parts", "wp-content/themes/twentytwenty/assets/css"]
    for index, size in enumerate(sizes):
        directory = root / tops[(index // 30) % len(tops)]
        if index % 500 == 0:
            directory = directory / f"part{index // 500}"
        extension = CODE_EXTENSIONS[index % len(CODE_EXTENSIONS)]
        writer.write(directory / f"{rng.choice(WORDS)}-{index}.{extension}", writer.text(writer.code_pool, size))


def _write_media(writer: _Writer, root: Path, budget: int) -> None:
    rng = writer.rng
    sizes = _lognormal_sizes(rng, budget, 11.5, 1.0, 8 * MiB)  # median ~100 KiB
    for index, size in enumerate(sizes):
        kind = MEDIA_KINDS[index % len(MEDIA_KINDS)]
        directory = root / "wp-content" / "uploads" / str(2018 + index % 7) / f"{1 + (index // 7) % 12:02d}"
        if kind == "png":
            data = writer.half_compressible(size)
        elif kind == "svg":
            data = writer.text(writer.code_pool, size)
        else:
            data = rng.randbytes(size)
        writer.write(directory / f"img-{index}.{kind}", data)


def _write_large(writer: _Writer, root: Path, budget: int) -> None:
    plan = (
        ("logs/access_log", 0.32, "log"),
        ("httpdocs/wp-content/uploads/video/intro.mp4", 0.28, "random"),
        ("private/site-backup-2024.tar.gz", 0.22, "random"),
        ("private/database.sql", 0.18, "text"),
    )
    for relative, share, kind in plan:
        writer.write_large(root / relative, int(budget * share), kind)


def _write_maildir(writer: _Writer, maildir: Path, budget: int, mailbox_index: int) -> None:
    rng = writer.rng
    sizes = _lognormal_sizes(rng, budget, 8.6, 0.9, 4 * MiB)  # median ~5.4 KiB
    for index, size in enumerate(sizes):
        stamp = EPOCH + index * 97
        sub, flags = ("new", "") if index % 10 == 0 else ("cur", ":2,S" if index % 3 else ":2,RS")
        header = (
            f"Return-Path: <sender{index % 97}@example.org>\r\nDate: Mon, 13 Nov 2023 10:{index % 60:02d}:00 +0000\r\n"
            f"From: Sender {index % 97} <sender{index % 97}@example.org>\r\n"
            f"Subject: {' '.join(rng.choices(WORDS, k=5))}"
            f"\r\nMessage-ID: <{index}.{mailbox_index}@mail.example.org>\r\nMIME-Version: 1.0\r\n"
        ).encode()
        if size > 64 * 1024:  # an attachment: base64 of random bytes, 76-column lines
            raw = rng.randbytes(size * 3 // 4)
            body = b"Content-Type: application/pdf\r\n\r\n" + base64.encodebytes(raw)
        else:
            body = b"Content-Type: text/plain\r\n\r\n" + writer.text(writer.text_pool, max(0, size - len(header)))
        name = f"{stamp}.M{index}P{mailbox_index}.mail.example.org,S={len(header) + len(body)}{flags}"
        writer.write(maildir / sub / name, header + body)


_POST_STATUSES = ("publish", "publish", "publish", "draft", "private")
_META_KEYS = ("_edit_lock", "_edit_last", "_thumbnail_id", "_price", "_sku", "_stock", "_wp_page_template")
_ROWS_PER_INSERT = 200
_SCHEMA = {
    "mysql": (
        "CREATE TABLE posts (id INT PRIMARY KEY, author INT NOT NULL, created DATETIME NOT NULL, "
        "title VARCHAR(255) NOT NULL, content MEDIUMTEXT NOT NULL, status VARCHAR(20) NOT NULL) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
        "CREATE TABLE postmeta (id INT PRIMARY KEY, post_id INT NOT NULL, meta_key VARCHAR(255) NOT NULL, "
        "meta_value TEXT NOT NULL, KEY post_id (post_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
        "SET autocommit = 0;\n"
    ),
    "postgresql": (
        "CREATE TABLE posts (id integer PRIMARY KEY, author integer NOT NULL, created timestamp NOT NULL, "
        "title varchar(255) NOT NULL, content text NOT NULL, status varchar(20) NOT NULL);\n"
        "CREATE TABLE postmeta (id integer PRIMARY KEY, post_id integer NOT NULL, meta_key varchar(255) NOT NULL, "
        "meta_value text NOT NULL);\nCREATE INDEX postmeta_post_id ON postmeta (post_id);\n"
    ),
}
Row = tuple[int | str, ...]


def _posts(writer: _Writer, budget: int) -> Iterator[Row]:
    """Blog posts and shop products: a title and a few KiB of text each, about `budget` bytes."""
    rng, total, number = writer.rng, 0, 0
    while total < budget:
        number += 1
        content = writer.text(writer.text_pool, min(int(rng.lognormvariate(8.0, 0.9)), 64 * 1024, budget - total))
        title = " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(EPOCH - number * 3607))
        yield number, 1 + rng.randrange(20), created, title, content.decode(), rng.choice(_POST_STATUSES)
        total += len(content) + len(title) + 40


def _postmeta(writer: _Writer, posts: int, budget: int) -> Iterator[Row]:
    """Many short rows (keys and small values) spread over the posts, about `budget` bytes."""
    rng, total, number = writer.rng, 0, 0
    while total < budget:
        number += 1
        value = str(rng.randrange(10**6)) if rng.random() < 0.5 else " ".join(rng.choices(WORDS, k=rng.randint(1, 6)))
        key = rng.choice(_META_KEYS)
        yield number, 1 + rng.randrange(max(1, posts)), key, value
        total += len(key) + len(value) + 16


def _mysql_value(value: int | str) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _copy_value(value: int | str) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _load_statements(kind: str, table: str, rows: Iterator[Row]) -> Iterator[str]:
    """`rows` as SQL for the server's client: batched INSERTs (MariaDB) or one COPY (PostgreSQL)."""
    if kind == "postgresql":
        yield f"COPY {table} FROM stdin;\n"
        for row in rows:
            yield "\t".join(map(_copy_value, row)) + "\n"
        yield "\\.\n"
        return
    batch: list[str] = []
    for row in rows:
        batch.append("(" + ",".join(map(_mysql_value, row)) + ")")
        if len(batch) == _ROWS_PER_INSERT:
            yield f"INSERT INTO {table} VALUES {','.join(batch)};\n"
            batch = []
    if batch:
        yield f"INSERT INTO {table} VALUES {','.join(batch)};\n"
    yield "COMMIT;\n"


def _client(server: ServerAccess, database: str) -> list[str]:
    """The server's own client, reading SQL for `database` from its standard input."""
    if server.type == "postgresql":
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *server.connection_args(), "--dbname", database]
    return ["mariadb", "--no-defaults", *server.connection_args(), "--default-character-set=utf8mb4", database]


def _fill_database(writer: _Writer, server: ServerAccess, name: str, budget: int) -> int:
    """Create the tables in the (empty) database `name` and fill them through the server's own
    client, streamed; returns the bytes of row data generated."""
    generated = [0, 0]  # posts, bytes

    def posts() -> Iterator[Row]:
        for row in _posts(writer, budget * 4 // 5):
            generated[0] += 1
            generated[1] += sum(len(str(value)) for value in row)
            yield row

    def postmeta() -> Iterator[Row]:
        for row in _postmeta(writer, generated[0], budget - generated[1]):
            generated[1] += sum(len(str(value)) for value in row)
            yield row

    with tempfile.TemporaryFile() as errors:
        client = subprocess.Popen(
            _client(server, name), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
            env={**os.environ, **server.environment()},
        )  # fmt: skip
        assert client.stdin is not None
        try:
            with client.stdin as script:
                script.write(_SCHEMA[server.type].encode())
                for statement in _load_statements(server.type, "posts", posts()):
                    script.write(statement.encode())
                for statement in _load_statements(server.type, "postmeta", postmeta()):
                    script.write(statement.encode())
        except BrokenPipeError:
            pass  # the client stopped: its status and messages say why
        if client.wait() != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"loading {name} on {server.type} {server.host}:{server.port} failed: {message}")
    return generated[1]


def _add_databases(
    session: Any, services: Any, servers: Sequence[ServerAccess], layout: list[Webspace], records: list[Any]
) -> None:
    """Register the servers (once) and a database per webspace: the shop's in MariaDB, the blog's in
    PostgreSQL when both are given."""
    from hostbackup.accounts.databases import NewDatabase, NewDbServer, add_database, add_db_server, all_db_servers

    registered = {(server.host, server.port, server.type): server.id for server in all_db_servers(session)}
    ids = {}
    for server in servers:
        key = (server.host, server.port, server.type)
        if key not in registered:
            new = NewDbServer(server.host, str(server.port), server.type, server.admin, server.password)
            registered[key] = add_db_server(session, services.vault, new).id
        ids[server] = registered[key]
    preferred = ("mysql", "postgresql")
    for index, (webspace, record) in enumerate(zip(layout, records, strict=True)):
        wanted = preferred[index % 2]
        server = next((server for server in servers if server.type == wanted), servers[0])
        name = webspace.name.split(".")[0] + ("_wp" if server.type == "mysql" else "_db")
        add_database(session, services.vault, record, NewDatabase(name, server.type, ids[server]), adopt=False)
        webspace.databases.append((server, name))


def build_corpus(
    home: Path, *, total_bytes: int = DEFAULT_BYTES, customers: int = 1, seed: int = 1, quiet: bool = False,
    db_servers: Sequence[ServerAccess] = (), db_bytes: int | None = None,
) -> Corpus:  # fmt: skip
    """Create accounts and content for `customers` customers in the hostbackup home `home`.

    With `db_servers`, `db_bytes` of the total (default a tenth) go into databases on them."""
    from hostbackup.accounts.users import Role, create_user
    from hostbackup.accounts.webspaces import create_mailbox, create_webspace
    from hostbackup.config import Settings
    from hostbackup.home import open_home

    started = time.perf_counter()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HOSTBACKUP_ADMIN_PASSWORD", ADMIN_PASSWORD)
    settings = Settings.load(home)
    services = open_home(settings, announce=lambda _: None)
    rng = random.Random(seed)
    writer = _Writer(rng)
    corpus = Corpus(home=settings.home, customers=[])
    database_share = (total_bytes // 10 if db_bytes is None else db_bytes) // customers if db_servers else 0
    share = total_bytes // customers - database_share
    try:
        for number in range(1, customers + 1):
            login = f"bench{number:02d}"
            layout = [
                Webspace(f"shop{number}.example", ["info", "sales", "admin"]),
                Webspace(f"blog{number}.example", ["info"]),
            ]
            with services.db.session() as session:
                user = create_user(session, role=Role.CUSTOMER, login=login, password=CUSTOMER_PASSWORD, owner_id=1)
                records = []
                for webspace in layout:
                    record = create_webspace(session, settings.vhosts_root, name=webspace.name, owner=user)
                    for mailbox in webspace.mailboxes:
                        create_mailbox(session, settings.mail_root, record, name=mailbox)
                    records.append(record)
                if db_servers:
                    _add_databases(session, services, db_servers, layout, records)
                corpus.customers.append(Customer(login, user.id, layout))
            for index, webspace in enumerate(layout):
                part = share * (3 if index == 0 else 1) // 4  # the shop is the big one
                root = settings.vhosts_root / webspace.name
                if not quiet:
                    print(f"  {login}/{webspace.name}: {part / MiB:.0f} MiB …", file=sys.stderr, flush=True)
                _write_cms(writer, root / "httpdocs", int(part * CODE_SHARE))
                _write_media(writer, root / "httpdocs", int(part * MEDIA_SHARE))
                _write_large(writer, root, int(part * LARGE_SHARE))
                mail_budget = int(part * (1 - CODE_SHARE - MEDIA_SHARE - LARGE_SHARE))
                for mailbox_index, mailbox in enumerate(webspace.mailboxes):
                    weight = 0.6 if mailbox_index == 0 else 0.4 / max(1, len(webspace.mailboxes) - 1)
                    budget = int(mail_budget * (weight if len(webspace.mailboxes) > 1 else 1.0))
                    _write_maildir(writer, settings.mail_root / webspace.name / mailbox, budget, mailbox_index)
                for server, name in webspace.databases:
                    budget = database_share * (3 if index == 0 else 1) // 4
                    corpus.database_bytes += _fill_database(writer, server, name, budget)
    finally:
        services.db.dispose()
    corpus.files, corpus.bytes = writer.files, writer.bytes + corpus.database_bytes
    corpus.seconds = time.perf_counter() - started
    return corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("home", type=Path, help="hostbackup home to create (or add customers to)")
    parser.add_argument("--size-mb", type=int, default=DEFAULT_BYTES // MiB, help="total content in MiB")
    parser.add_argument("--small", action="store_true", help=f"about {SMALL_BYTES // MiB} MiB")
    parser.add_argument("--customers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    total = SMALL_BYTES if args.small else args.size_mb * MiB
    corpus = build_corpus(args.home, total_bytes=total, customers=args.customers, seed=args.seed)
    print(
        f"{corpus.home}: {len(corpus.customers)} customers, {corpus.files} files, "
        f"{corpus.bytes / MiB:.0f} MiB in {corpus.seconds:.1f} s "
        f"(logins {', '.join(c.login for c in corpus.customers)}, password {CUSTOMER_PASSWORD})"
    )


if __name__ == "__main__":
    main()
