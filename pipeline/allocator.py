"""Keep freed memory in the process while frames of one size repeat (glibc malloc settings).

Why: glibc hands every block over 32 MB straight back to the kernel on free (mmap/munmap), and a
torch thread gets its own malloc arena, whose heaps cannot hold such blocks at all. A conv net on
a 720p frame allocates and frees hundreds of MB of activations per call, so each frame the kernel
faulted them in again, 4 KiB at a time, and zeroed them: cin26 at 720p spent 0.13 s of system
time per call and ran 0.26 s per frame instead of 0.17 s (benchmarks/README.md, "Allocator").

So: one arena for all threads from the start (`tune`, at import), and, while the executors see
batches of the same frame size one after another (`steady`), no mmap for big blocks and a 1 GiB
trim threshold, so that each frame reuses the last one's memory. Stills of changing sizes run
with mmap as usual, because a heap that keeps everything fragments on them (quickstart peak
1.54 GB vs 1.10 GB). `STYLEFARM_MALLOC=system` keeps glibc's defaults; other C libraries (musl,
macOS) are left alone.
"""

from __future__ import annotations

import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -3, -4, -8  # glibc <malloc.h>
KEEP_TRIM = 1 << 30
"""Steady: free memory at the top of the heap kept for the next frame (beyond it, returned)."""
USUAL = ((M_MMAP_MAX, 65536), (M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 64 << 20))
"""Not steady: glibc's own mmap count, its threshold once it has adapted to big blocks (32 MB),
and twice that as the trim threshold, as its dynamic rule would set."""

_libc = None
_steady = False


def tune() -> bool:
    """One malloc arena for every thread (True when in force); must run before threads start."""
    global _libc
    if _libc is None:
        _libc = _load() or False
        if _libc and _libc.mallopt(M_ARENA_MAX, 1) != 1:
            _libc = False
    return bool(_libc)


def steady(on: bool) -> None:
    """Frames of one size are coming (keep freed memory), or no longer (return it, trim the heap)."""
    global _steady
    if not _libc or on == _steady:
        return
    _steady = on
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP_TRIM)) if on else USUAL
    for option, value in settings:
        _libc.mallopt(option, value)
    if not on:
        _libc.malloc_trim(0)


def _load():
    if os.environ.get("STYLEFARM_MALLOC", "").strip().lower() in ("system", "off", "0", "false", "no"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (AttributeError, OSError, ValueError):
        return None
