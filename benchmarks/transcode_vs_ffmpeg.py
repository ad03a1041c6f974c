"""I/O-bound jobs: a 720p identity and a resize transcode through `stylefarm run` vs ffmpeg alone.

    python benchmarks/transcode_vs_ffmpeg.py [--seconds 10] [--repeat 3]

Whole processes, same codec settings (libx264 veryfast crf 18, audio copied), runs interleaved
so machine noise hits both; median per case. Goal (issue "fast by default"): >= 0.8x ffmpeg.
Writes benchmarks/results/transcode_vs_ffmpeg.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STYLEFARM = Path(sys.executable).parent / "stylefarm"


def ffmpeg_exe() -> str:
    from stylefarm.video.ffmpeg import ffmpeg_exe as exe

    return exe()


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def cases(clip: Path, work: Path) -> dict[str, tuple[list[str], list[str]]]:
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy"]
    out = {}
    for name, steps, vf in (("identity", "[]", None), ("resize", "[{use: resize, with: {scale: 0.5}}]",
                                                         "scale=640:360:flags=area")):
        wf = work / f"{name}.yaml"
        wf.write_text(f"inputs: [{{path: {clip}}}]\nsteps: {steps}\noutput: {{dir: out_{name}, images: false, "
                      f"video: {{path: out.mp4, preset: veryfast, crf: 18}}}}\n")
        ours = [str(STYLEFARM), "run", str(wf), "--force", "--no-progress"]
        theirs = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), *(["-vf", vf] if vf else []), *x264,
                  str(work / f"ffmpeg_{name}.mp4")]
        out[name] = (ours, theirs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = work / "hd720.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(args.seconds),
                        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)],
                       check=True)
        for name, (ours, theirs) in cases(clip, work).items():
            a, b = [], []
            for _ in range(args.repeat):
                a.append(timed(ours))
                b.append(timed(theirs))
            results[name] = {"stylefarm_s": round(statistics.median(a), 2), "ffmpeg_s": round(statistics.median(b), 2),
                             "ratio": round(statistics.median(b) / statistics.median(a), 2),
                             "runs": {"stylefarm": [round(x, 2) for x in a], "ffmpeg": [round(x, 2) for x in b]}}
            print(name, results[name])
    (REPO / "benchmarks" / "results" / "transcode_vs_ffmpeg.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
