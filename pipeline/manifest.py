"""Manifest: an append-only record of finished items so a rerun (resume) skips them.

One JSON line per finished item, appended after its outputs were atomically renamed into
place and fsynced, so a SIGKILL never records an output that is not complete on disk.
Each line carries the hash of the recipe that made it (`stylefarm.recipe`): a rerun redoes
items whose recipe changed. A failed item gets a line too, so an older "done" line of the
same item (from before a `--force` rerun) cannot make a later run skip it.
A torn last line (killed mid-append) is ignored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from .images import atomic_write_bytes

STATE_DIR = ".stylefarm"
Status = Literal["done", "changed", "todo"]


class Manifest:
    def __init__(self, root: Path, fresh: bool = False, recipe: Any = None, restart: bool = False):
        """`fresh`: ignore what is recorded (--force); `restart`: also start the file anew (a whole
        --force run redoes everything, so the old lines would only pile up; farm shards append)."""
        self.path = root / STATE_DIR / "manifest.jsonl"
        self.root = root
        self.recipe = recipe  # stylefarm.recipe.Recipe of this run, or None (no recipe checks)
        self.done: dict[str, list[str]] = {}
        self.recipes: dict[str, str | None] = {}  # key -> recipe hash it was made with
        if restart and self.path.is_file():
            atomic_write_bytes(self.path, b"")
        if not fresh:
            self._read()

    def _read(self) -> None:
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                key = entry["key"]
                if entry.get("failed"):
                    self.done.pop(key, None)
                    continue
                self.done[key] = entry["outputs"]
                self.recipes[key] = entry.get("recipe")
            except (ValueError, KeyError, TypeError):
                continue  # torn line from a killed run

    def status(self, key: str, planned: list[Path]) -> Status:
        """done: every planned output recorded, present and made by this recipe; changed: the
        outputs are there but an older recipe made them; todo: anything else."""
        recorded = self.done.get(key)
        if recorded is None:
            return "todo"
        rel = {self._rel(p) for p in planned}
        if not (rel.issubset(recorded) and all((self.root / r).is_file() for r in recorded)):
            return "todo"
        if self.recipe is not None and self.recipes.get(key) != self.recipe.hash:
            return "changed"
        return "done"

    def is_done(self, key: str, planned: list[Path]) -> bool:
        return self.status(key, planned) == "done"

    def record(self, key: str, outputs: list[Path]) -> None:
        rels = [self._rel(p) for p in outputs]
        self.done[key] = rels
        entry = {"key": key, "outputs": rels, "time": round(time.time(), 3)}
        if self.recipe is not None:
            entry["recipe"] = self.recipes[key] = self.recipe.hash
        self._append(entry)

    def record_failure(self, key: str) -> None:
        """A failed item must be redone by the next run whatever older lines say."""
        self.done.pop(key, None)
        self._append({"key": key, "failed": True, "time": round(time.time(), 3)})

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # --- recipes: stored once per hash so a rerun can say what changed ------------------

    def save_recipe(self) -> None:
        path = self.root / STATE_DIR / "recipes" / f"{self.recipe.hash}.json"
        if not path.is_file():
            atomic_write_bytes(path, json.dumps(self.recipe.data, indent=1, sort_keys=True).encode())

    def old_recipe(self, digest: str | None) -> dict[str, Any] | None:
        path = self.root / STATE_DIR / "recipes" / f"{digest}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if digest else None
        except (OSError, ValueError):
            return None

    def _rel(self, path: Path) -> str:
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)
