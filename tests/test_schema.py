"""The schema's migrations: applied on start, and skipped cheaply once the database is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from hostbackup.db.engine import MIGRATIONS, Database, current_revision, migrate, newest_revision
from hostbackup.db.tables import Task


def test_the_newest_revision_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert newest_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_a_current_database_is_not_migrated_again_and_alembic_is_not_loaded(database: Database) -> None:
    assert current_revision(database.engine) == newest_revision()  # the fixture migrated it
    migrate(database.engine)  # again: nothing to do
    assert current_revision(database.engine) == newest_revision()
    code = (
        "import sys; from hostbackup.db.engine import Database, migrate; "
        f"migrate(Database({database.url!r}).engine); print('alembic' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"  # a CLI command on a current home starts without it


def test_an_empty_database_is_migrated_to_the_newest_revision(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/empty.db")
    try:
        assert current_revision(db.engine) is None
        migrate(db.engine)
        assert current_revision(db.engine) == newest_revision()
    finally:
        db.dispose()


def test_tasks_recorded_before_the_summary_column_survive_the_migration(database: Database) -> None:
    """A home upgraded from 0002: its finished tasks keep everything and read with an empty summary."""
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    row = {
        "kind": "backup", "target_kind": "customer", "target_id": 7, "target_name": "old", "requested_by": 1,
        "state": "finished", "protocol": "local", "prefix": "", "description": "before 0003", "options": "{}",
        "created": 1.0, "worker": "", "cancel_requested": False, "bytes_done": 5, "bytes_estimated": 5,
        "current_item": "", "filename": "backup_2611270000.tar.zst", "warnings": '["a file vanished"]', "error": "",
    }  # fmt: skip
    columns = ", ".join(row)
    with database.engine.begin() as connection:
        connection.execute(text(f"INSERT INTO tasks ({columns}) VALUES ({', '.join(':' + c for c in row)})"), row)
    migrate(database.engine)
    assert current_revision(database.engine) == newest_revision()
    with database.session() as session:
        [task] = session.scalars(select(Task)).all()
        assert (task.filename, task.warnings, task.summary) == ("backup_2611270000.tar.zst", ["a file vanished"], "")
