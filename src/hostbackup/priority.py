"""Low OS priority for backup work (server-wide `low-priority`): CPU nice 19 and idle I/O class.

Applied per task in the worker process, and undone for the next task when the setting is off
(lowering niceness again needs root, which a system service has; otherwise it stays low).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}.get(platform.machine())
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
IDLE, BEST_EFFORT = 3, 2


def _set_io_class(io_class: int, level: int = 0) -> None:
    if _IOPRIO_SET is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(_IOPRIO_SET, _IOPRIO_WHO_PROCESS, 0, (io_class << _IOPRIO_CLASS_SHIFT) | level)


def apply(low: bool) -> None:
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 19 if low else 0)
    with contextlib.suppress(OSError, AttributeError):
        _set_io_class(IDLE if low else BEST_EFFORT, 0 if low else 4)


def current() -> tuple[int, int]:
    """(nice, I/O class) of this process, for tests and diagnostics."""
    io_class = 0
    if _IOPRIO_SET is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        value = libc.syscall(_IOPRIO_SET + 1, _IOPRIO_WHO_PROCESS, 0)  # ioprio_get follows ioprio_set
        io_class = value >> _IOPRIO_CLASS_SHIFT if value >= 0 else 0
    return os.getpriority(os.PRIO_PROCESS, 0), io_class
