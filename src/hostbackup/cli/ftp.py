"""`hostbackup ftp-check`: try an owner's FTP/FTPS settings step by step and say which step fails.

"The upload failed" is the classic FTP backup complaint; this command answers *why* before a
backup runs: connect and log in, write a probe file, read it back, delete it. Each step prints
`ok` or the transport's own explanation (server, step, the server's reply).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import click

from hostbackup.accounts.users import ADMIN, Role, find_user
from hostbackup.accounts.webspaces import find_webspace
from hostbackup.config import Settings
from hostbackup.errors import ApiError
from hostbackup.home import open_home
from hostbackup.storage import remote_settings
from hostbackup.storage.base import StorageError
from hostbackup.storage.ftp import FtpEndpoint, FtpStorage
from hostbackup.storage.layout import Owner
from hostbackup.tasks.task import TargetKind

PROBE_NAME = "hostbackup-ftp-check.tmp"


def parse_owner(text: str, settings: Settings) -> Owner:
    kind_text, _, name = text.partition(":")
    if kind_text == "server" and not name:
        return Owner(TargetKind.SERVER, None, "")
    if kind_text not in ("customer", "reseller", "webspace") or not name:
        raise click.BadParameter("use customer:LOGIN, reseller:LOGIN, webspace:NAME or server", param_hint="--owner")
    services = open_home(settings)
    with services.db.session() as session:
        if kind_text == "webspace":
            webspace = find_webspace(session, ADMIN, name=name)
            return Owner(TargetKind.WEBSPACE, webspace.id, webspace.name)
        user = find_user(session, ADMIN, Role(kind_text), login=name)
        return Owner(TargetKind(kind_text), user.id, user.login)


def run_steps(storage: FtpStorage, say: Callable[[str], None]) -> bool:
    """Connect/login, write, read back, delete; True when every step worked."""
    probe = os.urandom(64 * 1024)
    received = bytearray()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("connect and log in", storage.list),
        ("write a test file", lambda: storage.write(PROBE_NAME, io.BytesIO(probe))),
        ("read it back", lambda: storage.read(PROBE_NAME, received.extend)),
        ("delete it", lambda: storage.remove(PROBE_NAME)),
    ]
    for label, step in steps:
        try:
            step()
        except StorageError as error:
            say(f"{label}: FAILED — {error.text}")
            return False
        if label == "read it back" and bytes(received) != probe:
            say(f"{label}: FAILED — the file read back differs from what was written")
            return False
        say(f"{label}: ok")
    return True


@click.command("ftp-check")
@click.option("--owner", required=True, help="customer:LOGIN, reseller:LOGIN, webspace:NAME or server.")
@click.pass_obj
def ftp_check(settings: Settings, owner: str) -> None:
    """Check an owner's remote storage settings: connect, log in, write, read back, delete."""
    try:
        target = parse_owner(owner, settings)
        services = open_home(settings)
        with services.db.session() as session:
            endpoint: FtpEndpoint | None = remote_settings.endpoint(session, services.vault, target)
    except ApiError as err:
        raise click.ClickException(err.text) from None
    if endpoint is None:
        raise click.ClickException(f"remote storage is not configured for {owner} (host and login are needed)")
    click.echo(f"checking {endpoint.url} ({'passive' if endpoint.passive else 'active'} mode)")
    storage = FtpStorage(endpoint)
    try:
        if not run_steps(storage, click.echo):
            raise click.exceptions.Exit(1)
    finally:
        storage.close()
