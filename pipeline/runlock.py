"""Runs that would write the same items never share an output root at once; temp files that only
their own run (or its cleanup) removes.

- Every temp file this process writes is named `.stylefarm-<RUN_ID>.<name>.part` (`temp_name`).
- A run holds an advisory lock (`flock`) on `.stylefarm/locks/<task>.lock` for its whole life,
  with who it is (host, pid, task, start) written inside. The task is `run` for a whole job, or
  the farm task's name (`shard-3-of-10`, `frames-1001-1012`, both joined by a dot).
- Before it takes its lock a run looks at every held task lock of the root and refuses to start
  (one line naming the holder) unless their items are provably disjoint from its own: a whole run
  excludes everything, shards I/N and J/N (I != J) of the same frame selection and runs of
  non-overlapping `--frames` may run together, anything else (overlapping ranges, shards of
  different N) waits. Looking and taking happen under `locks/gate`, so a look never collides with
  another run taking its lock and two overlapping runs starting at once cannot both pass.
- The kernel drops a lock when its process dies (kill -9 included), so a dead holder's lock is
  simply taken over.
- A run also holds `.stylefarm/runs/<RUN_ID>.lock`. At start, a run removes the temp files of
  runs whose lock it can take (they are dead) — never another tool's `.part` files, never a live
  run's.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import OutputError
from .ranges import merge, ranges_text

RUN_ID = f"{os.getpid():x}{secrets.token_hex(3)}"
STATE_DIR = ".stylefarm"
TEMP_PREFIX = ".stylefarm-"
GATE_WAIT_S = 30.0  # the gate is held for a directory listing; longer means a stopped process


def temp_name(final: Path) -> str:
    """Name of this run's temp file for `final` (same folder, so the rename is atomic)."""
    return f"{TEMP_PREFIX}{RUN_ID}.{final.name}.{secrets.token_hex(2)}.part"


# ---------------------------------------------------------------- which items a task writes

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Selection:
    """The items a task writes: frame ranges (None: every item, stills included) and shard
    (index, count) within them; `unknown` keeps a task name this version cannot read."""

    frames: Ranges | None = None
    shard: tuple[int, int] | None = None
    unknown: str | None = None


WHOLE = Selection()


