"""Video I/O benchmark (not a test): stylefarm decode+encode vs ffmpeg alone; peak RSS vs length.

    .venv/bin/python benchmarks/video_io.py [--seconds 10] [--long 100]

Writes benchmarks/results/video_io.json. Both transcodes use libx264 veryfast crf 18 + audio copy,
so the difference is the cost of the rawvideo pipes, the start-up and the bookkeeping (an identity
workflow keeps the decoder's yuv420p frames, see `stylefarm.video.yuv`; transcode_vs_ffmpeg.py
is the fuller comparison). The RSS comparison shows that the read-ahead and write-behind queues
stay bounded on a long clip.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stylefarm.video.ffmpeg import ffmpeg_exe  # noqa: E402

RUN_ONE = """
import resource, sys, time
from stylefarm.api import run_workflow
start = time.perf_counter()
report = run_workflow(sys.argv[1], force=True)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, report["counts"]["done"])
"""


def make_source(path: Path, seconds: int, size: str) -> None:
    """testsrc2 + sine, the kind of clip ENV-NOTES measured."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
                   check=True)


def run_stylefarm(clip: Path, work: Path) -> dict:
    """Identity workflow (no steps) in a fresh process: wall time and that process's peak RSS."""
    wf = work / f"{clip.stem}.yaml"
    wf.write_text(f"inputs: [{{path: {clip}}}]\noutput: {{dir: out_{clip.stem}, images: false, "
                  f"video: {{path: out.mp4, preset: veryfast, crf: 18}}}}\n")
    out = subprocess.run([sys.executable, "-c", RUN_ONE, str(wf)], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout.split()
    seconds, rss_kib, frames = float(out[-3]), int(out[-2]), int(out[-1])
    return {"seconds": round(seconds, 2), "fps": round(frames / seconds, 1), "frames": frames,
            "peak_rss_mib": round(rss_kib / 1024, 1)}


def run_ffmpeg(clip: Path, work: Path) -> dict:
    start = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy", str(work / "ffmpeg_only.mp4")], check=True)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--long", type=int, default=100)
    parser.add_argument("--rss-size", default="640x360", help="frame size of the RSS comparison clips")
    args = parser.parse_args()
    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        hd = work / "hd720.mp4"
        make_source(hd, args.seconds, "1280x720")
        ours, theirs = run_stylefarm(hd, work), run_ffmpeg(hd, work)
        theirs["fps"] = round(ours["frames"] / theirs["seconds"], 1)
        results["throughput_1280x720"] = {"stylefarm_identity": ours, "ffmpeg_alone": theirs,
                                          "ratio": round(ours["fps"] / theirs["fps"], 2)}
        rss = {}
        for secs in (args.seconds, args.long):
            clip = work / f"rss{secs}.mp4"
            make_source(clip, secs, args.rss_size)
            rss[f"{secs}s"] = run_stylefarm(clip, work)
        short, long = rss[f"{args.seconds}s"], rss[f"{args.long}s"]
        rss["ratio_long_over_short"] = round(long["peak_rss_mib"] / short["peak_rss_mib"], 3)
        results[f"peak_rss_{args.rss_size}"] = rss
    out = REPO / "benchmarks" / "results" / "video_io.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
