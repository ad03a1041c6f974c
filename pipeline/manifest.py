"""Manifest: an append-only record of finished items so a rerun (resume) skips them.

One JSON line per finished item, appended after its outputs were atomically renamed into
place and fsynced, so a SIGKILL never records an output that is not complete on disk.
Each line carries the hash of the recipe that made it (`stylefarm.recipe`): a rerun redoes
items whose recipe changed. It also carries the size and mtime_ns of the item's input file (an
image, a video) as the run that made it first saw them: a rerun redoes items whose input was
re-delivered, for one stat per input file (no hashing); a sequence's frame is checked against its
own file. Lines without them (older stylefarm, generated inputs) count as unchanged. The size of
each output is kept too: an output truncated or replaced by a file of another size since it was
written (a half-synced copy, another tool writing there) is redone, not trusted; a copy that
keeps the sizes resumes. Each line stands alone, so
farm shards appending to one manifest never need each other's lines. A failed item gets a line
too, so an older "done" line of the same item (from before a `--force` rerun) cannot make a
later run skip it.
A torn last line (killed mid-append) is ignored.
"""

from __future__ import annotations

import json
import os
import re
import stat
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
        self.inputs: dict[str, dict[str, list[int]]] = {}  # key -> {input file: [size, mtime_ns]} it was made from
        self.sizes: dict[str, dict[str, int]] = {}  # key -> {output (relative): size in bytes when written}
        self._stats: dict[str, list[int] | None] = {}  # input file -> [size, mtime_ns] when this run first looked
        self._files: dict[str, list[str]] = {}  # key -> input files, where the key does not name them
        self._same: dict[str | None, bool] = {}  # older recipe hash -> whether it is this run's recipe
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
                self.inputs[key] = dict(entry.get("inputs") or {})
                self.sizes[key] = dict(entry.get("sizes") or {})
            except (ValueError, KeyError, TypeError):
                continue  # torn line from a killed run

    def status(self, key: str, planned: list[Path], files: list[str] | None = None) -> Status:
        """done: every planned output recorded, present, made by this recipe from the input file
        as it is now, and of the size it was written; changed: the outputs are there but another
        recipe made them, their input changed or an output's size did since (`Redo` says which);
        todo: anything else. `files`: the input files the item is read from, where its key does not
        name them (a sequence's frame: its own file); kept for `record`."""
        if files is not None:
            self._files[key] = files
        self._input_stats(key)  # now, before the run reads the input (see _stat)
        recorded = self.done.get(key)
        if recorded is None:
            return "todo"
        rel = {self._rel(p) for p in planned}
        sizes = {r: _size(self.root / r) for r in recorded}  # one stat per output: there, and how big
        if not rel.issubset(recorded) or None in sizes.values():
            return "todo"
        if not self.same_recipe(key) or self.changed_inputs(key) or self.changed_outputs(key, sizes):
            return "changed"
        return "done"

    def same_recipe(self, key: str) -> bool:
        """Whether this run's recipe made the item's recorded outputs (True without a recipe)."""
        if self.recipe is None or self.recipes.get(key) == self.recipe.hash:
            return True
        old = self.recipes.get(key)
        if old not in self._same:  # one read of the old recipe per hash, not per item
            self._same[old] = self.recipe.same_as(self.old_recipe(old))
        return self._same[old]

    def changed_inputs(self, key: str) -> list[str]:
        """The item's input files whose size or mtime differ from when its outputs were made."""
        return [path for path, was in self.inputs.get(key, {}).items()
                if (now := self._stat(path)) is not None and now != list(was)]

    def changed_outputs(self, key: str, now: dict[str, int | None] | None = None) -> list[str]:
        """The item's recorded outputs (relative to the root) whose size is not the one they were
        written with (`now`: sizes already taken); lines without sizes (older stylefarm) name none."""
        now = now or {}
        return [rel for rel, size in self.sizes.get(key, {}).items()
                if (now[rel] if rel in now else _size(self.root / rel)) != size]

    def _stat(self, path: str) -> list[int] | None:
        """[size, mtime_ns] of an input file, taken once per run and before the file is read, so a
        file replaced while the run reads it is recorded as older than it is (redone next time)."""
        if path not in self._stats:
            try:
                st = os.stat(path)
                self._stats[path] = [st.st_size, st.st_mtime_ns] if stat.S_ISREG(st.st_mode) else None
            except OSError:
                self._stats[path] = None
        return self._stats[path]

    def _input_stats(self, key: str) -> dict[str, list[int]]:
        paths = self._files[key] if key in self._files else input_files(key)
        return {path: now for path in paths if (now := self._stat(path)) is not None}

    def is_done(self, key: str, planned: list[Path]) -> bool:
        return self.status(key, planned) == "done"

    def record(self, key: str, outputs: list[Path]) -> None:
        rels = [self._rel(p) for p in outputs]
        self.done[key] = rels
        entry: dict[str, Any] = {"key": key, "outputs": rels, "time": round(time.time(), 3)}
        if self.recipe is not None:
            entry["recipe"] = self.recipes[key] = self.recipe.hash
        self.inputs[key] = self._input_stats(key)
        if self.inputs[key]:
            entry["inputs"] = self.inputs[key]
        self.sizes[key] = {rel: size for rel in rels if (size := _size(self.root / rel)) is not None}
        if self.sizes[key]:
            entry["sizes"] = self.sizes[key]
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


