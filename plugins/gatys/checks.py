"""Cross-field checks of the `gatys` options (torch-free, so `stylefarm validate` stays fast)."""

from __future__ import annotations

from typing import Any


def _check_styles(o: Any, n: int) -> None:
    if n == 0:
        raise ValueError("style: give at least one style image")
    if o.style_weights is not None and (len(o.style_weights) != n or min(o.style_weights) < 0
                                        or sum(o.style_weights) <= 0):
        raise ValueError(f"style_weights: give {n} non-negative weights with a positive sum (one per style)")
    for key in ("mask", "style_mask", "region_weights"):
        value = getattr(o, key)
        if value is not None and len(value) != n:
            raise ValueError(f"{key}: {len(value)} given for {n} styles (one per style)")


def _check_regions(o: Any, n: int) -> None:
    from stylefarm.plugins._controls import parse_color

    spatial = o.mask is not None or o.region_map is not None
    if o.mask is not None and o.region_map is not None:
        raise ValueError("mask and region_map exclude each other: give one")
    if (o.region_map is None) != (o.region_styles is None):
        raise ValueError("region_map and region_styles go together (colour -> style index table)")
    for colour, index in (o.region_styles or {}).items():
        parse_color(colour)
        if not 0 <= index < n:
            raise ValueError(f"region_styles: {colour} -> {index}, but there are {n} styles (indices 0..{n - 1})")
    if o.region_weights is not None and not spatial:
        raise ValueError("region_weights need mask or region_map (use style_weights to blend whole styles)")
    if spatial and o.style_weights is not None:
        raise ValueError("style_weights blend whole styles; with mask/region_map use region_weights")
    if spatial and o.fine_style is not None:
        raise ValueError("fine_style (coarse/fine combination) does not combine with mask/region_map")


def _check_levels(o: Any) -> None:
    if o.levels is not None:
        if not o.levels or min(o.levels) <= 0 or list(o.levels) != sorted(o.levels):
            raise ValueError(f"levels: positive short sides from coarse to fine, e.g. [512, 1024]; got {o.levels}")
    for key in ("level_iterations", "level_style_weights", "level_tv_weights"):
        value = getattr(o, key)
        if value is None:
            continue
        if o.levels is None:
            raise ValueError(f"{key} needs levels")
        if len(value) != len(o.levels) or min(value) < 0:
            raise ValueError(f"{key}: give {len(o.levels)} non-negative values (one per level)")


def _check_layers(o: Any) -> None:
    for layers, weights in (("content_layers", "content_layer_weights"), ("style_layers", "style_layer_weights")):
        given, w = getattr(o, layers), getattr(o, weights)
        if given is not None and not given:
            raise ValueError(f"{layers}: give at least one layer")
        if w is not None and given is not None and len(w) != len(given):
            raise ValueError(f"{weights}: {len(w)} weights for {len(given)} {layers}")
    if o.fine_style is not None and o.style_layers is not None:
        missing = [layer for layer in o.fine_layers if layer not in o.style_layers]
        if missing:
            raise ValueError(f"fine_layers {', '.join(missing)} are not among style_layers")


def check_options(o: Any) -> None:
    """Raise ValueError (one line) for options that contradict each other."""
    n = len(o.style)
    _check_styles(o, n)
    _check_regions(o, n)
    _check_levels(o)
    _check_layers(o)
    if (o.init == "image") != (o.init_image is not None):
        raise ValueError("init: image and init_image go together")
    if o.save_iter and not o.preview_dir:
        raise ValueError("save_iter needs preview_dir (where the preview frames go)")


def check_region_map(o: Any, region_map: Any) -> None:
    """Every colour of `region_styles` must occur in the map: a colour that matches no pixel gave
    its style no region, silently (the loss did not move). Said with the map's own main colours."""
    import numpy as np

    from stylefarm.errors import InputError
    from stylefarm.plugins._controls import region_masks

    colours = list(o.region_styles or {})
    found = region_masks(region_map, colours, o.region_tolerance)
    absent = [c for c, mask in zip(colours, found) if not mask.any()]
    if absent:
        levels = np.round(region_map[..., :3].reshape(-1, 3) * 255).astype(np.uint8)
        seen, counts = np.unique(levels, axis=0, return_counts=True)
        ranked = sorted(zip(seen.tolist(), counts.tolist()), key=lambda x: (-x[1], x[0]))[:4]
        main = ", ".join(f"#{r:02x}{g:02x}{b:02x} ({100 * k / counts.sum():.0f}%)" for (r, g, b), k in ranked)
        raise InputError(f"region_map {o.region_map}: no pixel within region_tolerance {o.region_tolerance} of "
                         f"{', '.join(absent)} (region_styles); its main colours: {main}")
