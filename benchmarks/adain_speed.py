"""AdaIN speed: our `adain` step through the pipeline vs a bare loop of the same network,
and vs the official pytorch-AdaIN `style_transfer` (test.py) timed in the same run.

    .venv/bin/python benchmarks/adain_speed.py            # 512 and 1024 px, ~4-5 min on 2 busy cores
    .venv/bin/python benchmarks/adain_speed.py --quick    # one repeat, fewer images
    .venv/bin/python benchmarks/adain_speed.py --official scratch/official_adain  # net.py, function.py, test.py

RANDOM WEIGHTS: all three sides load the same seeded random state_dict (official key names),
so no download is needed; speed does not depend on the weight values. The official side
imports the unmodified `net.py` + `function.py` of naoto0804/pytorch-AdaIN from a scratch
checkout (never committed) and runs test.py's `style_transfer` as the shared fixture README
describes (test.py itself imports torchvision, which is not installed). It encodes the style
for every content image, as test.py does; our step encodes it once per run.
Inputs are the shipped demo photos, centre-cropped to size x size PNGs; content_size 0,
style_size 512. Per-image time = one whole run / images: the pipeline and the bare loop pay
weights loading and the style encode once per run (so few images make both look slower).
Default: 2 images x 2 repeats at 512, 1 x 1 at 1024; --quick: 1 x 1 everywhere.
Writes benchmarks/results/adain_speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stylefarm.images import encode_image, read_image  # noqa: E402
from stylefarm.plugins._vgg import randomize_convs  # noqa: E402
from stylefarm.plugins.adain import model  # noqa: E402
from stylefarm.plugins.adain.ops import adain_from_stats, calc_mean_std, official_resize, to_tensor  # noqa: E402

MEDIA = REPO / "workflows" / "media"
STYLE = MEDIA / "style" / "hubble_deep_field.jpg"
STYLE_SIZE = 512
OUT = REPO / "benchmarks" / "results" / "adain_speed.json"


def random_weights(path: Path) -> None:
    """Seeded random encoder/decoder saved as one {vgg, decoder} file (official keys)."""
    enc, dec = model.encoder(), model.Decoder()
    randomize_convs([enc, dec])
    torch.save({"vgg": enc.layers.state_dict(), "decoder": dec.state_dict()}, path)


def make_inputs(folder: Path, size: int, count: int) -> list[np.ndarray]:
    """`count` demo photos as size x size PNGs (what the pipeline reads) and arrays (bare loops)."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(MEDIA.glob("*.jpg"))
    images = []
    for i in range(count):
        image = official_resize(read_image(photos[i % len(photos)])[0], size, crop=True)
        (folder / f"c{i}.png").write_bytes(encode_image(".png", image, None, 8))
        images.append(read_image(folder / f"c{i}.png")[0])  # the same 8-bit values the step reads
    return images


def pipeline_runner(work: Path, size: int, weights: Path) -> Callable[[], None]:
    """One `run_workflow` call over the folder of inputs: setup, reads, stylize, writes."""
    from stylefarm.api import run_workflow

    workflow = work / f"adain_{size}.yaml"
    workflow.write_text(
        "version: 1\n"
        f"inputs:\n  - glob: in{size}/*.png\n"
        "steps:\n  - use: adain\n"
        f"    with: {{style: {STYLE}, weights: {weights}, content_size: 0, style_size: {STYLE_SIZE}}}\n"
        f"output:\n  dir: out{size}\n  pattern: \"{{input.stem}}.png\"\n"
        "execution: {backend: local, device: cpu, batch_size: 1}\n")
    return lambda: run_workflow(workflow, force=True)


def bare_runner(images: list[np.ndarray], weights: Path) -> Callable[[], list[torch.Tensor]]:
    """The same network in a plain loop: weights load + style statistics once, then each image."""
    style = official_resize(read_image(STYLE)[0], STYLE_SIZE, crop=False)

    def run() -> list[torch.Tensor]:
        state = torch.load(weights, weights_only=True)
        enc, dec = model.encoder().eval(), model.Decoder().eval()
        enc.layers.load_state_dict(state["vgg"])
        dec.load_state_dict(state["decoder"])
        with torch.inference_mode():
            mean, std = calc_mean_std(enc(to_tensor(style))[0])
            return [dec(adain_from_stats(enc(to_tensor(im))[0], mean, std)) for im in images]

    return run


def official_style_transfer(folder: Path) -> Callable:
    """test.py's own `style_transfer`, compiled from the scratch checkout's source.

    test.py parses the command line at import, so only that function's definition is
    executed, with the names it uses (`torch`, `adaptive_instance_normalization`, `device`).
    """
    import ast

    function = importlib.import_module("function")
    tree = ast.parse((folder / "test.py").read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "style_transfer"]
    scope = {"torch": torch, "device": torch.device("cpu"),
             "adaptive_instance_normalization": function.adaptive_instance_normalization}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(folder / "test.py"), "exec"), scope)
    return scope["style_transfer"]


