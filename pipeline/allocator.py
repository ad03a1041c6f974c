"""Keep freed memory in the process for the next frame (glibc malloc settings, once per process).

Why: glibc hands every block over 32 MB straight back to the kernel on free (mmap/munmap), and a
torch thread gets its own malloc arena, whose heaps cannot hold such blocks at all. A conv net on
a 720p frame allocates and frees hundreds of MB of activations per call, so each frame the kernel
faulted them in again, 4 KiB at a time, and zeroed them: cin26 at 720p spent 0.13 s of system
time per call and ran 0.26 s per frame instead of 0.17 s (benchmarks/README.md, "Allocator").
One arena, no mmap for big blocks and a 1 GiB trim threshold make the second frame reuse the
first frame's memory; peak memory measured the same or lower. `STYLEFARM_MALLOC=system` keeps
glibc's defaults; other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import os

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc <malloc.h>
TRIM_THRESHOLD = 1 << 30
"""Free memory at the top of the heap kept for reuse; beyond it, returned to the kernel."""

_tuned: bool | None = None


def tune() -> bool:
    """Apply the settings once (True when they are in force); later threads share the one arena."""
    global _tuned
    if _tuned is None:
        _tuned = _apply()
    return _tuned


def _apply() -> bool:
    if os.environ.get("STYLEFARM_MALLOC", "").strip().lower() in ("system", "off", "0", "false", "no"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (AttributeError, OSError, ValueError):
        return False
    return all(mallopt(option, value) == 1 for option, value in
               ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
