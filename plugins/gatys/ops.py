"""Optimisation maths of the `gatys` step: presets, the loss objective, the optimiser loop, pyramids.

Everything here is pure tensor code: the step (`step.py`) reads images and options and hands
tensors in. The losses themselves are the shared ones of `plugins/_lossnet.py`.

Presets (weights are not portable between them, because the Gram normalisation differs):
- `neural_style` (jcjohnson/neural-style defaults): Gram / (C*H*W), style layers relu1_1 ..
  relu5_1 with weight 1 each times style_weight 100, content relu4_2 weight 5, TV 1e-3 on
  0-255 pixels, 1000 L-BFGS iterations, random init.
- `gatys` (the authors' PyTorch notebook): Gram / (H*W), layer weights 1e3 / C^2, content relu4_2
  weight 1, no TV, 500 L-BFGS iterations, init from the content image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from stylefarm.plugins._lossnet import LossNet, content_loss, style_loss, tv_loss

PRESETS: dict[str, dict] = {
    "neural_style": {"norm": "chw", "layer_weight": "one", "content_weight": 5.0, "style_weight": 100.0,
                     "tv_weight": 1e-3, "iterations": 1000, "init": "random"},
    "gatys": {"norm": "hw", "layer_weight": "inverse_c2", "content_weight": 1.0, "style_weight": 1.0,
              "tv_weight": 0.0, "iterations": 500, "init": "content"},
}
TV_SCALE = 255.0  # TV on 0-255 pixel values, as neural-style's image lives in Caffe's 0-255 range


def preset_layer_weights(preset: str, channels: Mapping[str, int]) -> dict[str, float]:
    """Per-layer style weights of a preset: 1 each, or Gatys' 1e3 / C^2."""
    if PRESETS[preset]["layer_weight"] == "inverse_c2":
        return {layer: 1e3 / c ** 2 for layer, c in channels.items()}
    return dict.fromkeys(channels, 1.0)


@dataclass
class StyleTerm:
    """One style statistic to match: per-layer targets, optional output guides, its weight."""

    targets: dict[str, object]
    guides: dict[str, torch.Tensor] | None = None
    weight: float = 1.0


@dataclass
class Objective:
    """content + style + TV loss of an image under one loss network; `__call__` gives (total, parts)."""

    net: LossNet
    content_targets: dict[str, torch.Tensor]
    styles: list[StyleTerm]
    content_weight: float
    style_weight: float
    tv_weight: float
    stat: str = "gram"
    norm: str = "chw"
    style_layer_weights: dict[str, float] = field(default_factory=dict)
    content_layer_weights: dict[str, float] | None = None
    content_guides: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        layers = set(self.content_targets)
        for term in self.styles:
            layers |= set(term.targets)
        self.layers = tuple(n for n in self.net.layers if n in layers)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        feats = self.net.tapped(x, self.layers)
        c = content_loss(feats, self.content_targets, self.content_layer_weights, self.content_guides)
        s = torch.zeros((), device=x.device)
        for term in self.styles:
            s = s + term.weight * style_loss(feats, term.targets, self.stat, self.style_layer_weights,
                                             self.norm, term.guides)
        t = tv_loss(x * TV_SCALE) if self.tv_weight else torch.zeros((), device=x.device)
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * t
        return total, {"content": float(c.detach()), "style": float(s.detach()), "tv": float(t.detach())}


Callback = Callable[[int, float, dict, torch.Tensor], None]


def optimize(objective: Objective, init: torch.Tensor, iterations: int, optimizer: str = "lbfgs",
             learning_rate: float = 1.0, callback: Callback | None = None) -> torch.Tensor:
    """Minimise `objective` over the pixels, from `init`, for exactly `iterations` steps.

    L-BFGS: one `step` with max_iter = iterations and both tolerances off (-1), as neural-style
    sets tolX/tolFun, so it never stops early; history 100. Adam: `iterations` plain steps.
    `callback(iteration, loss, parts, image)` runs after each iteration (progress, previews).
    """
    x = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if iterations <= 0:
        return x.detach()
    count = [0]

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss, parts = objective(x)
        loss.backward()
        count[0] += 1
        if callback is not None and count[0] <= iterations:
            callback(count[0], float(loss.detach()), parts, x)
        return loss

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=learning_rate, max_iter=iterations, max_eval=iterations,
                                tolerance_grad=-1.0, tolerance_change=-1.0, history_size=100)
        opt.step(closure)
    elif optimizer == "adam":
        opt = torch.optim.Adam([x], lr=learning_rate)
        for _ in range(iterations):
            opt.step(closure)
    else:
        raise ValueError(f"optimizer {optimizer!r}: choose lbfgs or adam")
    return x.detach()


def level_sizes(size: tuple[int, int], short_sides: Sequence[int]) -> list[tuple[int, int]]:
    """(H, W) of each pyramid level: the image's aspect with the given short sides, in order."""
    h, w = size
    out = []
    for side in short_sides:
        scale = side / min(h, w)
        out.append((max(1, round(h * scale)), max(1, round(w * scale))))
    return out


def upsample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The previous level's result at the next level's size (bilinear), its init."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def initial_image(kind: str, content: torch.Tensor, seed: int | None,
                  image: torch.Tensor | None = None) -> torch.Tensor:
    """`content`: the content itself; `random`: white noise U(0,1) from `seed`; `image`: given."""
    if kind == "content":
        return content.clone()
    if kind == "image":
        if image is None:
            raise ValueError("init: image needs init_image")
        return upsample(image, tuple(content.shape[-2:]))
    gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % (2 ** 31)))
    return torch.rand(content.shape, generator=gen).to(content)
