"""Settings: one data directory holds everything a running hostbackup needs.

The defaults give a working embedded service (SQLite, local storage, demo content roots under
the home); every path is a setting so that the service can run against an existing hosting
layout such as `/var/www/vhosts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


def _env_bool(name: str, value: str) -> bool:
    """`true`/`false` (also `1`/`0`, `yes`/`no`, any case); anything else is a configuration error."""
    text = value.strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"HOSTBACKUP_{name.upper()} must be true or false, not {value!r}")
    return text in ("true", "1", "yes")


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str = ""
    vhosts_root: Path = field(default=Path())
    mail_root: Path = field(default=Path())
    max_packet_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 10 * 1024**3
    default_response_version: str = "1.6.7.0"
    default_ip_address: str = "127.0.0.1"
    lockout_failures: int = 5
    lockout_window_seconds: int = 600
    lockout_seconds: int = 900
    zstd_level: int = 3
    lease_seconds: int = 30
    remove_content_on_delete: bool = False  # webspace deletion also removes its web and mail directories
    verify_after_backup: bool = False  # read every new local backup back (deep verify); unreadable → failed

    @classmethod
    def load(cls, home: Path | str | None = None) -> Settings:
        """Settings from the environment (`HOSTBACKUP_<FIELD>`); `home` (--home) wins over HOSTBACKUP_HOME."""
        root = Path(home) if home else _env_path("HOSTBACKUP_HOME", Path("var"))
        root = root.resolve()
        tunables: dict[str, Any] = {}
        for item in fields(cls):
            value = os.environ.get(f"HOSTBACKUP_{item.name.upper()}")
            if value is not None and item.type in ("int", "str"):
                tunables[item.name] = int(value) if item.type == "int" else value
            elif value is not None and item.type == "bool":
                tunables[item.name] = _env_bool(item.name, value)
        return cls(
            home=root,
            vhosts_root=_env_path("HOSTBACKUP_VHOSTS_ROOT", root / "vhosts").resolve(),
            mail_root=_env_path("HOSTBACKUP_MAIL_ROOT", root / "mail").resolve(),
            **tunables,
        )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'hostbackup.db'}"

    @property
    def dumps_root(self) -> Path:
        return self.home / "dumps"

    @property
    def upload_root(self) -> Path:
        return self.home / "tmp" / "uploads"

    @property
    def doorbell_path(self) -> Path:
        """FIFO through which a queued task wakes idle workers (`tasks/doorbell.py`)."""
        return self.home / "tmp" / "doorbell"

    @property
    def tls_cert(self) -> Path:
        return self.home / "tls" / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return self.home / "tls" / "key.pem"

    @property
    def secret_key_file(self) -> Path:
        """Key that encrypts stored secrets (FTP passwords, API keys); mode 0600."""
        return self.home / "secret.key"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.dumps_root, self.upload_root, self.vhosts_root, self.mail_root):
            path.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