@lru_cache(maxsize=4096)  # a job's report reads each task name against every later one
def task_selection(task: str) -> Selection:
    """`run`/`main` -> the whole job; `frames-1001-1050_1090.shard-1-of-2` -> its frames and shard
    (the names `stylefarm.shard.report_name` gives farm tasks)."""
    if task in ("", "run", "main"):
        return WHOLE
    frames, shard = None, None
    for part in task.split("."):
        match = re.fullmatch(r"shard-(\d+)-of-(\d+)", part)
        if match:
            shard = (int(match[1]), int(match[2]))
            continue
        pieces = [re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", p) for p in part.removeprefix("frames-").split("_")]
        if not part.startswith("frames-") or not all(pieces):
            return Selection(unknown=task)
        frames = tuple(merge((int(m[1]), int(m[2] if m[2] is not None else m[1])) for m in pieces))
    return Selection(frames, shard)


def describe(selection: Selection) -> str:
    """What a task runs, as the command line said it."""
    if selection.unknown:
        return f"task {selection.unknown}"
    parts = []
    if selection.frames is not None:
        parts.append("--frames " + ranges_text(selection.frames))
    if selection.shard:
        parts.append(f"--shard {selection.shard[0]}/{selection.shard[1]}")
    return " ".join(parts) or "the whole job"


def _overlap(a: Ranges, b: Ranges) -> bool:
    return any(x1 <= y2 and y1 <= x2 for x1, x2 in a for y1, y2 in b)


def disjoint(a: Selection, b: Selection) -> bool:
    """True only when the two tasks can never write one item (every task computes the same split)."""
    if a.unknown or b.unknown:
        return False
    if a.frames is not None and b.frames is not None and not _overlap(a.frames, b.frames):
        return True
    return (a.frames == b.frames and a.shard is not None and b.shard is not None
            and a.shard[1] == b.shard[1] and a.shard[0] != b.shard[0])


def covers(pieces: list[Selection], target: Selection) -> bool:
    """True when the union of `pieces` holds every item of `target` (all N shards of a selection
    make the selection; frame ranges add up)."""
    if WHOLE in pieces or target in pieces:
        return True
    if target.unknown:
        return False
    ranges: list[tuple[int, int]] = []
    shards: dict[tuple[Ranges | None, int], set[int]] = {}
    for piece in pieces:
        if piece.unknown:
            continue
        if piece.shard is None:
            ranges += piece.frames or ()
        else:
            shards.setdefault((piece.frames, piece.shard[1]), set()).add(piece.shard[0])
    for (frames, count), indices in shards.items():
        if indices >= set(range(1, count + 1)):
            if frames is None:
                return True
            ranges += frames
    union = merge(ranges)
    return target.frames is not None and all(any(a <= x and y <= b for a, b in union) for x, y in target.frames)


# ---------------------------------------------------------------- locks

def _try_lock(path: Path):
    """An open file holding an exclusive flock on `path`, or None when another process holds it."""
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open: the lock lives with it
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _is_held(path: Path) -> bool:
    """Whether a live process holds the lock on `path` (a dead one's is free)."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below; read-only roots can be looked at
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        fh.close()


@contextmanager
def _gate(locks: Path) -> Iterator[None]:
    """Held while a run looks at the task locks and takes its own, and while a report looks."""
    try:
        fh = open(locks / "gate", "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:  # a read-only root: nobody can start a run there either
        yield
        return
    deadline = time.monotonic() + GATE_WAIT_S
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise OutputError(f"{locks / 'gate'} has been locked for {GATE_WAIT_S:.0f}s (a stopped "
                                      f"stylefarm process?); resume or end it, then run again") from None
                time.sleep(0.005)
        yield
    finally:
        fh.close()


def _info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    info["task"] = path.stem  # the file name is what the lock is about
    return info


def _held(locks: Path) -> list[dict[str, Any]]:
    return [_info(path) for path in sorted(locks.glob("*.lock")) if _is_held(path)]


def live_runs(root: Path) -> list[dict[str, Any]]:
    """The runs holding a task lock on `root` now: host, pid, run, task, started, command."""
    locks = Path(root) / STATE_DIR / "locks"
    if not locks.is_dir():
        return []
    with _gate(locks):
        return _held(locks)


def _holder(info: dict[str, Any]) -> str:
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, running "
            f"{describe(task_selection(info['task']))} since {info.get('started', '?')}")


def _refusal(root: Path, mine: Selection, others: list[dict[str, Any]]) -> str:
    theirs = task_selection(others[0]["task"])
    if mine == theirs:
        why = "it runs the same task"
    elif mine == WHOLE:
        why = "a run without --shard/--frames writes every item, so it runs alone"
    elif theirs == WHOLE:
        why = "it writes every item"
    else:
        why = f"its items overlap those of {describe(mine)}"
    more = f" and {len(others) - 1} more" if len(others) > 1 else ""
    return (f"output {root} is in use by another stylefarm run ({_holder(others[0])}{more}); {why}: "
            f"wait for it to finish, or give this run another output.dir")


class RunLock:
    """Held from `acquire()` to `release()` by one run of one task on one output root."""

    def __init__(self, root: Path, task: str = "run"):
        self.root, self.task = root, task
        self._held: list = []

    def acquire(self) -> None:
        locks, runs = self.root / STATE_DIR / "locks", self.root / STATE_DIR / "runs"
        locks.mkdir(parents=True, exist_ok=True)
        runs.mkdir(parents=True, exist_ok=True)
        mine, path = task_selection(self.task), locks / f"{self.task}.lock"
        with _gate(locks):
            others = [info for info in _held(locks) if not disjoint(mine, task_selection(info["task"]))]
            fh = None if others else _try_lock(path)
            if fh is None:  # held by something that does not pass the gate (an older stylefarm)
                raise OutputError(_refusal(self.root, mine, others or [_info(path)]))
            info = {"host": socket.gethostname(), "pid": os.getpid(), "run": RUN_ID, "task": self.task,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": shlex.join(sys.argv)[:500]}
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(info))
            fh.flush()
        mine_run = _try_lock(runs / f"{RUN_ID}.lock")
        self._held = [fh, mine_run] if mine_run else [fh]
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
