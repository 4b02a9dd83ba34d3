"""Opening a data directory: folders, migrations, the administrator and the secret vault.

Every entry point (server, worker, CLI commands) opens the home the same way, so a fresh
directory becomes a working installation on first use and an old one is migrated in place.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

from hostbackup.accounts.databases import ensure_default_db_server
from hostbackup.accounts.users import ensure_admin
from hostbackup.accounts.vault import Vault
from hostbackup.config import Settings
from hostbackup.db.engine import Database, migrate
from hostbackup.tasks.doorbell import ring_on_commit
from hostbackup.xmlapi.context import Services


def open_home(settings: Settings, announce: Callable[[str], None] = print, *, migrated: bool = False) -> Services:
    """`migrated`: the caller knows the schema is current (a worker started by `serve`), skip the check."""
    settings.ensure_dirs()
    db = Database(settings.effective_database_url)
    ring_on_commit(db, settings.doorbell_path)
    if not migrated:
        migrate(db.engine)
    password = os.environ.get("HOSTBACKUP_ADMIN_PASSWORD") or ""
    generated = not password
    if generated:
        password = secrets.token_urlsafe(12)
    with db.session() as session:
        created = ensure_admin(session, password)
    ensure_default_db_server(db)
    if created and generated:
        announce(
            f"Administrator 'admin' created with password: {password}  (shown once; change it with "
            "`hostbackup admin set-password`)"
        )
    return Services(settings=settings, db=db, vault=Vault(settings.secret_key_file))
