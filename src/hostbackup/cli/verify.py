"""`hostbackup verify`: check a backup without restoring it."""

from __future__ import annotations

import click
from sqlalchemy import select

from hostbackup.backup.metadata import BackupMeta
from hostbackup.config import Settings
from hostbackup.db.tables import User, Webspace
from hostbackup.errors import ApiError, NotFound
from hostbackup.home import open_home
from hostbackup.restore.sources import VolumeSource, not_found_text, volume_source
from hostbackup.restore.verify import verify_backup
from hostbackup.storage.base import StorageError
from hostbackup.storage.layout import Owner
from hostbackup.tasks.task import TargetKind
from hostbackup.xmlapi.context import Services

OWNER_HELP = "server, reseller:LOGIN, customer:LOGIN or webspace:NAME"


def parse_owner(services: Services, text: str) -> Owner:
    """An owner from `server`, `reseller:LOGIN`, `customer:LOGIN` or `webspace:NAME`, which must exist
    (a deleted one's backups are kept below `dumps/.deleted/`, out of reach by name)."""
    kind, _, name = text.partition(":")
    try:
        target = TargetKind(kind)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use {OWNER_HELP}") from None
    if (target is TargetKind.SERVER) != (name == ""):
        raise click.BadParameter(f"{text!r}: a name goes with reseller, customer and webspace only")
    with services.db.session() as session:
        if target is TargetKind.WEBSPACE:
            found = session.scalar(select(Webspace.id).where(Webspace.name == name))
        elif target is TargetKind.SERVER:
            found = None
        else:
            found = session.scalar(select(User.id).where(User.login == name, User.kind == target.value))
    if target is not TargetKind.SERVER and found is None:
        raise click.ClickException(NotFound(target.value.capitalize()).text)
    return Owner(target, found, name)


def open_source(services: Services, owner: Owner, remote: bool) -> VolumeSource:
    try:
        with services.db.session() as session:
            return volume_source(services, session, owner, remote=remote)
    except (ApiError, ValueError) as exc:
        raise click.ClickException(getattr(exc, "text", str(exc))) from None


def find_backup(source: VolumeSource, filename: str) -> BackupMeta:
    """The backup that FILENAME (any of its files) belongs to, or the error a user should read."""
    try:
        meta = source.find(filename)
        if meta is None:
            raise click.ClickException(not_found_text(source, filename))
    except StorageError as exc:  # --remote: the FTP server could not be reached or refused
        raise click.ClickException(exc.text) from None
    return meta


@click.command()
@click.argument("owner")
@click.argument("filename")
@click.option("--remote", is_flag=True, help="Read the backup from the owner's FTP storage.")
@click.option("--deep", is_flag=True, help="Also decompress and check every member against SHA256SUMS.")
@click.pass_obj
def verify(settings: Settings, owner: str, filename: str, remote: bool, deep: bool) -> None:
    """Check backup FILENAME of OWNER (server, reseller:LOGIN, customer:LOGIN, webspace:NAME)."""
    services = open_home(settings, announce=lambda _text: None)
    source = open_source(services, parse_owner(services, owner), remote)
    try:
        report = verify_backup(source, find_backup(source, filename), deep=deep)
    except StorageError as exc:
        raise click.ClickException(exc.text) from None
    finally:
        source.close()
    if not report.intact:
        raise click.ClickException(f"{report.backup}: {report.problem}")
    members = f", {report.members} members" if deep else ""
    click.echo(f"{report.backup}: intact ({report.volumes} volumes{members})")
