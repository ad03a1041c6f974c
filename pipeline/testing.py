"""Testing kit for plugin authors (and stylefarm's own plugins): items, frames, one step, a
workflow from a YAML string, an isolated weights cache, and `check_step_contract`.

    from stylefarm.testing import check_step_contract, make_item, run_step

    def test_my_step_keeps_the_contract():
        check_step_contract("acme_sepia", {"amount": 0.5})

Steps run through the host's own `ChainRunner`, so the checks a real run applies (read-only
inputs, float32 (H, W, 3) results in [0, 1], 8-bit results only for steps that declare them)
apply here too, and `check_step_contract` feeds every pixel type a step declares. The pytest fixtures built on this
module (`stylefarm_weights`, `stylefarm_workflow`) come with the package's pytest plugin.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .host import pixel_types_problem
from .images import quantize
from .item import Item, as_float
from .step import Step
from .video import yuv


def make_item(image: np.ndarray | None = None, *, width: int = 32, height: int = 24, seed: int = 0,
              source: str = "test.png", index: int = 0, frame: int | None = None) -> Item:
    """An item as a source would make it: a smooth random picture unless `image` is given."""
    if image is None:
        image = _texture(width, height, seed)
    image = np.ascontiguousarray(image, dtype=np.float32)
    return Item(source=source, index=index, frame=frame, image=image, size=(image.shape[1], image.shape[0]))


def make_frames(count: int = 6, *, width: int = 48, height: int = 32, seed: int = 0, dx: int = 2, dy: int = 1,
                source: str = "clip.mp4", fps: Fraction = Fraction(24)) -> list[Item]:
    """Frames of a video: one texture panning by (dx, dy) pixels per frame (known motion)."""
    big = _texture(width + abs(dx) * count + 1, height + abs(dy) * count + 1, seed)
    frames = []
    for i in range(count):
        x = i * dx if dx >= 0 else (count - i) * -dx
        y = i * dy if dy >= 0 else (count - i) * -dy
        item = make_item(big[y:y + height, x:x + width], source=source, index=i, frame=i)
        item.fps, item.pts = fps, float(i / fps)
        frames.append(item)
    return frames


def _texture(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth colour noise with edges: something a stylization visibly changes."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    yy = np.linspace(0, coarse.shape[0] - 1.001, height)
    xx = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[:, None, None], (xx - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return np.clip(top * (1 - fy) + bottom * fy, 0, 1).astype(np.float32)


def step_class(step: str | type[Step]) -> type[Step]:
    if isinstance(step, str):
        from .host import get_host

        return get_host().step_class(step)
    return step


class StepContractError(AssertionError):
    """A step broke the plugin contract; the message says how."""


def _runner(step: type[Step], options: dict[str, Any] | None, device: str):
    from .executors.base import ChainRunner, StepCall

    call = StepCall(step.name, step, step.Options.model_validate(options or {}))
    runner = ChainRunner([call], device=device)
    runner.setup()
    return runner


def run_step(step: str | type[Step], options: dict[str, Any] | None = None, items: list[Item] | None = None,
             *, device: str = "cpu", batch_size: int | None = None, runner=None) -> list[Item]:
    """Run one step over items (default: one `make_item()`) with the host's checks.

    Raises `StepContractError` naming the item when the step fails or breaks the contract."""
    cls = step_class(step)
    items = items if items is not None else [make_item()]
    own = runner is None
    runner = runner or _runner(cls, options, device)
    size = batch_size or max(1, len(items))
    out: list[Item] = []
    try:
        for start in range(0, len(items), size):
            batch = [_fresh(it) for it in items[start:start + size]]
            for item, (result, error) in zip(batch, runner.run_batch(batch)):
                if error is not None:
                    raise StepContractError(f"{item.key}: {error}")
                out.append(result)
    finally:
        if own:
            runner.teardown()
    return out


def _fresh(item: Item) -> Item:
    """A copy with writable arrays of its own (the runner freezes what it hands to the step)."""
    image = None if item.image is None else item.image.copy()
    return replace(item, image=image, original=image, meta=dict(item.meta))


PIXEL_TOLERANCE = 2 / 255
"""How far a step's result for uint8 frames may be from its result for the same picture as
float32 (the host hands a step either, depending on what ran before it): 8-bit rounding."""
YUV_TOLERANCE = {"Y": 4, "U": 16, "V": 16}
"""yuv420p results vs the float RGB result converted to yuv420p as the video sink does, in 8-bit
levels: the Y plane pixel by pixel, U and V averaged over 4x4 blocks (each path resamples the
4:2:0 chroma differently, so fine colour detail may differ; `resize` measures <= 3 and <= 11)."""


def check_step_contract(step: str | type[Step], options: dict[str, Any] | None = None, *, frames: int = 4,
                        width: int = 48, height: int = 32, device: str = "cpu", atol: float = 1e-4) -> None:
    """What every plugin's tests should assert: results of the right form, deterministic,
    independent of the batch size, no hidden state across frames unless declared `temporal`, and
    the same picture whichever of its `pixel_types` the host feeds it.

    Runs the step on `frames` frames of an 8-bit panning texture: all in one batch, one per batch,
    with two fresh instances, shuffled, and one instance per frame; as float32, then again as
    uint8 and yuv420p frames when declared, whose results must match the float32 ones. Types
    the host would refuse at discovery (`stylefarm.host.pixel_types_problem`) fail before it runs."""
    from .executors.base import floats

    cls = step_class(step)
    if problem := pixel_types_problem(cls.pixel_types):
        raise StepContractError(f"step {cls.name!r} declares pixel_types={cls.pixel_types!r}, which the host "
                                f"refuses: {problem}")
    eight_bit = [replace(it, image=quantize(it.image, 8)) for it in make_frames(frames, width=width, height=height)]
    clip = [floats(it) for it in eight_bit]  # the host's own conversion, as for a step that needs floats
    reference = _check_frames(cls, options, clip, device, atol)
    for kind in cls.pixel_types:
        if kind == "float32":
            continue
        try:
            if kind == "uint8":
                _agree_pictures(reference, _check_frames(cls, options, eight_bit, device, atol))
            elif kind == yuv.LAYOUT:
                _check_yuv(cls, options, eight_bit, device, atol)
        except StepContractError as exc:
            raise StepContractError(f"fed {kind} frames because the step declares pixel_types="
                                    f"{cls.pixel_types!r}: {exc}") from None


def _check_frames(cls: type[Step], options: dict[str, Any] | None, clip: list[Item], device: str,
                  atol: float) -> list[Item]:
    """The determinism, batch-size and hidden-state checks on one clip; the batched results."""
    frames = len(clip)
    batched = run_step(cls, options, clip, device=device)
    first = _images(batched)
    _agree(first, _images(run_step(cls, options, clip, device=device)), atol, "two fresh instances (determinism)")
    _agree(first, _images(run_step(cls, options, clip, device=device, batch_size=1)), atol, "batch size 1 vs all")
    if cls.is_temporal(cls.Options.model_validate(options or {})):
        return batched
    order = list(range(frames))
    random.Random(0).shuffle(order)
    shuffled = run_step(cls, options, [clip[i] for i in order], device=device, batch_size=1)
    back = [None] * frames
    for i, result in zip(order, shuffled):
        back[i] = result.image
    _agree(first, back, atol, "frames shuffled (the step keeps state across frames: declare temporal = True "
                              "or override is_temporal)")
    alone = [run_step(cls, options, [clip[i]], device=device)[0].image for i in range(frames)]
    _agree(first, alone, atol, "one instance per frame (undeclared temporal state)")
    return batched


def _check_yuv(cls: type[Step], options: dict[str, Any] | None, eight_bit: list[Item], device: str,
               atol: float) -> None:
    """yuv420p frames as the decoder sends them (even size), checked against the same pictures
    as float RGB."""
    from .executors.base import floats

    even = [replace(it, image=it.image[:it.image.shape[0] // 2 * 2, :it.image.shape[1] // 2 * 2]) for it in eight_bit]
    frames = [replace(it, image=yuv.from_rgb(it.image), layout=yuv.LAYOUT) for it in even]
    pictures = [floats(replace(it, image=yuv.to_rgb(f.image))) for it, f in zip(even, frames)]
    got = _check_frames(cls, options, frames, device, atol)
    for i, (want, have) in enumerate(zip(run_step(cls, options, pictures, device=device), got)):
        if have.layout != yuv.LAYOUT:  # answered in RGB (e.g. an odd size 4:2:0 cannot hold)
            _agree_pictures([want], [have], first=i)
            continue
        size = yuv.frame_size(have.image)
        if want.image.shape[1::-1] != size:
            raise StepContractError(f"frame {i}: a yuv420p result of {size[0]}x{size[1]}, but "
                                    f"{want.image.shape[1]}x{want.image.shape[0]} for the same picture as float RGB")
        _agree_planes(i, yuv.from_rgb(quantize(want.image, 8)), have.image)


def _images(items: list[Item]) -> list[np.ndarray]:
    return [it.image for it in items]


def _agree(expected: list[np.ndarray], got: list[np.ndarray], atol: float, what: str) -> None:
    for i, (a, b) in enumerate(zip(expected, got)):
        a, b = as_float(a), as_float(b)  # uint8 differences would wrap around
        if a.shape != b.shape or float(np.abs(a - b).max()) > atol:
            diff = "shape " + str(b.shape) if a.shape != b.shape else f"max |diff| {float(np.abs(a - b).max()):.3g}"
            raise StepContractError(f"frame {i} differs with {what}: {diff} (tolerance {atol})")


def _agree_pictures(expected: list[Item], got: list[Item], first: int = 0) -> None:
    """Results for 8-bit input against those for the same pictures as float32."""
    for i, (want, have) in enumerate(zip(expected, got), start=first):
        a, b = as_float(want.image), as_float(have.image)
        diff = float(np.abs(a - b).max()) if a.shape == b.shape else None
        if diff is None or diff > PIXEL_TOLERANCE:
            what = f"shape {b.shape} instead of {a.shape}" if diff is None else f"max |diff| {diff * 255:.3g}/255"
            raise StepContractError(f"frame {i}: the result differs from the step's result for the same picture "
                                    f"as float32: {what} (tolerance {PIXEL_TOLERANCE * 255:.3g}/255)")


def _agree_planes(i: int, expected: np.ndarray, got: np.ndarray) -> None:
    """A yuv420p result against the float RGB one converted to yuv420p (`YUV_TOLERANCE`)."""
    import cv2

    for name, a, b in zip("YUV", yuv.planes(expected), yuv.planes(got)):
        a, b = a.astype(np.float32), b.astype(np.float32)
        if name != "Y":
            blocks = (max(1, a.shape[1] // 4), max(1, a.shape[0] // 4))
            a, b = (cv2.resize(x, blocks, interpolation=cv2.INTER_AREA) for x in (a, b))
        diff = float(np.abs(a - b).max())
        if diff > YUV_TOLERANCE[name]:
            raise StepContractError(f"frame {i}: the {name} plane differs from the step's result for the same "
                                    f"picture as float RGB converted to yuv420p: max |diff| {diff:.3g} levels "
                                    f"(tolerance {YUV_TOLERANCE[name]})")


@contextlib.contextmanager
def isolated_weights(directory: str | os.PathLike) -> Iterator[Path]:
    """Point the weights manager at an empty cache for the duration (never the user's cache)."""
    previous = os.environ.get("STYLEFARM_WEIGHTS_DIR")
    os.environ["STYLEFARM_WEIGHTS_DIR"] = str(directory)
    try:
        yield Path(directory)
    finally:
        if previous is None:
            os.environ.pop("STYLEFARM_WEIGHTS_DIR", None)
        else:
            os.environ["STYLEFARM_WEIGHTS_DIR"] = previous


def run_workflow_text(text: str, directory: str | os.PathLike, *, name: str = "workflow.yaml",
                      force: bool = False) -> dict[str, Any]:
    """Write a workflow into `directory` and run it there; returns the run report.

    Relative paths in the YAML resolve against `directory`, like a file kept beside its inputs."""
    from .api import run_workflow

    path = Path(directory) / name
    path.write_text(text, encoding="utf-8")
    return run_workflow(path, force=force)
