"""The `hostbackup` command: one module per command group, each a thin layer over the library.

A command's module is imported when that command runs, not before: `hostbackup customer list`
should not pay for the HTTPS server's imports, nor a worker hold them in memory.

The garbage collector is kept off the imported modules: they make no garbage, yet collecting
while they load cost a tenth of a second, and walking them again while the interpreter exits
another 0.15 s, on every command. glibc's mmap and trim thresholds are fixed first
(`hostbackup.malloc`), so that a worker's memory does not creep up from one backup to the next.
"""

from __future__ import annotations

import atexit
import gc
import importlib
from pathlib import Path

import click

from hostbackup.config import Settings
from hostbackup.malloc import fix_thresholds

COMMANDS = {  # name → "module:attribute"
    "serve": "hostbackup.cli.serve:serve",
    "admin": "hostbackup.cli.admin:admin",
    "demo": "hostbackup.cli.demo:demo",
    "worker": "hostbackup.cli.worker:worker",
    "backup": "hostbackup.cli.backup:backup",
    "verify": "hostbackup.cli.verify:verify",
    "restore": "hostbackup.cli.restore:restore",
    "customer": "hostbackup.cli.customer:customer",
    "webspace": "hostbackup.cli.webspace:webspace",
    "ftp-check": "hostbackup.cli.ftp:ftp_check",
}


class LazyGroup(click.Group):
    """A group whose commands are imported by name, when they are used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup)
@click.option("--home", type=click.Path(path_type=Path), help="Data directory (default: $HOSTBACKUP_HOME or ./var).")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Backup manager for web-hosting accounts, driven by the Plesk XML API."""
    ctx.obj = Settings.load(home)
    if not gc.isenabled():  # main() turned it off for the imports, which are done here
        gc.freeze()
        gc.enable()


def main() -> None:
    fix_thresholds()
    gc.disable()
    atexit.register(gc.freeze)  # the collections at exit then skip everything still alive
    cli(auto_envvar_prefix="HOSTBACKUP")
