"""Sinks write results. They are the only place (besides sources) that touches files.

Contract for plugin sinks (video, sheets, stroke JSON, ...):
- enabled by `key` appearing under `output:` in the workflow; `Options` validates that value;
- `planned(item)` lists the files this item will produce (resume skips an item when all of
  its planned files are in the manifest); aggregate sinks (one video or contact sheet for the
  whole job) plan none: they are fed resumed items through `skip`, and a `--shard` task, being
  one part of a job, leaves them to the final run without --shard (`is_aggregate`);
- `write(item)` writes atomically (temp + rename) and returns the files finished;
- `skip(item, recorded)` is told about items resume skipped (an aggregate may read them back);
- `close()` finishes aggregates and returns their files; `abort()` removes temp files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from .images import (
    IMAGE_SUFFIXES,
    PICTURE_DEPTHS,
    atomic_write_bytes,
    check_picture,
    encode_image,
    quantize,
    read_image,
    resize,
    to_float,
)
from .item import Item, as_float
from .naming import confine, render
from .workflow import OutputSpec

log = logging.getLogger("stylefarm.sinks")


@dataclass
class OutputContext:
    """What every sink needs to know about the output location."""

    root: Path  # everything must stay inside this directory
    base_dir: Path  # relative templates resolve against this (the workflow file's folder)
    spec: OutputSpec
    step: str  # name for {step}: the last step's id or name
    stages: tuple[str, ...] = ()  # earlier steps with `save: true`, written besides the final result
    frames: tuple[tuple[int, int], ...] | None = None  # a run's --frames: a video holds exactly these

    def path(self, template: str, item: Item, step: str | None = None) -> Path:
        """Render `dir/template` for an item and confine it to the root."""
        directory = render(self.spec.dir, item, step or self.step)
        name = render(template, item, step or self.step)
        return confine(self.root, self.base_dir / directory / name)

    def results(self, item: Item) -> list[tuple[str, np.ndarray]]:
        """(step name, image) for each saved stage, then the final result."""
        stages = item.meta.get("stages", {})
        return [(name, stages[name]) for name in self.stages if name in stages] + [(self.step, item.image)]


class SinkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, coerce_numbers_to_str=True)


class Sink:
    key: ClassVar[str] = ""
    Options: ClassVar[type[SinkOptions]] = SinkOptions
    pixel_types: ClassVar[tuple[str, ...]] = ("float32",)
    """Add "uint8" when `write` takes 8-bit frames as they are (images and video do): the runner
    hands every other sink float32 items."""

    def __init__(self, options: Any, ctx: OutputContext):
        self.options = options
        self.ctx = ctx

    @classmethod
    def takes_layout(cls, options: Any, layout: str) -> bool:
        """Whether this sink, so configured, writes frames of another `Item.layout` ("yuv420p") as
        they are; the plan keeps the decoder's format only when every sink and step does."""
        return layout in cls.pixel_types

    @classmethod
    def relays(cls, options: Any) -> bool:
        """Whether this sink, so configured, can take a relayed input (`Source.offer_relay`): it
        runs the one process that decodes and encodes, and counts pixel-less items in `write`."""
        return False

    def planned(self, item: Item) -> list[Path]:
        return []

    def write(self, item: Item) -> list[Path]:
        raise NotImplementedError

    def skip(self, item: Item, recorded: list[Path]) -> None:
        """Called instead of `write` for items that resume skipped."""

    def close(self) -> list[Path]:
        return []

    def abort(self) -> None:
        """Remove temporary files after a failure."""


def is_aggregate(sink: Sink, probe: Item) -> bool:
    """A sink that writes no file of its own per item (the video, the contact sheet): its output
    is made from the whole job, so a farm shard leaves it to the final run."""
    return sink.key != "images" and not sink.planned(probe)


def default_pattern(item: Item, with_step: bool = False) -> str:
    step = "_{step}" if with_step else ""
    return f"{{input.stem}}{step}.{{frame:04d}}.png" if item.frame is not None else f"{{input.stem}}{step}.png"


def written_depth(spec: OutputSpec, item: Item, suffix: str) -> int:
    """The bit depth an image file gets: the one asked for or the input's, at most what its
    format holds (an explicit depth the format lacks is refused at validation)."""
    depth = int(item.bit_depth if spec.bit_depth == "auto" else spec.bit_depth)
    return min(depth, max(PICTURE_DEPTHS.get(suffix, (8,))))


