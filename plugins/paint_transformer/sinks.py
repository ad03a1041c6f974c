"""Sinks for what the painting step attaches besides the image: the stroke list and the
painting-process animation (`strokes_json: true` / `animate: true` on the step)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from stylefarm.errors import OutputError
from stylefarm.images import atomic_write_bytes
from stylefarm.item import Item
from stylefarm.sinks import Sink, SinkOptions


def _needs(item: Item, key: str, option: str, output: str) -> object:
    if key not in item.meta:
        raise OutputError(f"output.{output} needs `{option}: true` on the paint_transformer step ({item.key})")
    return item.meta[key]


class StrokesOptions(SinkOptions):
    path: str = Field("{input.stem}_strokes.json", description="JSON file per item (in output.dir)")


class StrokesSink(Sink):
    """Writes the stroke list (x, y, w, h, theta, r, g, b per stroke, by level) as JSON."""

    key = "strokes"
    Options = StrokesOptions

    def planned(self, item: Item) -> list[Path]:
        return [self.ctx.path(self.options.path, item)]

    def write(self, item: Item) -> list[Path]:
        strokes = _needs(item, "strokes", "strokes_json", self.key)
        (path,) = self.planned(item)
        atomic_write_bytes(path, json.dumps({"source": item.source, "frame": item.frame, "strokes": strokes}).encode())
        return [path]


class AnimationOptions(SinkOptions):
    path: str = Field("{input.stem}_painting.gif", description="animated GIF per item (in output.dir)")
    fps: PositiveInt = Field(8, description="frames per second of the animation")
    hold: int = Field(8, ge=0, description="extra frames showing the finished painting at the end")
    max_side: PositiveInt = Field(512, description="frames are shrunk to this longer side (GIF size)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.lower().endswith(".gif"):  # GIF bytes are written whatever the name says
            raise ValueError("the animation is a GIF: name a .gif file")
        return value


class AnimationSink(Sink):
    """Writes the painting process (strokes added level by level) as an animated GIF."""

    key = "animation"
    Options = AnimationOptions

    def planned(self, item: Item) -> list[Path]:
        return [self.ctx.path(self.options.path, item)]

    def write(self, item: Item) -> list[Path]:
        import imageio.v3 as iio

        from stylefarm.images import resize

        frames = list(_needs(item, "paint_frames", "animate", self.key))
        frames += [frames[-1]] * self.options.hold
        h, w = frames[0].shape[:2]
        scale = min(1.0, self.options.max_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = [np.ascontiguousarray(resize(f, *size)) for f in frames]
        data = iio.imwrite("<bytes>", np.stack(small), extension=".gif", duration=1000 / self.options.fps, loop=0)
        (path,) = self.planned(item)
        atomic_write_bytes(path, data)
        return [path]
