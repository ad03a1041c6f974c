"""Keep freed memory in the process while frames of one size repeat (glibc malloc settings).

Why: glibc hands every block over 32 MB straight back to the kernel on free (mmap/munmap), and a
torch thread gets its own malloc arena, whose heaps cannot hold such blocks at all. A conv net on
a 720p frame allocates and frees hundreds of MB of activations per call, so each frame the kernel
faulted them in again, 4 KiB at a time, and zeroed them: cin26 at 720p spent 0.13 s of system
time per call and ran 0.26 s per frame instead of 0.17 s (benchmarks/README.md, "Allocator").

So: one arena for all threads from the start (`tune`, at import), and from the first batch on
(`steady`) no mmap for big blocks and a 1 GiB trim threshold, so that freed blocks serve the
next allocation. After a batch whose frame sizes do not repeat (stills), the executor hands the
free memory back (`release`), so a heap kept across changing sizes does not fragment: the
quickstart ran 13.8-15.2 s at 0.91-0.98 GB peak with mmap for its stills, 10.5-11.1 s at
0.97-1.08 GB this way (2.1 M page faults → 0.3 M); keeping everything had cost 1.54 GB when the
painting still filled whole square canvases. `STYLEFARM_MALLOC=system` keeps glibc's defaults;
other C libraries (musl, macOS) are left alone.
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
        release()


def release() -> None:
    """Hand the heap's free memory back to the kernel (malloc_trim), keeping the settings."""
    if _libc:
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
