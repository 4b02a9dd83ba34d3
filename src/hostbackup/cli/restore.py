"""`hostbackup restore`: restore a backup now, in this process, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from hostbackup.accounts.users import ADMIN_ID
from hostbackup.backup.catalog import Catalog
from hostbackup.cli.running import run_here
from hostbackup.cli.verify import parse_owner
from hostbackup.config import Settings
from hostbackup.db.engine import Database
from hostbackup.db.tables import User, Webspace
from hostbackup.home import open_home
from hostbackup.storage.layout import Owner, owner_dir
from hostbackup.tasks.task import TargetKind, TaskRequest


def _owner_id(db: Database, owner: Owner) -> int | None:
    """The account's id when it still exists (a deleted one is re-created from the backup)."""
    with db.session() as session:
        if owner.kind is TargetKind.WEBSPACE:
            return session.scalar(select(Webspace.id).where(Webspace.name == owner.name))
        if owner.kind is TargetKind.SERVER:
            return None
        return session.scalar(select(User.id).where(User.login == owner.name, User.kind == owner.kind.value))


@click.command()
@click.argument("owner")
@click.argument("filename")
@click.option("--webspace", default="", help="Only this webspace.")
@click.option("--component", type=click.Choice(["files", "mail", "databases"]), help="Only this component.")
@click.option("--path", default="", help="Only members whose archive path starts with this.")
@click.option("--target-directory", type=click.Path(path_type=Path, file_okay=False), help="Restore below here.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (default: keep them).")
@click.pass_obj
def restore(
    settings: Settings, owner: str, filename: str, webspace: str, component: str | None, path: str,
    target_directory: Path | None, overwrite: bool,
) -> None:  # fmt: skip
    """Restore backup FILENAME of OWNER (server, reseller:LOGIN, customer:LOGIN, webspace:NAME)."""
    services = open_home(settings)
    parsed = parse_owner(owner)
    meta = Catalog(owner_dir(settings.dumps_root, parsed)).find(filename)
    if meta is None:
        raise click.ClickException(f"The file {filename} does not exist")
    if webspace and webspace not in meta.webspaces:
        raise click.ClickException(f"the backup holds no webspace {webspace}")
    options = {
        "filename": meta.name, "webspace": webspace, "component": component or "", "path": path,
        "target_directory": str(target_directory.resolve()) if target_directory else "", "overwrite": overwrite,
        "webspaces": [webspace] if webspace else list(meta.webspaces),
    }  # fmt: skip
    owner_id = _owner_id(services.db, parsed)
    run_here(services, TaskRequest(parsed.kind, owner_id, parsed.name, ADMIN_ID, kind="restore",
                                   description=f"restore of {meta.name}", options=options))  # fmt: skip
