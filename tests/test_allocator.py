"""The malloc settings stylefarm applies at import: big buffers freed by one frame serve the next."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A worker thread (as the executors' compute thread) allocates and frees a 120 MB buffer per
# "frame", like a conv net's activations (plain malloc: numpy and torch add their own page
# handling); the page faults of frames 2..n say whether the memory
# came back from the kernel every time.
PROBE = """
import ctypes, resource, threading
import stylefarm
from stylefarm.allocator import tune
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 120_000_000
def frame():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    libc.free(block)
def frames():
    frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        frame()
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
out = []
thread = threading.Thread(target=frames)
thread.start(); thread.join()
print(tune(), out[0])
"""
LIBC = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
glibc = pytest.mark.skipif(not (LIBC or "").startswith("glibc"), reason="the settings are glibc's")


def probe(**env: str) -> tuple[bool, int]:
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    tuned, faults = run.stdout.split()
    return tuned == "True", int(faults)


@glibc
def test_freed_frames_are_reused_in_a_worker_thread():
    tuned, faults = probe(STYLEFARM_MALLOC="")
    assert tuned
    assert faults < 2_000, faults  # 5 x 120 MB at 4 KiB pages would be ~150,000 faults


@glibc
def test_opt_out_keeps_glibc_defaults():
    tuned, faults = probe(STYLEFARM_MALLOC="system")
    assert not tuned
    assert faults > 20_000, faults  # the default: every frame's buffer faulted in again
