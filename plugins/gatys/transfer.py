"""One `gatys` stylization: settings from the options, per-level objectives, the pyramid loop.

Colour control (luminance / match) and masks come from `plugins/_controls.py`; guided Gram
matrices and the losses from `plugins/_lossnet.py`; the optimiser loop from `ops.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stylefarm.errors import StylefarmError
from stylefarm.plugins import _controls as controls
from stylefarm.plugins._lossnet import DEFAULT_LAYERS, grow_guide, style_stats
from stylefarm.plugins.gatys.ops import (
    PRESETS,
    Objective,
    StyleTerm,
    initial_image,
    level_sizes,
    optimize,
    preset_layer_weights,
    upsample,
)

log = logging.getLogger("stylefarm.gatys")


@dataclass
class Settings:
    """The options with every preset default filled in (what one stylization needs)."""

    preset: str
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    content_layer_weights: dict[str, float]
    style_layer_factors: dict[str, float]
    fine_layers: tuple[str, ...]
    content_weight: float
    style_weight: float
    tv_weight: float
    norm: str
    iterations: int
    init: str
    learning_rate: float
    level_factors: dict[str, list[float]] = field(default_factory=dict)

    @property
    def all_layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))

    @classmethod
    def from_options(cls, o: Any) -> Settings:
        preset, defaults = PRESETS[o.preset], DEFAULT_LAYERS[o.network]
        content = tuple(o.content_layers or defaults["content"])
        style = tuple(o.style_layers or defaults["style"])
        fine = tuple(o.fine_layers) if o.fine_style else ()
        if o.fine_style and not set(fine) <= set(style):
            raise StylefarmError(f"gatys: fine_layers {', '.join(fine)} are not among the style layers "
                                 f"{', '.join(style)}")
        for name, layers, weights in (("content", content, o.content_layer_weights),
                                      ("style", style, o.style_layer_weights)):
            if weights is not None and len(weights) != len(layers):
                raise StylefarmError(f"gatys: {len(weights)} {name}_layer_weights for {len(layers)} layers "
                                     f"({', '.join(layers)})")
        n_levels = len(o.levels or [0])
        iterations = preset["iterations"] if o.iterations is None else o.iterations
        return cls(
            preset=o.preset, content_layers=content, style_layers=style,
            content_layer_weights=dict(zip(content, o.content_layer_weights or [1.0] * len(content))),
            style_layer_factors=dict(zip(style, o.style_layer_weights or [1.0] * len(style))),
            fine_layers=fine,
            content_weight=_given(o.content_weight, preset["content_weight"]),
            style_weight=_given(o.style_weight, preset["style_weight"]),
            tv_weight=_given(o.tv_weight, preset["tv_weight"]),
            norm=o.gram_norm or preset["norm"], iterations=iterations, init=o.init or preset["init"],
            learning_rate=o.learning_rate or (1.0 if o.optimizer == "lbfgs" else 0.02),
            level_factors={"iterations": list(o.level_iterations or [iterations] * n_levels),
                           "style": list(o.level_style_weights or [1.0] * n_levels),
                           "tv": list(o.level_tv_weights or [1.0] * n_levels)},
        )


def _given(value: float | None, default: float) -> float:
    return float(default if value is None else value)


def to_tensor(image: np.ndarray, device) -> torch.Tensor:
    chw = np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1))
    return torch.from_numpy(chw)[None].to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from stylefarm.images import resize

    return resize(np.ascontiguousarray(image, dtype=np.float32), size[1], size[0])


def _short(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / min(h, w)
    return _resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))


def _guide_tensor(mask: np.ndarray, size: tuple[int, int], device) -> torch.Tensor:
    return torch.from_numpy(controls.fit_mask(mask, size[0], size[1]))[None, None].to(device)


def stylize(step, content: np.ndarray, previous: torch.Tensor | None, preview) -> tuple[np.ndarray, torch.Tensor, dict]:
    """Run the pyramid for one content image; returns (image, result tensor, report).

    Every tensor lives on `step.device`; the CUDA path is untested on CUDA (no GPU here) and has
    a test that runs where one is present.
    """
    opts, st = step.options, step.settings
    luminance = opts.preserve_color and opts.color_method == "luminance"
    seen = controls.luminance_only(content) if luminance else content
    sizes = level_sizes(content.shape[:2], opts.levels or [min(content.shape[:2])])
    x, parts_log = None, {}
    for level, size in enumerate(sizes):
        c = to_tensor(_resize(seen, size), step.device)
        objective = build_objective(step, _resize(content, size), c, level)
        if x is not None:
            start = upsample(x, size)
        elif previous is not None:
            start = upsample(previous.to(step.device), size)
        else:
            init = step.images["init_image"]
            start = initial_image(st.init, c, opts.seed, None if init is None else to_tensor(init, step.device))
        callback = _callback(opts, level, preview, parts_log, content if luminance else None)
        x = optimize(objective, start, int(st.level_factors["iterations"][level]), opts.optimizer,
                     st.learning_rate, callback)
    out = to_image(x)
    if luminance:
        out = controls.recombine_luminance(out, content)
    info = {"levels": [list(s) for s in sizes], "iterations": st.level_factors["iterations"], "loss": parts_log}
    return out, x, info


def _callback(opts, level: int, preview, parts_log: dict, chroma: np.ndarray | None):
    """Progress: keep the last losses, log every `print_iter`, a preview every `save_iter`
    (recombined with the content's chroma when only luminance is optimised)."""
    def report(iteration: int, loss: float, parts: dict, x: torch.Tensor) -> None:
        parts_log.update(total=loss, **parts)
        if opts.print_iter and iteration % opts.print_iter == 0:
            log.info("gatys level %d iteration %d: loss %.6g (content %.4g, style %.4g, tv %.4g)",
                     level, iteration, loss, parts["content"], parts["style"], parts["tv"])
        if preview is not None and iteration % opts.save_iter == 0:
            image = to_image(x)
            preview(level, iteration, image if chroma is None else controls.recombine_luminance(image, chroma))

    return report


def build_objective(step, colour_content: np.ndarray, c: torch.Tensor, level: int) -> Objective:
    """Content targets of `c`, style terms for this level, layer weights and per-level factors."""
    opts, st, net = step.options, step.settings, step.net
    size = tuple(c.shape[-2:])
    with torch.no_grad():
        feats = net.tapped(c, st.content_layers)
    terms = style_terms(step, colour_content, size)
    channels = {layer: _channels(terms[0].targets[layer]) for layer in st.style_layers}
    layer_weights = {k: w * st.style_layer_factors[k] for k, w in preset_layer_weights(st.preset, channels).items()}
    content_guides = None
    if step.images["content_mask"] is not None:
        content_guides = net.guides(_guide_tensor(step.images["content_mask"], size, c.device), "simple")
    return Objective(net, {k: feats[k].detach() for k in st.content_layers}, terms, st.content_weight,
                     st.style_weight * st.level_factors["style"][level], st.tv_weight * st.level_factors["tv"][level],
                     opts.stat, st.norm, layer_weights, st.content_layer_weights, content_guides)


def _channels(target) -> int:
    return int(target[0].shape[1]) if isinstance(target, tuple) else int(target.shape[-1])


def content_masks(step, size: tuple[int, int]) -> list[np.ndarray] | None:
    """One mask per style over the content: mask files, or the region map through its colour table."""
    opts, images = step.options, step.images
    if images["mask"] is not None:
        return [controls.fit_mask(m, *size) for m in images["mask"]]
    if images["region_map"] is None:
        return None
    region = _resize(images["region_map"], size)
    colours = list(opts.region_styles)
    found = controls.region_masks(region, colours, opts.region_tolerance)
    masks = [np.zeros(size, np.float32) for _ in opts.style]
    for colour, mask in zip(colours, found):
        masks[opts.region_styles[colour]] = np.maximum(masks[opts.region_styles[colour]], mask)
    return masks


def style_terms(step, colour_content: np.ndarray, size: tuple[int, int]) -> list[StyleTerm]:
    """Masked: one guided term per style. Otherwise one term: the blended statistics (+ fine style)."""
    opts, st, net = step.options, step.settings, step.net
    stats = [style_image_stats(step, i, img, colour_content, size) for i, img in enumerate(step.images["style"])]
    masks = content_masks(step, size)
    if masks is not None:
        weights = opts.region_weights or [1.0] * len(stats)
        terms = []
        for stat, mask, weight in zip(stats, masks, weights):
            guide = grow_guide(torch.from_numpy(mask)[None, None].to(step.device), opts.guide_grow)
            terms.append(StyleTerm(stat, net.guides(guide, opts.guide_mode), float(weight)))
        return terms
    weights = np.asarray(opts.style_weights or [1.0] * len(stats), dtype=np.float64)
    targets = _blend(stats, list(weights / weights.sum()))
    if step.images["fine_style"] is not None:
        fine = style_image_stats(step, -1, step.images["fine_style"], colour_content, size)
        targets.update({layer: fine[layer] for layer in st.fine_layers})
    return [StyleTerm(targets)]


def _blend(stats: list[dict], weights: list[float]) -> dict:
    out = {}
    for layer in stats[0]:
        if isinstance(stats[0][layer], tuple):
            out[layer] = tuple(sum(w * s[layer][k] for s, w in zip(stats, weights)) for k in range(2))
        else:
            out[layer] = sum(w * s[layer] for s, w in zip(stats, weights))
    return out


def style_image_stats(step, index: int, image: np.ndarray, colour_content: np.ndarray,
                      size: tuple[int, int]) -> dict:
    """Style statistics of one style image at this level's scale (cached unless colour depends on content)."""
    opts, st, net = step.options, step.settings, step.net
    final_short = min(size) if not opts.levels else opts.levels[-1]
    side = round(opts.style_size * min(size) / final_short) if opts.style_size else round(min(size) * opts.style_scale)
    side = max(side, 8)
    key = (index, side)
    if not opts.preserve_color and key in step._cache:
        return step._cache[key]
    if opts.preserve_color and opts.color_method == "luminance":
        image = controls.match_luminance(image, colour_content)
    elif opts.preserve_color:
        image = controls.match_color(image, colour_content, opts.match_mode)
    image = _short(image, side)
    s = to_tensor(image, step.device)
    guides = None
    if step.images["style_mask"] is not None and index >= 0:
        guides = net.guides(_guide_tensor(step.images["style_mask"][index], tuple(s.shape[-2:]), s.device),
                            opts.guide_mode)
    with torch.no_grad():
        stats = style_stats(net.tapped(s, st.style_layers), opts.stat, st.norm, guides)
    if not opts.preserve_color:
        step._cache[key] = stats
    return stats
