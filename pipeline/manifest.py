"""Manifest: an append-only record of finished items so a rerun (resume) skips them.

One JSON line per finished item, appended after its outputs were atomically renamed into
place and fsynced, so a SIGKILL never records an output that is not complete on disk.
A torn last line (killed mid-append) is ignored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STATE_DIR = ".stylefarm"


class Manifest:
    def __init__(self, root: Path, fresh: bool = False):
        self.path = root / STATE_DIR / "manifest.jsonl"
        self.root = root
        self.done: dict[str, list[str]] = {} if fresh else self._read()

    def _read(self) -> dict[str, list[str]]:
        done: dict[str, list[str]] = {}
        if not self.path.is_file():
            return done
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[entry["key"]] = entry["outputs"]
            except (ValueError, KeyError, TypeError):
                continue  # torn line from a killed run
        return done

    def is_done(self, key: str, planned: list[Path]) -> bool:
        """True when every planned output of `key` was recorded and still exists."""
        recorded = self.done.get(key)
        if recorded is None:
            return False
        rel = {self._rel(p) for p in planned}
        return rel.issubset(recorded) and all((self.root / r).is_file() for r in recorded)

    def record(self, key: str, outputs: list[Path]) -> None:
        rels = [self._rel(p) for p in outputs]
        self.done[key] = rels
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "outputs": rels, "time": round(time.time(), 3)})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _rel(self, path: Path) -> str:
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)
