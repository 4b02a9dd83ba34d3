"""What an operation handler gets, and the registry that maps element names to handlers.

A handler is a plain function `(ctx, operation_element) -> list of <result> elements`. It runs
inside its own database transaction: an operation is atomic, and a failing one never undoes
the operations before it (spec §1.8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from sqlalchemy.orm import Session

from hostbackup.accounts.users import Caller
from hostbackup.accounts.vault import Vault
from hostbackup.config import Settings
from hostbackup.db.engine import Database
from hostbackup.errors import PermissionDenied
from hostbackup.xmlapi.versions import Version

Element = etree._Element


@dataclass(frozen=True)
class Services:
    """Long-lived objects of the serving process."""

    settings: Settings
    db: Database
    vault: Vault


@dataclass(frozen=True)
class Download:
    """A file to send as the raw HTTP body instead of an XML answer (download-file, spec §4.13)."""

    path: Path
    name: str
    size: int


@dataclass
class Context:
    services: Services
    session: Session
    caller: Caller
    version: Version
    client_ip: str
    sole_operation: bool = False  # the packet holds this one operation only
    download: Download | None = None  # set by download-file to answer with the file itself

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def require_admin(self) -> None:
        """Administrator-only operations answer everyone else 1006 (spec §3.3)."""
        if not self.caller.is_admin:
            raise PermissionDenied()


Handler = Callable[[Context, Element], list[Element]]
REGISTRY: dict[str, dict[str, Handler]] = {}


def operation(operator: str, name: str) -> Callable[[Handler], Handler]:
    """Register `handler` as the answer to `<operator><name>`."""

    def register(handler: Handler) -> Handler:
        REGISTRY.setdefault(operator, {})[name] = handler
        return handler

    return register
