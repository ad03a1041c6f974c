"""AdaIN speed on video frames: `stylefarm run` of the `adain` step (default options) vs the
official pytorch-AdaIN `test.py` logic, and vs a bare loop of our networks, timed in one run.

    .venv/bin/python benchmarks/adain_speed.py                 # 512 and 1024 px, ~6 min on 2 busy cores
    .venv/bin/python benchmarks/adain_speed.py --quick         # fewer frames, one repeat
    .venv/bin/python benchmarks/adain_speed.py --official scratch/official_adain  # net.py, function.py, test.py

RANDOM WEIGHTS: all sides load the same seeded random state_dict (official key names), so no
download is needed; speed does not depend on the weight values.

- `official`: the unmodified `net.py` + `function.py` of naoto0804/pytorch-AdaIN from a scratch
  checkout (never committed) and test.py's own `style_transfer`, called per frame as test.py /
  test_video.py do (the style image is encoded again for every frame). Frames are handed to it
  already decoded, as float tensors: its decode/encode are NOT charged (conservative for us).
- `pipeline`: one `run_workflow` over the clip with the step's default options (content_size 0 so
  the frame keeps its size on both sides; style_size 512 as the official default): ffmpeg decode,
  setup (weights, style statistics once), batches of 4 frames, 8-bit PNG frames written. All charged.
- `bare`: our encoder/decoder in a plain loop, same layout as the step (channels-last), the style
  statistics computed once, batches of 4 frames in the step's passes (`Placement.passes`), the
  malloc settings the executor uses for frames of one size; no I/O. pipeline/bare = what the host costs.
- `official_our_malloc` (`--official-our-malloc`): the official side on those malloc settings too,
  so official_our_malloc/bare compares the networks alone.

Clip: a pan across a demo photo, size x size, H.264 crf 16. Per-frame time = one whole run / frames.
Each timed run is a fresh process of its own (as test.py and `stylefarm run` are), timed inside
it from the call to its return; its imports are not charged, and the whole process's wall time is
recorded beside. `--same-process` times every side in this process instead (the earlier figures):
there the official network also runs on stylefarm's malloc settings (`stylefarm/allocator.py`,
one arena and freed blocks kept from the pipeline's run), which test.py never has.
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

from stylefarm.images import read_image  # noqa: E402
from stylefarm.plugins._precision import Placement, inference  # noqa: E402
from stylefarm.plugins._vgg import VGG_PIXELS_PER_PASS, randomize_convs  # noqa: E402
from stylefarm.plugins.adain import model  # noqa: E402
from stylefarm.plugins.adain.ops import adain_from_stats, calc_mean_std, official_resize, to_tensor  # noqa: E402

MEDIA = REPO / "workflows" / "media"
STYLE = MEDIA / "style" / "hubble_deep_field.jpg"
STYLE_SIZE = 512
BATCH = 4
OUT = REPO / "benchmarks" / "results" / "adain_speed.json"


def random_weights(path: Path) -> None:
    """Seeded random encoder/decoder saved as one {vgg, decoder} file (official keys)."""
    torch.manual_seed(0)
    enc, dec = model.encoder(), model.Decoder()
    randomize_convs([enc, dec])
    torch.save({"vgg": enc.layers.state_dict(), "decoder": dec.state_dict()}, path)


def make_clip(path: Path, size: int, frames: int) -> list[np.ndarray]:
    """A size x size pan across a demo photo as H.264; returns the decoded frames (what both sides get)."""
    import imageio_ffmpeg

    photo = official_resize(read_image(MEDIA / "astronaut.jpg")[0], size + 4 * frames, crop=True)
    writer = imageio_ffmpeg.write_frames(str(path), (size, size), fps=24, codec="libx264",
                                         output_params=["-crf", "16", "-preset", "veryfast"], macro_block_size=8)
    writer.send(None)
    for i in range(frames):
        writer.send(np.ascontiguousarray((photo[2 * i:2 * i + size, 4 * i:4 * i + size] * 255).round()
                                         .astype(np.uint8)))
    writer.close()
    return decode(path)


def decode(path: Path) -> list[np.ndarray]:
    """The clip's frames as float RGB (what the bare and official sides are handed)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(height, width, 3).astype(np.float32) / 255 for f in reader]


