"""Task states and what a task asks for.

Internally a task is `queued`, `running`, `finished`, `failed` or `stopped`; Plesk clients see
queued and running both as `working` (spec §4.1), so the mapping lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def plesk_status(self) -> str:
        return "working" if self in (TaskState.QUEUED, TaskState.RUNNING) else self.value

    @property
    def active(self) -> bool:
        return self in (TaskState.QUEUED, TaskState.RUNNING)


ACTIVE_STATES = (TaskState.QUEUED.value, TaskState.RUNNING.value)


class TargetKind(StrEnum):
    SERVER = "server"
    RESELLER = "reseller"
    CUSTOMER = "customer"
    WEBSPACE = "webspace"


@dataclass(frozen=True)
class TaskRequest:
    """A new task as an operator asks for it."""

    target_kind: TargetKind
    target_id: int | None
    target_name: str
    requested_by: int
    kind: str = "backup"
    protocol: str = "local"
    prefix: str = ""
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
