"""Official StyleNAT checkpoints -> our generator's state dict (no file I/O: takes loaded dicts).

Layouts (as the official `main.py` loads them):
- new: `ckpt['state_dicts']['g_ema']`;
- legacy: `ckpt['g_ema']` beside `ckpt['g']` (built there with `legacy=True`): every NA stage
  splits its heads into two halves with `rpb0` / `rpb1`. Renamed to `rpb.0` / `rpb.1`, or
  concatenated along heads into `rpb.0` where the config has one group (the 8x8 stage): the
  same function, since both halves then share kernel and dilation;
- a bare generator state dict (keys `style.1.weight`, ...), e.g. one saved by a user.
"""

from __future__ import annotations

from typing import Any

import torch

from .configs import GeneratorConfig, is_legacy, legacy_plan


def generator_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The EMA generator's state dict inside an official checkpoint (either layout) or a bare one."""
    if isinstance(ckpt.get("state_dicts"), dict) and isinstance(ckpt["state_dicts"].get("g_ema"), dict):
        return ckpt["state_dicts"]["g_ema"]
    if isinstance(ckpt.get("g_ema"), dict):
        return ckpt["g_ema"]
    if "style.1.weight" in ckpt:
        return ckpt
    keys = ", ".join(sorted(map(str, ckpt))[:6])
    raise ValueError(f"not a StyleNAT checkpoint: no state_dicts.g_ema, g_ema or generator keys (top-level keys: "
                     f"{keys})")


def shapes_of(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def to_new_layout(state: dict[str, torch.Tensor], cfg: GeneratorConfig) -> dict[str, torch.Tensor]:
    """Legacy split-head keys renamed / concatenated for `cfg`; new-layout dicts pass through."""
    if not is_legacy(state):
        return dict(state)
    plan = legacy_plan(shapes_of(state), cfg)
    used = {k for parts in plan.values() for k in parts}
    out = {k: v for k, v in state.items() if k not in used}
    for new, parts in plan.items():
        out[new] = torch.cat([state[p] for p in parts], dim=0) if len(parts) > 1 else state[parts[0]]
    return out
