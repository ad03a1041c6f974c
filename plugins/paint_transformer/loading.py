"""Resolve the step's `weights:` / `brushes:` options to a network and brush tensors."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from stylefarm import weights as wm
from stylefarm.errors import WeightsError

from .brushes import procedural_brushes
from .model import Painter, build_painter, split_checkpoint
from .step import BRUSHES_OPTION, MODEL, OFFICIAL_BRUSHES

log = logging.getLogger(__name__)

SHIPPED_BRUSHES = ("brush_images/vertical.png", "brush_images/horizontal.png")


def load_painter(option: str | dict | None) -> tuple[Painter | None, bool]:
    """(network or None for 'random', whether the file is an official checkpoint)."""
    value = option.get("model") if isinstance(option, dict) else option
    if isinstance(option, dict) and set(option) - {"model"}:
        raise WeightsError(f"paint_transformer weights roles: only 'model' exists, got {sorted(option)}")
    if value == "random":
        return None, False
    if value and value in wm.registry():
        name, override = value, None
    else:
        name, override = MODEL, value
    path = wm.resolve(name, override)
    obj = wm.load_state_dict(path, name)
    state, meta = split_checkpoint(obj)
    try:
        return build_painter(obj), not meta
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"weights {path} are not a Paint Transformer checkpoint ({exc!s:.120})") from None


def read_brush(path: Path) -> torch.Tensor:
    """A brush PNG as [1,1,H,W] grey values in [0,1] (0 = no paint)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy())[None, None]


def pair(vertical: torch.Tensor, horizontal: torch.Tensor) -> torch.Tensor:
    """Stack two brushes (resized to a common size) as the renderer's [2,1,H,W]."""
    if vertical.shape != horizontal.shape:
        horizontal = torch.nn.functional.interpolate(horizontal, vertical.shape[-2:])
    return torch.cat([vertical, horizontal])


def shipped_brushes() -> torch.Tensor:
    """The package's brush PNGs (drawn by `brushes.py`); drawn on the fly if missing."""
    root = resources.files("stylefarm.plugins.paint_transformer")
    paths = [Path(str(root.joinpath(p))) for p in SHIPPED_BRUSHES]
    if all(p.is_file() for p in paths):
        return pair(*(read_brush(p) for p in paths))
    return procedural_brushes()


def load_brushes(option, official_weights: bool) -> torch.Tensor:
    """Brushes for the `brushes:` option; see `PaintTransformerOptions.brushes`."""
    if isinstance(option, list):
        if len(option) != 2:
            raise WeightsError("brushes: give two images, [vertical.png, horizontal.png]")
        return pair(*(read_brush(Path(p).expanduser()) for p in option))
    if option == "official" or (option == "auto" and official_weights):
        try:
            return pair(*(read_brush(wm.resolve(n, option=BRUSHES_OPTION)) for n in OFFICIAL_BRUSHES))
        except WeightsError:
            if option == "official":
                raise
            log.warning("official weights with the shipped brushes: strokes will look different from the "
                        "official painting; add the official brush PNGs with `stylefarm weights add %s ...`",
                        OFFICIAL_BRUSHES[0])
    return shipped_brushes()
