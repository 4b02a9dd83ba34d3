"""Opening the database: engine, sessions, and migrations applied automatically on start.

SQLite runs in WAL mode with a busy timeout so that the API process and the worker processes
can share one file; PostgreSQL (HOSTBACKUP_DATABASE_URL) is how several machines share a queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # a pool as large as the API's thread pool: connections are reused, not reopened under load
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=20, max_overflow=20
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def newest_revision() -> str:
    """The newest migration's revision: each file is named `<revision>_<what it does>.py`, in order."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None before the first migration."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent, safe on every start).

    A database already there is left alone without loading alembic: that import was a fifth of
    the start of every CLI command."""
    if current_revision(engine) == newest_revision():
        return
    from alembic import command  # imported here: processes that never migrate stay smaller
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def after_commit(self, hook: Callable[[Session], None]) -> None:
        """Call `hook` with each session of this database right after it committed."""
        event.listen(self._sessions, "after_commit", hook)

    def dispose(self) -> None:
        self.engine.dispose()
