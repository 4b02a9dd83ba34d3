"""`hostbackup restore`: restore a backup now, in this process, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import click

from hostbackup.accounts.users import ADMIN_ID
from hostbackup.cli.running import run_here
from hostbackup.cli.verify import find_backup, open_source, parse_owner
from hostbackup.config import Settings
from hostbackup.home import open_home
from hostbackup.tasks.task import TaskRequest


@click.command()
@click.argument("owner")
@click.argument("filename")
@click.option("--webspace", default="", help="Only this webspace.")
@click.option("--component", type=click.Choice(["files", "mail", "databases"]), help="Only this component.")
@click.option("--path", default="", help="Only members whose archive path starts with this.")
@click.option("--target-directory", type=click.Path(path_type=Path, file_okay=False), help="Restore below here.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (default: keep them).")
@click.option("--remote", is_flag=True, help="Read the backup from the owner's FTP storage.")
@click.pass_obj
def restore(
    settings: Settings, owner: str, filename: str, webspace: str, component: str | None, path: str,
    target_directory: Path | None, overwrite: bool, remote: bool,
) -> None:  # fmt: skip
    """Restore backup FILENAME of OWNER (server, reseller:LOGIN, customer:LOGIN, webspace:NAME)."""
    services = open_home(settings, announce=lambda _text: None)
    parsed = parse_owner(services, owner)
    source = open_source(services, parsed, remote)
    try:
        meta = find_backup(source, filename)
    finally:
        source.close()
    if webspace and webspace not in meta.webspaces:
        raise click.ClickException(f"the backup holds no webspace {webspace}")
    options = {
        "filename": meta.name, "webspace": webspace, "component": component or "", "path": path,
        "target_directory": str(target_directory.resolve()) if target_directory else "", "overwrite": overwrite,
        "webspaces": [webspace] if webspace else list(meta.webspaces), "remote": remote,
    }  # fmt: skip
    run_here(services, TaskRequest(parsed.kind, parsed.id, parsed.name, ADMIN_ID, kind="restore",
                                   description=f"restore of {meta.name}", options=options))  # fmt: skip