def official_runner(folder: str, images: list[np.ndarray], weights: Path) -> Callable[[], list[torch.Tensor]]:
    """test.py's logic: `net.vgg[:31]` + `net.decoder`, `style_transfer` per content image."""
    root = Path(folder).resolve()
    sys.path.insert(0, str(root))
    net = importlib.import_module("net")
    style_transfer = official_style_transfer(root)
    vgg = torch.nn.Sequential(*list(net.vgg.children())[:31]).eval()
    decoder = net.decoder.eval()
    style = to_tensor(official_resize(read_image(STYLE)[0], STYLE_SIZE, crop=False))

    def run() -> list[torch.Tensor]:
        state = torch.load(weights, weights_only=True)  # once per run, as test.py
        vgg.load_state_dict(state["vgg"])
        decoder.load_state_dict(state["decoder"])
        with torch.no_grad():
            return [style_transfer(vgg, decoder, to_tensor(im), style) for im in images]

    return run


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(runners: dict[str, Callable], count: int, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Per-image seconds and each side's first outputs; the order of the sides rotates
    each repeat (busy shared cores drift)."""
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, object] = {}
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            seconds, result = timed(runners[name])
            times[name].append(seconds / count)
            outputs.setdefault(name, result)
    return times, outputs


def same_picture(outputs: dict, folder: Path, count: int) -> dict[str, float]:
    """Max abs difference of the sides' outputs (clamped to [0, 1]; the pipeline's are 8-bit PNGs)."""
    def as_images(tensors) -> list[np.ndarray]:
        return [t[0].clamp(0, 1).permute(1, 2, 0).numpy() for t in tensors]

    bare = as_images(outputs["bare"])
    diffs = {"pipeline_vs_bare": max(float(np.abs(read_image(folder / f"c{i}.png")[0] - bare[i]).max())
                                     for i in range(count))}
    if "official" in outputs:
        diffs["official_vs_bare"] = max(float(np.abs(o - b).max())
                                        for o, b in zip(as_images(outputs["official"]), bare))
    return diffs


def bench_size(work: Path, size: int, count: int, repeats: int, weights: Path, official: str | None) -> dict:
    images = make_inputs(work / f"in{size}", size, count)
    runners: dict[str, Callable] = {"pipeline": pipeline_runner(work, size, weights),
                                    "bare": bare_runner(images, weights)}
    if official:
        runners["official"] = official_runner(official, images, weights)
    times, outputs = measure(runners, count, repeats)
    diffs = same_picture(outputs, work / f"out{size}", count)
    med = {name: statistics.median(t) for name, t in times.items()}
    row = {"size": size, "images": count, "repeats": repeats, "seconds_per_image": med,
           "samples": times, "max_abs_diff": diffs,
           "ratio_bare_over_pipeline": med["bare"] / med["pipeline"]}
    if official:
        row["speedup_vs_official"] = med["official"] / med["pipeline"]
    return row


def print_table(rows: list[dict]) -> None:
    print("\nAdaIN per-image seconds (CPU, RANDOM WEIGHTS; median)")
    print(f"{'size':>5} {'n':>2} {'pipeline':>9} {'bare':>8} {'official':>9} {'bare/pipe':>10} {'official/pipe':>14}")
    for r in rows:
        s = r["seconds_per_image"]
        off = f"{s['official']:9.3f}" if "official" in s else f"{'-':>9}"
        speed = f"{r['speedup_vs_official']:14.2f}" if "speedup_vs_official" in r else f"{'-':>14}"
        print(f"{r['size']:>5} {r['images']:>2} {s['pipeline']:9.3f} {s['bare']:8.3f} {off} "
              f"{r['ratio_bare_over_pipeline']:10.3f} {speed}")
    print("goal: bare/pipe >= 0.95 (pipeline at least 95% of the bare loop's speed)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--official", default=str(REPO / "scratch" / "official_adain"),
                        help="folder with the official net.py + function.py ('' to skip)")
    parser.add_argument("--out", default=str(OUT))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    official = args.official if args.official and (Path(args.official) / "net.py").is_file() else None
    if args.official and not official:
        print(f"official code not found in {args.official}: timing pipeline vs bare only", file=sys.stderr)
    print("!!! RANDOM WEIGHTS: seeded random networks, speed only - outputs are not stylizations !!!")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        random_weights(work / "weights.pt")
        bench_size(work, 32, 1, 1, work / "weights.pt", official)  # warm-up: imports, plugin discovery
        for size in args.sizes:
            count = 1 if args.quick or size >= 1024 else 2
            repeats = 1 if args.quick or size >= 1024 else 2
            rows.append(bench_size(work, size, count, repeats, work / "weights.pt", official))
            print(f"done {size} px", flush=True)
    print_table(rows)
    report = {"benchmark": "adain_speed", "weights": "random (seeded, same for all sides)",
              "device": "cpu", "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "official_code": official, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
