"""Bounded retries with exponential backoff, for transient transport failures only.

A dropped connection or a `421`/`450` reply usually heals in seconds; a refused login or a
missing directory never does, so only `StorageError`s flagged `transient` are retried, and never
more than `tries` times in all, so a dead server fails the task in bounded time. Defaults can be
tuned with HOSTBACKUP_FTP_TRIES and HOSTBACKUP_FTP_BACKOFF (first delay in seconds).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hostbackup.storage.base import StorageError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 5
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            tries=max(1, int(os.environ.get("HOSTBACKUP_FTP_TRIES", "5"))),
            first_delay=float(os.environ.get("HOSTBACKUP_FTP_BACKOFF", "0.5")),
        )

    def delay(self, failures: int) -> float:
        """The pause after the `failures`-th failure (1-based)."""
        return float(min(self.max_delay, self.first_delay * self.factor ** (failures - 1)))

    def pause_or_raise(self, error: StorageError, failures: int) -> None:
        """Sleep before the next try, or raise `error` when it is permanent or tries are used up."""
        if not error.transient:
            raise error
        if failures >= self.tries:
            raise StorageError(f"{error.text}; gave up after {failures} tries") from error
        self.sleep(self.delay(failures))


def retrying(policy: RetryPolicy, attempt: Callable[[], T]) -> T:
    """Run `attempt` until it succeeds or fails permanently."""
    failures = 0
    while True:
        try:
            return attempt()
        except StorageError as error:
            failures += 1
            policy.pause_or_raise(error, failures)
