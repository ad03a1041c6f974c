"""stylefarm's malloc settings: big buffers freed by one frame serve the next; after a batch of
changing sizes the free memory goes back to the kernel."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

# A worker thread (as the executors' compute thread) allocates and frees a 120 MB buffer per
# "frame", like a conv net's activations (plain malloc: numpy and torch add their own page
# handling); the page faults of frames 2..n say whether the memory came back from the kernel.
PROBE = """
import ctypes, resource, threading
import stylefarm
import sys
from stylefarm.allocator import steady, tune
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 120_000_000
def frame():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    libc.free(block)
def frames():
    steady(sys.argv[1] == "steady")
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


def probe(mode: str, **env: str) -> tuple[bool, int]:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    tuned, faults = run.stdout.split()
    return tuned == "True", int(faults)


@glibc
def test_steady_frames_reuse_freed_memory_in_a_worker_thread():
    tuned, faults = probe("steady", STYLEFARM_MALLOC="")
    assert tuned
    assert faults < 2_000, faults  # 5 x 120 MB at 4 KiB pages would be ~150,000 faults


@glibc
def test_not_steady_memory_goes_back_to_the_kernel():
    tuned, faults = probe("usual", STYLEFARM_MALLOC="")
    assert tuned
    assert faults > 20_000, faults  # stills of changing sizes: nothing kept (no fragmented heap)


@glibc
def test_opt_out_keeps_glibc_defaults():
    tuned, faults = probe("steady", STYLEFARM_MALLOC="system")
    assert not tuned
    assert faults > 20_000, faults


def test_the_runner_keeps_memory_within_batches_and_across_them_only_while_sizes_repeat(monkeypatch):
    from stylefarm import allocator
    from stylefarm.executors.base import ChainRunner
    from stylefarm.item import Item

    if not allocator.tune():
        pytest.skip("no glibc: the settings are not applied")
    runner = ChainRunner([])
    released = []
    monkeypatch.setattr(allocator, "release", lambda: released.append(True))
    frame = np.zeros((8, 8, 3), np.uint8)
    other = np.zeros((4, 8, 3), np.uint8)
    steady, kept = [], []
    for batch in ([frame], [frame], [other], [other, other], [frame, other], [None, None]):
        before = len(released)
        runner.run_batch([Item(source="a", index=i, image=image) for i, image in enumerate(batch)])
        steady.append(allocator._steady)
        kept.append(len(released) == before)
    allocator.steady(False)
    assert steady == [True] * 6  # during every batch
    assert kept == [False, True, False, True, False, False]  # handed back unless sizes repeat
