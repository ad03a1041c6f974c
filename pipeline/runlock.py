"""One run per output root, and temp files that only their own run (or its cleanup) removes.

- Every temp file this process writes is named `.stylefarm-<RUN_ID>.<name>.part` (`temp_name`).
- A run holds an advisory lock (`flock`) on `.stylefarm/locks/<task>.lock` for its whole life:
  a second run of the same task on the same root fails with one line naming the holder; farm
  shards and frame ranges lock their own task name and share the root. The kernel drops the
  lock when a process dies (kill -9 included), so a stale lock is simply taken over.
- A run also holds `.stylefarm/runs/<RUN_ID>.lock`. At start, a run removes the temp files of
  runs whose lock it can take (they are dead) — never another tool's `.part` files, never a live
  run's.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import time
from pathlib import Path

from .errors import OutputError

RUN_ID = f"{os.getpid():x}{secrets.token_hex(3)}"
STATE_DIR = ".stylefarm"
TEMP_PREFIX = ".stylefarm-"


def temp_name(final: Path) -> str:
    """Name of this run's temp file for `final` (same folder, so the rename is atomic)."""
    return f"{TEMP_PREFIX}{RUN_ID}.{final.name}.{secrets.token_hex(2)}.part"


def _try_lock(path: Path):
    """An open file holding an exclusive flock on `path`, or None when another process holds it."""
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open: the lock lives with it
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


class RunLock:
    """Held from `acquire()` to `release()` by one run of one task on one output root."""

    def __init__(self, root: Path, task: str = "run"):
        self.root, self.task = root, task
        self._held: list = []

    def acquire(self) -> None:
        locks, runs = self.root / STATE_DIR / "locks", self.root / STATE_DIR / "runs"
        locks.mkdir(parents=True, exist_ok=True)
        runs.mkdir(parents=True, exist_ok=True)
        path = locks / f"{self.task}.lock"
        fh = _try_lock(path)
        if fh is None:
            raise OutputError(f"output {self.root} is in use by another stylefarm run ({_holder(path)}); "
                              f"wait for it to finish or give this run another output.dir")
        info = {"host": socket.gethostname(), "pid": os.getpid(), "run": RUN_ID,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(info))
        fh.flush()
        mine = _try_lock(runs / f"{RUN_ID}.lock")
        self._held = [fh, mine] if mine else [fh]
        clean_dead_runs(self.root)

    def release(self) -> None:
        for fh in self._held:
            fh.close()
        (self.root / STATE_DIR / "runs" / f"{RUN_ID}.lock").unlink(missing_ok=True)
        self._held = []


_WORKER_LOCKS: dict[Path, object] = {}


def hold_worker_lock(root: Path) -> None:
    """A segment-mode worker holds this process's run lock on `root` for as long as it lives, so
    cleanup of dead runs leaves its temp files alone while it works and removes them once it
    died. In the driver's own process (local, threaded Dask) the run lock is held already."""
    root = Path(root)
    if root in _WORKER_LOCKS:
        return
    runs = root / STATE_DIR / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    _WORKER_LOCKS[root] = _try_lock(runs / f"{RUN_ID}.lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    return f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, started {info.get('started', '?')}"


def clean_dead_runs(root: Path) -> list[Path]:
    """Remove the temp files of dead runs of this root (those whose run lock can be taken)."""
    removed: list[Path] = []
    for lock in sorted((root / STATE_DIR / "runs").glob("*.lock")):
        run = lock.stem
        if run == RUN_ID:
            continue
        fh = _try_lock(lock)
        if fh is None:
            continue  # alive: its temp files are in use
        try:
            for temp in root.rglob(f"{TEMP_PREFIX}{run}.*.part"):
                temp.unlink(missing_ok=True)
                removed.append(temp)
            lock.unlink(missing_ok=True)
        finally:
            fh.close()
    return removed
