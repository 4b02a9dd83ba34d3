"""`hostbackup verify`: check a backup without restoring it."""

from __future__ import annotations

import click

from hostbackup.backup.catalog import Catalog
from hostbackup.config import Settings
from hostbackup.restore.verify import verify_backup
from hostbackup.storage.layout import Owner, owner_dir
from hostbackup.tasks.task import TargetKind


def parse_owner(text: str) -> Owner:
    """`server`, `reseller:LOGIN`, `customer:LOGIN` or `webspace:NAME`."""
    kind, _, name = text.partition(":")
    try:
        target = TargetKind(kind)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use server, reseller:LOGIN, customer:LOGIN or webspace:NAME") from None
    if (target is TargetKind.SERVER) != (name == ""):
        raise click.BadParameter(f"{text!r}: a name goes with reseller, customer and webspace only")
    return Owner(target, None, name)


@click.command()
@click.argument("owner")
@click.argument("filename")
@click.option("--deep", is_flag=True, help="Also decompress and check every member against SHA256SUMS.")
@click.pass_obj
def verify(settings: Settings, owner: str, filename: str, deep: bool) -> None:
    """Check backup FILENAME of OWNER (server, reseller:LOGIN, customer:LOGIN, webspace:NAME)."""
    try:
        catalog = Catalog(owner_dir(settings.dumps_root, parse_owner(owner)))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    meta = catalog.find(filename)
    if meta is None:
        raise click.ClickException(f"The file {filename} does not exist")
    report = verify_backup(catalog.directory, meta, deep=deep)
    if not report.intact:
        raise click.ClickException(f"{report.backup}: {report.problem}")
    members = f", {report.members} members" if deep else ""
    click.echo(f"{report.backup}: intact ({report.volumes} volumes{members})")
