"""The ASGI application as uvicorn imports it in each API process (`--api-processes`).

Each process opens the data directory named by `HOSTBACKUP_HOME` (which `hostbackup serve`
exports) with the settings of the environment; the worker supervisor lives in the parent.
"""

from __future__ import annotations

from starlette.applications import Starlette

from hostbackup.config import Settings
from hostbackup.home import open_home
from hostbackup.xmlapi.app import create_app


def create_from_environment() -> Starlette:
    return create_app(open_home(Settings.load(), announce=lambda _text: None))