SEGMENT = "segment:"  # a segment's line: `segment:<first item key>..<last item key>`
_HEAD = re.compile(r"#-?\d+(?=\.\.)")  # where a segment key's first item key may end


def segment_ends(key: str) -> tuple[str, str]:
    """The first and last item keys of a segment key. A path may hold `#1..` itself, so of the
    places the first key may end, the one whose two ends name the same source wins."""
    body = key.removeprefix(SEGMENT)
    heads = [body[:m.end()] for m in _HEAD.finditer(body)] or [body]
    split = [(h, body[len(h) + 2:]) for h in heads]
    return next(((h, t) for h, t in split if _source(h) == _source(t)), split[0])


def _size(path: Path) -> int | None:
    """Size of a regular file; None when there is none (missing, a folder)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def input_files(key: str) -> list[str]:
    """The input file an item key names (`<source>#<index>`; a segment's `segment:<first>..<last>`
    names its first item's), when that source is a file path: images and videos are, generated
    inputs are not, and image sequences (named after their pattern) name no file there is."""
    if key.startswith(SEGMENT):
        key = segment_ends(key)[0]
    source = _source(key)
    return [source] if os.path.isabs(source) else []


def _source(key: str) -> str:
    return key.rpartition("#")[0]


class Redo:
    """Why resume redoes items whose outputs exist (the recipe, the input or an output changed): one tally
    that the run reports and `--dry-run` prints, so both say the same."""

    def __init__(self) -> None:
        self.items = self.recipe_items = self.input_items = self.output_items = 0
        self.changes: set[str] = set()
        self.files: set[str] = set()
        self.outputs: set[str] = set()
        self._since: dict[str | None, list[str]] = {}  # older recipe hash -> what changed since

    def note(self, manifest: Manifest, key: str) -> None:
        """Count an item whose state is "changed", and remember why."""
        self.items += 1
        if not manifest.same_recipe(key):
            old = manifest.recipes.get(key)
            if old not in self._since:
                self._since[old] = manifest.recipe.changes_since(manifest.old_recipe(old))
            self.recipe_items += 1
            self.changes.update(self._since[old])
        if inputs := manifest.changed_inputs(key):
            self.input_items += 1
            self.files.update(Path(p).name for p in inputs)
        if outputs := manifest.changed_outputs(key):
            self.output_items += 1
            self.outputs.update(outputs)

    def summary(self) -> dict[str, Any] | None:
        """The report's `redone`: items (all), why (one line), changes (recipe fields), inputs."""
        if not self.items:
            return None
        from .recipe import summarize

        why = summarize(sorted(self.changes)) if self.recipe_items else ""
        files = sorted(self.files)
        both = [why] if why else []
        both += [f"input changed: {_named(files)}"] if files else []
        outputs = sorted(self.outputs)
        both += [f"output changed size: {_named(outputs)}"] if outputs else []
        return {"items": self.items, "why": "; ".join(both), "changes": sorted(self.changes),
                "recipe": {"items": self.recipe_items, "why": why},
                "inputs": {"items": self.input_items, "files": files},
                "outputs": {"items": self.output_items, "files": outputs}}


def _named(files: list[str], most: int = 5) -> str:
    return ", ".join(files[:most]) + (f" and {len(files) - most} more" if len(files) > most else "")


def redo_lines(redone: dict[str, Any] | None) -> list[str]:
    """`redone 4 because the recipe changed: ...`, `redone 1 because its input changed: a.jpg`,
    `redone 1 because its output changed size since written: frames/a.0005.png`."""
    if not redone:
        return []
    lines = []
    recipe, inputs = redone.get("recipe") or {}, redone.get("inputs") or {}
    if recipe.get("items"):
        lines.append(f"redone {recipe['items']} because the recipe changed: {recipe['why']}")
    if n := inputs.get("items"):
        whose = "its input" if n == 1 else "their input" if len(inputs["files"]) == 1 else "their inputs"
        lines.append(f"redone {n} because {whose} changed: {_named(inputs['files'])}")
    if n := (redone.get("outputs") or {}).get("items"):
        whose = "its output" if n == 1 else "their outputs"
        lines.append(f"redone {n} because {whose} changed size since written: "
                     f"{_named(redone['outputs']['files'])}")
    return lines
