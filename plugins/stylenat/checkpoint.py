"""Reading StyleNAT checkpoint files: shapes only (driver-side checks) or the generator state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylefarm.errors import WeightsError


def _load(path: str | Path, mmap: bool) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError:
        if not mmap:
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) files cannot mmap


def read_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the EMA generator in a checkpoint, memory-mapped (the weights stay on disk)."""
    from .loading import generator_state, shapes_of

    try:
        ckpt = _load(path, mmap=True)
    except Exception as exc:  # torch raises many types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read StyleNAT checkpoint {path}: {first}") from None
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path} is not a StyleNAT checkpoint (got {type(ckpt).__name__})")
    try:
        return shapes_of(generator_state(ckpt))
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None
