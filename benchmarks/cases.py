"""Benchmark cases. Each returns metrics whose ratios are meaningful on a noisy shared machine."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .harness import Case, timed

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO / "workflows" / "media"
SIZES = {"tiny": (2, 64), "small": (8, 256), "large": (16, 512)}


def _model_step() -> tuple[str, dict]:
    """The CPU-bound model step to measure: env BENCH_STEP, else cin26 if installed, else a util step."""
    from stylefarm.host import get_host

    name = os.environ.get("BENCH_STEP") or ("cin26" if "cin26" in get_host().steps else "color_transfer")
    options = {"reference": str(MEDIA / "style" / "hubble_deep_field.jpg")} if name == "color_transfer" else {}
    return name, options


def _write_inputs(folder: Path, count: int, px: int) -> list[Path]:
    from stylefarm.images import atomic_write_bytes, encode_image, read_image, resize

    sources = sorted(MEDIA.glob("*.jpg"))
    paths = []
    for i in range(count):
        rgb, _, _ = read_image(sources[i % len(sources)])
        path = folder / f"in_{i:03d}.png"
        atomic_write_bytes(path, encode_image(".png", resize(rgb, px, px), None, 8))
        paths.append(path)
    return paths


def _bare_loop(step_name: str, options: dict, inputs: list[Path], out: Path, batch: int) -> None:
    """What a user would write by hand: read, run the model, write. Same step, batch and device."""
    from stylefarm.executors.base import resolve_device
    from stylefarm.host import get_host
    from stylefarm.images import atomic_write_bytes, encode_image, read_image
    from stylefarm.item import Item

    cls = get_host().step_class(step_name)
    step = cls(cls.Options(**options))
    step.setup(resolve_device("auto") if cls.uses_device else "cpu")
    out.mkdir(exist_ok=True)
    for start in range(0, len(inputs), batch):
        items = [Item(source=str(p), index=0, image=read_image(p)[0]) for p in inputs[start : start + batch]]
        for item in step.process(items):
            atomic_write_bytes(out / (Path(item.source).stem + ".png"), encode_image(".png", item.image, None, 8))


def p1_pipeline_overhead(size: str) -> dict[str, float]:
    from stylefarm.api import run_workflow

    count, px = SIZES[size]
    name, options = _model_step()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        inputs = _write_inputs(tmp / "in", count, px)
        bare = timed(lambda: _bare_loop(name, options, inputs, tmp / "bare", 4))
        wf = tmp / "wf.yaml"
        opts = ", ".join(f"{k}: {v!r}" for k, v in options.items())
        wf.write_text(f"version: 1\ninputs:\n  - dir: in\nsteps:\n  - use: {name}\n    with: {{{opts}}}\n"
                      f"output:\n  dir: out\nexecution:\n  batch_size: 4\n")
        pipe = timed(lambda: run_workflow(wf, force=True))
    return {"bare_s": bare, "pipeline_s": pipe, "ratio": bare / pipe}


def _peak_rss_mb(cmd: list[str], cwd: Path) -> float:
    """Peak RSS of a child process (ru_maxrss of the waited child, via a fresh wrapper process)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *cmd], cwd=cwd, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def p3_memory_streaming(size: str) -> dict[str, float]:
    """Peak RSS for 10x more frames of the same size: streaming keeps it flat (goal <= 1.1x)."""
    frames = {"tiny": 6, "small": 24, "large": 48}[size]
    exe = str(Path(sys.executable).parent / "stylefarm")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (frames, frames * 10):
            wf = Path(tmp) / f"wf{count}.yaml"
            wf.write_text(f"version: 1\ninputs:\n  - generate: noise\n    count: {count}\n    width: 640\n"
                          f"    height: 360\nsteps:\n  - use: resize\n    with: {{scale: 1.0}}\n"
                          f"output:\n  dir: out{count}\n  pattern: 'f.{{frame:05d}}.png'\n")
            peaks.append(_peak_rss_mb([exe, "--log-level", "error", "run", wf.name, "--force"], Path(tmp)))
    return {"rss_short_mb": peaks[0], "rss_long_mb": peaks[1], "growth": peaks[1] / peaks[0],
            "inverse_growth": peaks[0] / peaks[1]}


def _clip(folder: Path, frames: int, size: str) -> Path:
    from .video_io import make_source

    clip = folder / f"clip_{frames}.mp4"
    make_source(clip, frames // 24, size)
    return clip


def p2_video(size: str) -> dict[str, float]:
    """decode + model + encode through the pipeline vs the model alone on the same decoded frames."""
    from stylefarm.api import load_workflow, run_plan
    from stylefarm.executors.base import StepCall

    from .distributed_steps import ConvOptions, ConvStack

    frames, res = {"tiny": (24, "160x96"), "small": (48, "320x180"), "large": (96, "640x360")}[size]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = _clip(tmp, frames, res)
        wf = tmp / "wf.yaml"
        wf.write_text(f"version: 1\ninputs: [{{path: {clip.name}}}]\noutput: {{dir: out, images: false, "
                      f"video: {{path: out.mp4, preset: veryfast}}}}\nexecution: {{batch_size: 4}}\n")
        plan = load_workflow(wf)
        plan.chain = [StepCall("bench_conv", ConvStack, ConvOptions())]
        plan.sources[0].layout = "rgb"  # the plan offered yuv420p to the step-less chain it was built with
        from stylefarm.item import as_float

        items = [it.with_image(as_float(it.load().image)) for it in plan.sources[0].items()]  # as a step sees them
        step = ConvStack(ConvOptions())
        step.setup("cpu")
        model = timed(lambda: [step.process(items[i : i + 4]) for i in range(0, len(items), 4)])
        pipe = timed(lambda: run_plan(plan, force=True))
    return {"model_s": model, "pipeline_s": pipe, "ratio": model / pipe}


def p4_scale_out(size: str) -> dict[str, float]:
    """Ray and Dask throughput with 2 actors vs 1 (one torch thread each) on a CPU-bound step.

    The goal metric is steady throughput (first to last result): actor start-up is a fixed
    cost per run, reported as the wall-clock speedup beside it. Per-item work must dwarf the
    driver's share of the same 2 cores, hence the larger frames at `large`."""
    from .distributed_overhead import measure

    n, px = {"tiny": (8, 32), "small": (24, 192), "large": (48, 320)}[size]
    out = {}
    for backend in ("ray", "dask"):
        one, two = (measure(backend, actors, n, px, "cpu") for actors in (1, 2))
        out[f"{backend}_speedup"] = two["items_per_s_steady"] / one["items_per_s_steady"]
        out[f"{backend}_speedup_wall"] = two["items_per_s_wall"] / one["items_per_s_wall"]
    out["speedup"] = min(out["ray_speedup"], out["dask_speedup"])
    return out


CASES = [
    Case("P1", "pipeline overhead vs bare loop", p1_pipeline_overhead, ("ratio", 0.95)),
    Case("P2", "video decode+model+encode vs model", p2_video, ("ratio", 0.90)),
    Case("P3", "peak RSS, 10x frames (streaming)", p3_memory_streaming, ("inverse_growth", 1 / 1.1)),
    Case("P4", "scale-out 2 vs 1 actors (Ray, Dask)", p4_scale_out, ("speedup", 1.8)),
]