class ImageSink(Sink):
    """One image file per item, named by `output.pattern`; bit depth and alpha explicit."""

    key = "images"
    pixel_types = ("uint8", "float32")
    _depth_said = False  # the depth a format cannot hold is said once a run, not once a frame

    def planned(self, item: Item) -> list[Path]:
        template = self.ctx.spec.pattern or default_pattern(item, bool(self.ctx.stages))
        return [self.ctx.path(template, item, step) for step in (*self.ctx.stages, self.ctx.step)]

    def write(self, item: Item) -> list[Path]:
        paths = self.planned(item)
        for path, (_, image) in zip(paths, self.ctx.results(item), strict=True):
            self._write_one(path, item, image)
        return paths

    def _write_one(self, path: Path, item: Item, image: np.ndarray) -> None:
        spec = self.ctx.spec
        suffix = path.suffix.lower()
        depth = written_depth(spec, item, suffix)
        if depth < item.bit_depth and spec.bit_depth == "auto" and not self._depth_said:
            log.warning("%s: a %s file holds %d bits; the input's %d-bit pixels are written with %d (name .tif "
                        "files to keep them)", item.key, suffix, depth, item.bit_depth, depth)
            self._depth_said = True
        alpha = None
        if spec.alpha == "keep" and item.alpha is not None:
            h, w = image.shape[:2]
            alpha = resize(item.alpha, w, h)
            if suffix in (".jpg", ".jpeg", ".bmp"):
                log.warning("%s: %s cannot hold alpha; dropped (set output.alpha: drop to silence)",
                            item.key, suffix)
                alpha = None
        atomic_write_bytes(path, encode_image(suffix, image, alpha, depth, spec.quality))


class SheetOptions(SinkOptions):
    path: str = Field("contact_sheet.png", description="file name inside the output root")
    thumb: PositiveInt = Field(256, description="height of each thumbnail in pixels")
    max_items: PositiveInt = Field(12, description="rows kept (first N items)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        check_picture(value)  # written when the job ends: a bad name must not wait until then
        return value


class SheetSink(Sink):
    """A before/after contact sheet: one row per item, input | result, labelled."""

    key = "sheet"
    Options = SheetOptions

    def __init__(self, options: SheetOptions, ctx: OutputContext):
        super().__init__(options, ctx)
        self.rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []

    def _add(self, item: Item, results: list[tuple[str, np.ndarray]]) -> None:
        if len(self.rows) < self.options.max_items:
            before = item.original if item.original is not None else item.image
            cells = [("input", self._thumb(before))] + [(name, self._thumb(img)) for name, img in results]
            self.rows.append((Path(item.source).name, cells))

    def _thumb(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        height = self.options.thumb
        return resize(as_float(image), max(1, round(w * height / h)), height)  # resumed frames may be 8-bit

    @property
    def full(self) -> bool:
        """Every row is taken: later items change nothing (segment mode stops reading here)."""
        return len(self.rows) >= self.options.max_items

    def write(self, item: Item) -> list[Path]:
        self._add(item, [(name, self._as_written(item, img)) for name, img in self.ctx.results(item)])
        return []

    def _as_written(self, item: Item, image: np.ndarray) -> np.ndarray:
        """The result quantized as the image files hold it, so a sheet rebuilt on resume (farm
        jobs assemble it from the tasks' files) is byte-identical to one made in a single run."""
        spec = self.ctx.spec
        depth = written_depth(spec, item, Path(spec.pattern or default_pattern(item)).suffix.lower())
        return image if depth == 32 else to_float(quantize(image, depth))[0]

    def skip(self, item: Item, recorded: list[Path]) -> None:
        """Rebuild the row of a resumed item from its files (stages first, final result last)."""
        images = [p for p in recorded if p.suffix.lower() in IMAGE_SUFFIXES]  # not the stroke JSON, GIF ...
        names = (*self.ctx.stages, self.ctx.step)
        if len(images) == len(names) and len(self.rows) < self.options.max_items:
            item.load()
            self._add(item, [(name, read_image(path)[0]) for name, path in zip(names, images)])

    def close(self) -> list[Path]:
        if not self.rows:
            return []
        from .contact import contact_sheet

        path = confine(self.ctx.root, self.ctx.root / self.options.path)
        sheet = contact_sheet(self.rows)
        atomic_write_bytes(path, encode_image(".png", sheet, None, 8))
        return [path]
