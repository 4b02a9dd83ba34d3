"""glibc's malloc, told to hand large buffers back: a long-lived worker's memory stays flat.

glibc raises its mmap threshold each time a large mapped block is freed, up to 32 MiB. After the
first backup, zstd's job buffers and the read buffers then come from the heaps, which keep what was
freed: over five 1 GiB backups a served worker's idle RSS grew from 75 to 104 MB and its peak from
120 to 132 MB. With the threshold fixed at 2 MiB both stay flat (about 70 MB idle, peaks 117-122
MB) at the same backup speed; at 4 MiB the idle RSS held at 82 MB. Fixing it also fixes the trim
threshold, which glibc would have raised with it: left at 128 KiB, a restore's 1 MiB read buffers
were given back and faulted in again (7 % slower), so it is set where glibc's raising would put it.

Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters; setting them ends the dynamic raising
MMAP_THRESHOLD = 2 * 1024 * 1024
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc's raising would set; at 128 KiB read buffers were refaulted


def fix_thresholds(size: int = MMAP_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
    """Blocks of `size` bytes and more get their own mapping, unmapped when freed; a heap gives back
    its free top past `trim` bytes. Whether it took."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, size)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
