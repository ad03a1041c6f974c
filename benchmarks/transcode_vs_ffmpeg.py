"""I/O-bound jobs: a 720p identity and a resize transcode through `stylefarm run` vs ffmpeg alone.

    python benchmarks/transcode_vs_ffmpeg.py [--seconds 10 60] [--repeat 3]

Whole processes, same codec settings (libx264 veryfast crf 18, yuv420p, audio copied), runs
interleaved so machine noise hits both, one untimed warm-up each; per case the median wall clock,
the ratio of the fastest runs (least disturbed by other jobs) and the median CPU seconds (all
processes of the job: ffmpeg alone, or stylefarm with its ffmpegs; the steadier figure on a busy
machine, where a job of three processes also gets a bigger share of the cores than one of one).
`stylefarm` runs with Python bytecode caching on, as an installed package has it (this sandbox
sets PYTHONDONTWRITEBYTECODE=1, which adds ~0.25 s of compiling to every start); the fixed cost
of a start is measured on a 2-frame clip. Goal (issue "fast by default"): >= 0.8x ffmpeg.
Writes benchmarks/results/transcode_vs_ffmpeg.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STYLEFARM = Path(sys.executable).parent / "stylefarm"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy"]
CASES = {"identity": ("[]", None), "resize": ("[{use: resize, with: {scale: 0.5}}]", "scale=640:360:flags=area")}


def ffmpeg_exe() -> str:
    from stylefarm.video.ffmpeg import ffmpeg_exe as exe

    return exe()


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def make_clip(path: Path, seconds: float) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
                   check=True)


def commands(clip: Path, work: Path, name: str) -> tuple[list[str], list[str], Path]:
    steps, vf = CASES[name]
    wf = work / f"{clip.stem}_{name}.yaml"
    wf.write_text(f"inputs: [{{path: {clip}}}]\nsteps: {steps}\noutput: {{dir: out_{clip.stem}_{name}, images: false, "
                  f"video: {{path: out.mp4, preset: veryfast, crf: 18}}}}\n")
    ours = [str(STYLEFARM), "run", str(wf), "--force", "--no-progress"]
    theirs = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), *(["-vf", vf] if vf else []), *X264,
              str(work / f"ffmpeg_{clip.stem}_{name}.mp4")]
    return ours, theirs, wf


def layout(wf: Path) -> str:
    """Which frames the plan chose (yuv420p: no colour conversion anywhere)."""
    from stylefarm.api import load_workflow

    return load_workflow(wf).sources[0].layout


def compare(ours: list[str], theirs: list[str], repeat: int, env: dict[str, str]) -> dict:
    timed(ours, env), timed(theirs, env)  # warm-up: bytecode, page cache
    a, b = [], []
    for _ in range(repeat):
        a.append(timed(ours, env))
        b.append(timed(theirs, env))
    wall_a, wall_b = statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)
    cpu_a, cpu_b = statistics.median(x[1] for x in a), statistics.median(x[1] for x in b)
    best_a, best_b = min(x[0] for x in a), min(x[0] for x in b)  # least disturbed by other jobs on the machine
    return {"stylefarm_s": round(wall_a, 2), "ffmpeg_s": round(wall_b, 2), "ratio": round(wall_b / wall_a, 2),
            "best_ratio": round(best_b / best_a, 2),
            "stylefarm_cpu_s": round(cpu_a, 2), "ffmpeg_cpu_s": round(cpu_b, 2), "cpu_ratio": round(cpu_b / cpu_a, 2),
            "runs": {"stylefarm": [round(x[0], 2) for x in a], "ffmpeg": [round(x[0], 2) for x in b]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 60], help="clip lengths")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "load_before": os.getloadavg(),
                     "codec": "libx264 veryfast crf 18 yuv420p, audio copy", "clip": "testsrc2 1280x720 24 fps + aac"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        tiny = work / "tiny.mp4"
        make_clip(tiny, 2 / 24)
        ours, _, _ = commands(tiny, work, "identity")
        timed(ours, env)
        results["startup_s"] = round(statistics.median(timed(ours, env)[0] for _ in range(args.repeat)), 2)
        for seconds in args.seconds:
            clip = work / f"hd720_{seconds:g}s.mp4"
            make_clip(clip, seconds)
            for name in CASES:
                ours, theirs, wf = commands(clip, work, name)
                case = {"layout": layout(wf), **compare(ours, theirs, args.repeat, env)}
                results[f"{name}_{seconds:g}s"] = case
                print(name, f"{seconds:g}s", case, flush=True)
    results["load_after"] = os.getloadavg()
    (REPO / "benchmarks" / "results" / "transcode_vs_ffmpeg.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
