"""Per-owner FTP/FTPS settings (spec §4.3–§4.4). Placeholder until remote storage lands (issue 6)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hostbackup.storage.layout import Owner


def is_configured(session: Session, owner: Owner) -> bool:
    """True when the owner's FTP settings have at least `host` and `login` (spec §2.5, 1031)."""
    return False