def pipeline_runner(work: Path, size: int, weights: Path, cache: Path, extra: str = "",
                    out: str = "") -> Callable[[], dict]:
    """One `run_workflow` call over the clip: setup, decode, stylize, 8-bit PNG frames out.

    `cache` is the compile cache this run sees (STYLEFARM_COMPILE_DIR): an empty one = a cold
    machine, where `compile: auto` stays eager for a short clip; a filled one = after `stylefarm warmup`."""
    from stylefarm.api import run_workflow

    workflow = work / f"adain_{size}{out}.yaml"
    workflow.write_text(
        "version: 1\n"
        f"inputs:\n  - path: clip{size}.mp4\n"
        "steps:\n  - use: adain\n"
        f"    with: {{style: {STYLE}, weights: {weights}, content_size: 0, style_size: {STYLE_SIZE}{extra}}}\n"
        f"output:\n  dir: out{size}{out}\n  pattern: \"{{frame:04d}}.png\"\n"
        f"execution: {{backend: local, device: cpu, batch_size: {BATCH}}}\n")

    def run() -> None:
        os.environ["STYLEFARM_COMPILE_DIR"] = str(cache)
        try:
            return run_workflow(workflow, force=True)
        finally:
            del os.environ["STYLEFARM_COMPILE_DIR"]

    return run


def bare_runner(frames: list[np.ndarray], weights: Path) -> Callable[[], list[torch.Tensor]]:
    """Our networks in a plain loop, as the step lays them out: stats once, batches of frames."""
    style = official_resize(read_image(STYLE)[0], STYLE_SIZE, crop=False)

    def run() -> list[torch.Tensor]:
        state = torch.load(weights, weights_only=True)
        enc, dec = model.encoder(), model.Decoder()
        enc.layers.load_state_dict(state["vgg"])
        dec.load_state_dict(state["decoder"])
        place = Placement("cpu")
        place.modules(enc, dec)
        outs = []
        with inference(place):
            mean, std = calc_mean_std(enc(place.images_in([style]))[0])
            for start in range(0, len(frames), BATCH):
                batch = frames[start:start + BATCH]
                for idx in place.passes([f.shape for f in batch], VGG_PIXELS_PER_PASS):  # the step's passes
                    x = place.images_in([batch[i] for i in idx])
                    outs += list(dec(adain_from_stats(enc(x)[0], mean, std)))
        return [o[None] for o in outs]

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


