from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ftpserver import FtpServer, ftp_server
from harness import Server, postgres_server, start_server
from hostbackup.db.engine import Database, migrate


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One HTTPS server for the session (tests that change global state start their own)."""
    running = start_server(tmp_path_factory.mktemp("server") / "home")
    yield running
    running.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "home")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


_database_names = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of each supported kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        admin_url: str = request.getfixturevalue("postgres_url")
        name = f"hb_test_{next(_database_names)}_{abs(hash(str(tmp_path))) % 10**6}"
        engine = create_engine(
            admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    migrate(db.engine)
    yield db
    db.dispose()


# --- FTP servers (remote storage, issue #6) ------------------------------------------------------


@pytest.fixture(scope="session")
def vsftpd() -> Iterator[FtpServer]:
    """A plain-FTP vsftpd shared by the session (tests use their own sub-directories)."""
    with ftp_server() as running:
        yield running


@pytest.fixture(scope="session")
def vsftpd_tls() -> Iterator[FtpServer]:
    """An explicit-FTPS vsftpd (self-signed certificate, TLS session reuse required)."""
    with ftp_server(tls=True) as running:
        yield running
