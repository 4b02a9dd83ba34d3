"""Encryption of secrets that must be read back (secret keys, FTP passwords).

The key lives in the data directory (`secret.key`, mode 0600), never in the database, so a
copy of the database or of a backup's metadata does not reveal the secrets.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet


class Vault:
    def __init__(self, key_file: Path) -> None:
        self._fernet = Fernet(self._load_or_create(key_file))

    @staticmethod
    def _load_or_create(key_file: Path) -> bytes:
        if key_file.exists():
            return key_file.read_bytes().strip()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return key_file.read_bytes().strip()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
