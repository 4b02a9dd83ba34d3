"""Server-wide backup settings (get/set-server-wide-settings, spec §4.16), persisted in the database."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy.orm import Session

from hostbackup.db.tables import Setting

#: The most worker processes `max-backup-processes` may ask for: each is a process of its own
#: (about 80 MiB idle, 130 MiB backing up), and the supervisor starts as many as asked.
MAX_PROCESSES = 64


def default_processes() -> int:
    return min(MAX_PROCESSES, max(2, os.cpu_count() or 2))


@dataclass(frozen=True)
class ServerWideSettings:
    max_backup_files: int = -1
    max_backup_processes: int = 0  # 0 = not set: the number of CPU cores, at least 2
    low_priority: bool = False
    do_not_compress: bool = False
    allow_local_ftp_backup: bool = False
    keep_local_backup: bool = True

    @property
    def processes(self) -> int:
        return min(MAX_PROCESSES, self.max_backup_processes) or default_processes()  # stored before the bound


def load(session: Session) -> ServerWideSettings:
    stored = {row.name: row.value for row in session.query(Setting).all()}
    values: dict[str, Any] = {}
    for item in fields(ServerWideSettings):
        if item.name in stored:
            raw = stored[item.name]
            values[item.name] = raw == "true" if item.type == "bool" else int(raw)
    return replace(ServerWideSettings(), **values)


def save(session: Session, **changes: int | bool) -> None:
    for name, value in changes.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        row = session.get(Setting, name)
        if row is None:
            session.add(Setting(name=name, value=text))
        else:
            row.value = text
