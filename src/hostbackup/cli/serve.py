"""`hostbackup serve`: the XML API over HTTPS (or plain HTTP with --http)."""

from __future__ import annotations

import os
from pathlib import Path

import click
import uvicorn

from hostbackup.config import Settings
from hostbackup.home import open_home
from hostbackup.jobs import discard
from hostbackup.tasks.supervisor import Supervisor
from hostbackup.tls import ensure_self_signed
from hostbackup.xmlapi.listeners import run_api_processes


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=int)
@click.option("--http", "plain_http", is_flag=True, help="Serve plain HTTP instead of HTTPS (local scripts, tests).")
@click.option("--tls-cert", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--tls-key", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--demo", is_flag=True, help="Seed demo accounts and content first (once per home).")
@click.option(
    "--api-processes", type=click.IntRange(min=1), default=None,
    help="API processes (default: one per CPU core, at most 4); backups run in their own worker processes.",
)  # fmt: skip
@click.option("--log-level", default="info", show_default=True)
@click.pass_obj
def serve(
    settings: Settings,
    host: str,
    port: int,
    plain_http: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    demo: bool,
    api_processes: int | None,
    log_level: str,
) -> None:
    """Serve the Plesk-compatible XML API at /enterprise/control/agent.php."""
    services = open_home(settings)
    if demo:
        from hostbackup.demo import seed_demo

        seed_demo(services, click.echo, port=port, https=not plain_http)
    ssl_options: dict[str, str] = {}
    if not plain_http:
        if (tls_cert is None) != (tls_key is None):
            raise click.UsageError("--tls-cert and --tls-key go together")
        if tls_cert is None or tls_key is None:
            ensure_self_signed(settings.tls_cert, settings.tls_key)
            tls_cert, tls_key = settings.tls_cert, settings.tls_key
        ssl_options = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
    scheme = "http" if plain_http else "https"
    click.echo(f"hostbackup XML API on {scheme}://{host}:{port}/enterprise/control/agent.php (home {settings.home})")
    os.environ["HOSTBACKUP_HOME"] = str(settings.home)  # the API processes open the same home
    supervisor = Supervisor(services.db, settings.home, lambda task: discard(services, task))
    supervisor.start()
    try:
        config = uvicorn.Config(
            "hostbackup.xmlapi.asgi:create_from_environment",
            factory=True,
            host=host,
            port=port,
            log_level=log_level,
            server_header=False,
            proxy_headers=False,
            **ssl_options,  # type: ignore[arg-type]
        )
        run_api_processes(config, api_processes or min(4, os.cpu_count() or 1))
    finally:
        # with one API process uvicorn re-raises SIGTERM and this never runs: the backup workers then
        # get SIGTERM from the kernel when this process dies (PR_SET_PDEATHSIG) and clean up themselves
        supervisor.stop()
