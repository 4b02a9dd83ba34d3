"""Where each owner's backups live, and which file names are safe.

Layout like Plesk's: the server's own backups at the root of `dumps/`, then
`resellers/<login>/`, `clients/<login>/`, `domains/<name>/`. Logins and domain names are
validated when accounts are created; `safe_name` is the last line of defence for names that
come from requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hostbackup.tasks.task import TargetKind

_SUBDIRS = {TargetKind.RESELLER: "resellers", TargetKind.CUSTOMER: "clients", TargetKind.WEBSPACE: "domains"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Owner:
    """The owner of a storage area: server, a reseller, a customer or a webspace."""

    kind: TargetKind
    id: int | None
    name: str  # login or domain name; "" for the server


def owner_dir(dumps_root: Path, owner: Owner) -> Path:
    if owner.kind is TargetKind.SERVER:
        return dumps_root
    directory = dumps_root / _SUBDIRS[owner.kind] / owner.name
    if not is_safe_name(owner.name) or directory.parent.parent != dumps_root:
        raise ValueError(f"unsafe owner name {owner.name!r}")
    return directory


def retired_dir(dumps_root: Path, owner: Owner) -> Path:
    """Where the storage of a deleted owner is kept (spec §5.0: on disk, out of the API's reach), so
    that a new account or webspace of the same name starts empty: below a hidden directory, which
    no owner name can reach (`is_safe_name`)."""
    return dumps_root / ".deleted" / _SUBDIRS[owner.kind] / f"{owner.name}.{owner.id}"


def is_safe_name(name: str) -> bool:
    """A plain file name: no separators, not `.`/`..`, not hidden, no NUL, sane length."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".") and len(name) <= 255


def sanitise(text: str, *, limit: int = 47) -> str:
    """A request-supplied name made safe (spec §4.1): `:` → `-`, other odd characters → `_`."""
    cleaned = _UNSAFE.sub("_", text.replace(":", "-"))[:limit]
    return "_" + cleaned[1:] if cleaned.startswith(".") else cleaned