def official_runner(folder: str, frames: list[np.ndarray], weights: Path) -> Callable[[], list[torch.Tensor]]:
    """test.py's logic: `net.vgg[:31]` + `net.decoder`, `style_transfer` per frame (style encoded each time)."""
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
            return [style_transfer(vgg, decoder, to_tensor(f), style) for f in frames]

    return run


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus reaped children (the ffmpeg decoder / encoder)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, result): CPU time is steadier on a shared, oversubscribed machine.
    A side run in a process of its own reports the figures taken inside it."""
    start, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    if isinstance(result, ChildRun):
        return result.wall, result.cpu, result.result
    return time.perf_counter() - start, cpu_seconds() - cpu, result


class ChildRun:
    """One side timed in a fresh process: the figures taken inside it and its outputs."""

    def __init__(self, wall: float, cpu: float, result: object):
        self.wall, self.cpu, self.result = wall, cpu, result


def child_runner(side: str, work: Path, size: int, count: int, official: str | None,
                 process_walls: list[float]) -> Callable[[], ChildRun]:
    """Runs `side` once in a new interpreter (`--child`); the official side there keeps glibc's
    malloc defaults (STYLEFARM_MALLOC=system), as test.py run on its own does."""
    import subprocess

    env = dict(os.environ)
    if side == "official":
        env["STYLEFARM_MALLOC"] = "system"
    dump = work / f"child_{side}_{size}.pt"

    def run() -> ChildRun:
        argv = [sys.executable, __file__, "--child", side, "--work", str(work), "--sizes", str(size),
                "--frames", str(count), "--official", official or "", "--out", str(dump)]
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        process_walls.append(time.perf_counter() - start)
        if done.returncode:
            raise SystemExit(f"{side} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        return ChildRun(figures["wall"], figures["cpu"], torch.load(dump, weights_only=False))

    return run


def side_runner(side: str, work: Path, size: int, count: int, official: str | None) -> Callable[[], object]:
    """The runner for one side, built the same way in this process or in a child."""
    weights = work / "weights.pt"
    if side in ("pipeline", "pipeline_warm"):
        cache = work / ("warm_cache" if side == "pipeline_warm" else "cold_cache")
        return pipeline_runner(work, size, weights, cache, out="_warm" if side == "pipeline_warm" else "")
    frames = decode(work / f"clip{size}.mp4")[:count]
    if side == "bare":
        return bare_runner(frames, weights)
    return official_runner(official, frames, weights)  # "official", "official_our_malloc"


def child_main(args: argparse.Namespace) -> None:
    """`--child SIDE`: one timed run of that side; prints its figures, saves its outputs."""
    from stylefarm import allocator

    if args.child == "official" and allocator._libc:
        raise SystemExit("the official side must run on glibc's malloc defaults (STYLEFARM_MALLOC=system)")
    if args.child in ("bare", "official_our_malloc"):
        allocator.steady(True)  # what the executor does for frames of one size
    run = side_runner(args.child, Path(args.work), args.sizes[0], args.frames, args.official or None)
    wall, cpu, result = timed(run)
    torch.save(result, args.out)
    print(json.dumps({"wall": wall, "cpu": cpu}))


def measure(runners: dict[str, Callable], count: int, repeats: int) -> tuple[dict, dict, dict]:
    """Per-frame wall and CPU seconds and each side's first outputs; the order of the sides
    rotates each repeat (busy shared cores drift)."""
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, object] = {}
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            seconds, cpu_s, result = timed(runners[name])
            times[name].append(seconds / count)
            cpu[name].append(cpu_s / count)
            outputs.setdefault(name, result)
    return times, cpu, outputs


def same_picture(outputs: dict, folder: Path, count: int) -> dict[str, float]:
    """Max abs difference of the sides' outputs (clamped to [0, 1]; the pipeline's are 8-bit PNGs)."""
    def as_images(tensors) -> list[np.ndarray]:
        return [t[0].float().clamp(0, 1).permute(1, 2, 0).numpy() for t in tensors]

    bare = as_images(outputs["bare"])
    written = sorted(folder.glob("*.png"))
    assert len(written) == count, f"pipeline wrote {len(written)} frames, expected {count}"
    diffs = {"pipeline_vs_bare": max(float(np.abs(read_image(p)[0] - b).max()) for p, b in zip(written, bare))}
    if "official" in outputs:
        diffs["official_vs_bare"] = max(float(np.abs(o - b).max())
                                        for o, b in zip(as_images(outputs["official"]), bare))
    return diffs


def compile_decisions(report: dict) -> dict:
    """What `compile: auto` did per network and frame size in that run (from the run report)."""
    info = next(iter(report.get("steps", {}).values()), {}).get("compile") or {}
    return {part: {size: row.get("decision") for size, row in (data or {}).get("sizes", {}).items()}
            for part, data in info.items()}


def warm_cache(work: Path, size: int, weights: Path, cache: Path) -> float:
    """`compile: true` once (what `stylefarm warmup` does): fills `cache`; returns the cold compile seconds."""
    start = time.perf_counter()
    pipeline_runner(work, size, weights, cache, ", compile: true", "_warmup")()
    return time.perf_counter() - start


def bench_size(work: Path, size: int, count: int, repeats: int, weights: Path, official: str | None,
               warm: bool, isolate: bool = True, our_malloc: bool = False) -> dict:
    make_clip(work / f"clip{size}.mp4", size, count)
    sides = ["pipeline", "bare"]
    compile_s = None
    if warm:
        compile_s = warm_cache(work, size, weights, work / "warm_cache")
        sides.append("pipeline_warm")
    if official:
        sides += ["official", "official_our_malloc"] if our_malloc else ["official"]
    process_walls: dict[str, list[float]] = {side: [] for side in sides}
    runners = {side: child_runner(side, work, size, count, official, process_walls[side]) if isolate
               else side_runner(side, work, size, count, official) for side in sides}
    times, cpu, outputs = measure(runners, count, repeats)
    diffs = same_picture(outputs, work / f"out{size}", count)
    med = {name: statistics.median(t) for name, t in times.items()}
    med_cpu = {name: statistics.median(t) for name, t in cpu.items()}
    row = {"size": size, "frames": count, "repeats": repeats, "seconds_per_frame": med,
           "cpu_seconds_per_frame": med_cpu, "samples": times, "cpu_samples": cpu, "max_abs_diff": diffs,
           "ratio_bare_over_pipeline": med["bare"] / med["pipeline"], "warm_cache_compile_s": compile_s,
           "isolated": isolate, "process_wall_s": process_walls if isolate else None,
           "compile_decisions": {side: compile_decisions(outputs[side]) for side in ("pipeline", "pipeline_warm")
                                 if side in outputs}}
    if official:
        for side in [s for s in ("pipeline", "pipeline_warm") if s in med]:
            suffix = "" if side == "pipeline" else "_warm_cache"
            row[f"speedup_vs_official{suffix}"] = med["official"] / med[side]
            row[f"speedup_vs_official{suffix}_cpu_time"] = med_cpu["official"] / med_cpu[side]
            row[f"speedup_vs_official{suffix}_per_repeat"] = [o / p for o, p in zip(times["official"], times[side])]
        if "official_our_malloc" in med:
            row["speedup_vs_official_our_malloc"] = med["official_our_malloc"] / med["pipeline"]
    return row


def print_table(rows: list[dict]) -> None:
    print("\nAdaIN per-frame seconds on video frames (CPU, RANDOM WEIGHTS; median wall / CPU seconds)")
    print(f"{'size':>5} {'n':>3} {'side':>14} {'wall s':>8} {'cpu s':>8} {'official/side':>14} {'(cpu time)':>11}")
    for r in rows:
        wall, cpu = r["seconds_per_frame"], r["cpu_seconds_per_frame"]
        for side in wall:
            speed = (f"{wall['official'] / wall[side]:14.2f} {cpu['official'] / cpu[side]:11.2f}"
                     if "official" in wall else f"{'-':>14} {'-':>11}")
            print(f"{r['size']:>5} {r['frames']:>3} {side:>14} {wall[side]:8.3f} {cpu[side]:8.3f} {speed}")
        if r["warm_cache_compile_s"]:
            print(f"{'':>9} cold compile that filled the warm cache: {r['warm_cache_compile_s']:.1f} s")
    print("goal: official/pipeline >= 1.5 at 512 and 1024 px (issue 20), default options")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames, one repeat")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--frames", type=int, default=0, help="frames per clip (default: 8 at <=512 px, else 4)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--official", default=str(REPO / "scratch" / "official_adain"),
                        help="folder with the official net.py + function.py + test.py ('' to skip)")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm compile-cache side")
    parser.add_argument("--official-our-malloc", action="store_true",
                        help="also time the official side on stylefarm's malloc settings (one arena, freed blocks "
                             "kept), in a process of its own: the networks alone compared")
    parser.add_argument("--same-process", action="store_true",
                        help="time every side in this process (the official side then runs on stylefarm's malloc)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one timed run of a side
    parser.add_argument("--work", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        return child_main(args)
    # one thread count for every side: the pipeline otherwise picks its own from the load average
    # (executors/base.py default_threads) and torch's setting is process-wide
    os.environ.setdefault("STYLEFARM_THREADS", str(torch.get_num_threads()))
    official = args.official if args.official and (Path(args.official) / "net.py").is_file() else None
    if args.official and not official:
        print(f"official code not found in {args.official}: timing pipeline vs bare only", file=sys.stderr)
    print("!!! RANDOM WEIGHTS: seeded random networks, speed only - outputs are not stylizations !!!")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        random_weights(work / "weights.pt")
        # warm-up: bytecode, page cache (in this process also imports and plugin discovery)
        bench_size(work, 64, 2, 1, work / "weights.pt", official, False, not args.same_process)
        for size in args.sizes:
            count = args.frames or (2 if args.quick else 8 if size <= 512 else 4)
            rows.append(bench_size(work, size, count, 1 if args.quick else args.repeats, work / "weights.pt",
                                   official, not (args.quick or args.no_warm), not args.same_process,
                                   args.official_our_malloc))
            print(f"done {size} px", flush=True)
    print_table(rows)
    report = {"benchmark": "adain_speed", "input": "H.264 clip, size x size frames (pan across a demo photo)",
              "weights": "random (seeded, same for all sides)", "device": "cpu",
              "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
              "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "official_code": official, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
