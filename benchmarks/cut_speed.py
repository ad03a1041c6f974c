"""CUT inference speed: the `cut` step through `stylefarm run` vs a bare generator loop.

    .venv/bin/python benchmarks/cut_speed.py --sizes 256 --images 6   # as in docs/translate.md
    .venv/bin/python benchmarks/cut_speed.py --sizes 512 --images 2
    .venv/bin/python benchmarks/cut_speed.py --quick     # 1 image x 1 repeat

RANDOM WEIGHTS (seeded, official `resnet_9blocks` config and key names, saved as a
latest_net_G.pth): speed does not depend on the weight values. Inputs are the shipped demo
photos centre-cropped to size x size 8-bit PNGs. The pipeline side is one `run_workflow` call
(plugin discovery, weights load, PNG reads, translate, PNG writes, manifest); the bare side
loads the same file and runs the generator on the already decoded images. The order of the
sides rotates each repeat (the shared cores drift); each side runs once unmeasured first.
Writes benchmarks/results/cut_speed.json (other --sizes: cut_speed_<sizes>.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stylefarm.images import encode_image, read_image  # noqa: E402
from stylefarm.plugins.cut.model import ResnetGenerator  # noqa: E402
from stylefarm.plugins.cut.ops import center_crop, pil_resize, to_images, to_input  # noqa: E402
from stylefarm.plugins.cut.step import _randomize  # noqa: E402

MEDIA = REPO / "workflows" / "media"
OUT = REPO / "benchmarks" / "results" / "cut_speed.json"  # --sizes other than the default: cut_speed_<sizes>.json


def make_inputs(folder: Path, size: int, count: int) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted(MEDIA.glob("*.jpg"))
    images = []
    for i in range(count):
        image = read_image(photos[i % len(photos)])[0]
        short = min(image.shape[:2])
        image = pil_resize(center_crop(image, short), size, size, eight_bit=True)
        (folder / f"c{i}.png").write_bytes(encode_image(".png", image, None, 8))
        images.append(read_image(folder / f"c{i}.png")[0])
    return images


def pipeline_runner(work: Path, size: int, weights: Path):
    from stylefarm.api import run_workflow

    wf = work / f"cut_{size}.yaml"
    wf.write_text(f"version: 1\ninputs:\n  - glob: in{size}/*.png\nsteps:\n  - use: cut\n"
                  f"    with: {{weights: {{G: {weights}}}}}\n"
                  f"output:\n  dir: out{size}\n  pattern: \"{{input.stem}}.png\"\n"
                  "execution: {backend: local, device: cpu, batch_size: 1}\n")
    return lambda: run_workflow(wf, force=True)


def bare_runner(images: list[np.ndarray], weights: Path):
    def run():
        net = ResnetGenerator().eval()
        net.load_state_dict(torch.load(weights, weights_only=True))
        with torch.inference_mode():
            return [to_images(net(to_input([im])))[0] for im in images]

    return run


def bench_size(work: Path, size: int, count: int, repeats: int, weights: Path) -> dict:
    images = make_inputs(work / f"in{size}", size, count)
    runners = {"pipeline": pipeline_runner(work, size, weights), "bare": bare_runner(images, weights)}
    names, times, outputs = list(runners), {"pipeline": [], "bare": []}, {}
    for run in runners.values():  # warm-up: imports, plugin discovery, first-conv set-up are not measured
        run()
    for rep in range(repeats):
        for name in names[rep % 2:] + names[:rep % 2]:
            start = time.perf_counter()
            result = runners[name]()
            times[name].append((time.perf_counter() - start) / count)
            outputs.setdefault(name, result)
    diff = max(float(np.abs(read_image(work / f"out{size}" / f"c{i}.png")[0] - outputs["bare"][i]).max())
               for i in range(count))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"size": size, "images": count, "repeats": repeats, "seconds_per_image": med, "samples": times,
            "max_abs_diff_pipeline_vs_bare": diff, "ratio_bare_over_pipeline": med["bare"] / med["pipeline"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=2, help="images per run (the run's fixed costs are shared)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    count, repeats = (1, 1) if args.quick else (args.images, 2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        net = ResnetGenerator()
        _randomize(net)
        weights = work / "latest_net_G.pth"
        torch.save(net.state_dict(), weights)
        for size in args.sizes:
            rows.append(bench_size(work, size, count, repeats, weights))
            r = rows[-1]
            print(f"{size}px: pipeline {r['seconds_per_image']['pipeline']:.3f} s/img, bare "
                  f"{r['seconds_per_image']['bare']:.3f} s/img, bare/pipeline {r['ratio_bare_over_pipeline']:.3f}, "
                  f"max diff {r['max_abs_diff_pipeline_vs_bare']:.4f}", flush=True)
    out = OUT if args.sizes == [256, 512] else OUT.with_name(f"cut_speed_{'_'.join(map(str, args.sizes))}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "cut_speed", "weights": "RANDOM (seeded), resnet_9blocks ngf 64",
                               "torch": torch.__version__, "threads": args.threads, "machine": platform.node(),
                               "date": time.strftime("%Y-%m-%d %H:%M"), "goal": "bare/pipeline >= 0.95",
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
