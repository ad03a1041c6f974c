"""cin26's compiled call on a 720p frame under each malloc setting, in a worker thread as the
executors run it: seconds, system CPU and page faults per call, peak RSS; then, with the default
settings, eager vs compiled per frame for cin26 and fast_style (what `compile: auto` prices).

    .venv/bin/python -m benchmarks.allocator [--calls 20]

Each variant is a fresh process (the settings are per process and must precede threads). The
compiled package comes from the compile cache (compiled once if it is not there). Writes
benchmarks/results/allocator.json.
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
import threading
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import first_and_repeats

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "glibc": {"STYLEFARM_MALLOC": "system"},
    "huge_pages": {"STYLEFARM_MALLOC": "system", "THP_MEM_ALLOC_ENABLE": "1"},
    "one_arena": {},
    "one_arena_kept_heap": {},  # the default while frames of one size repeat
}


FRAME = (720, 1280, 3)


def in_worker_thread(work: Callable[[], dict]) -> dict:
    """`work()`'s result, run in a thread of its own as the executors run steps (malloc arenas
    are per thread, so the main thread would measure something else)."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(work()))
    thread.start()
    thread.join()
    return out


def timed_calls(call: Callable[[], object], calls: int) -> tuple[float, resource.struct_rusage, resource.struct_rusage]:
    """Median seconds per call after two warm-ups (harness.first_and_repeats adds a third), and
    this process's rusage around the `calls + 1` calls it times."""
    call()
    before = resource.getrusage(resource.RUSAGE_SELF)
    _, times = first_and_repeats(call, calls)
    return statistics.median(times), before, resource.getrusage(resource.RUSAGE_SELF)


def eager_vs_compiled(calls: int) -> dict:
    """Seconds per 720p frame, heap kept as in a run of frames, compile false vs true."""
    import numpy as np

    from stylefarm import allocator
    from stylefarm.item import Item
    from stylefarm.plugins.cin26.step import CIN26Options, CIN26Step
    from stylefarm.plugins.fast_style.step import FastStyleOptions, FastStyleStep

    frame = np.random.default_rng(0).integers(0, 256, FRAME, dtype=np.uint8)
    makers = {"cin26": lambda c: CIN26Step(CIN26Options(style=7, max_size=0, compile=c)),
              "fast_style": lambda c: FastStyleStep(FastStyleOptions(random_weights=True, compile=c))}

    def work() -> dict:
        allocator.steady(True)
        out = {}
        for name, make in makers.items():
            for compiled in (False, True):
                step = make(compiled)
                step.setup("cpu")
                seconds, _, _ = timed_calls(lambda s=step: s.process([Item("bench", 0, image=frame)]), calls)
                out[f"{name}_{'compiled' if compiled else 'eager'}_s"] = round(seconds, 4)
            out[f"{name}_ratio"] = round(out[f"{name}_eager_s"] / out[f"{name}_compiled_s"], 3)
        return out

    return in_worker_thread(work)


def child(variant: str, calls: int) -> dict:
    import numpy as np

    from stylefarm import allocator
    from stylefarm.plugins.cin26.step import CIN26Options, CIN26Step

    def work() -> dict:
        allocator.steady(variant == "one_arena_kept_heap")
        step = CIN26Step(CIN26Options(style=7, max_size=0, compile=True))
        step.setup("cpu")
        frame = np.random.default_rng(0).integers(0, 256, FRAME, dtype=np.uint8)
        seconds, before, after = timed_calls(lambda: step.stylize(frame, step.styles[0], as_uint8=True), calls)
        return {"seconds_per_call": round(seconds, 4),
                "system_s_per_call": round((after.ru_stime - before.ru_stime) / (calls + 1), 4),
                "faults_per_call": round((after.ru_minflt - before.ru_minflt) / (calls + 1)),
                "compile": step.compile_info["sizes"]}

    out = in_worker_thread(work)
    return {"variant": variant, **out, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--child", choices=[*VARIANTS, "eager_vs_compiled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "eager_vs_compiled":
        print(json.dumps(eager_vs_compiled(max(4, args.calls // 2))))
        return
    if args.child:
        print(json.dumps(child(args.child, args.calls)))
        return
    rows = []
    for variant, env in VARIANTS.items():
        cmd = [sys.executable, "-m", "benchmarks.allocator", "--child", variant, "--calls", str(args.calls)]
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                             env={**os.environ, "STYLEFARM_MALLOC": "", **env})
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print({k: v for k, v in rows[-1].items() if k != "compile"}, flush=True)
    cmd = [sys.executable, "-m", "benchmarks.allocator", "--child", "eager_vs_compiled", "--calls", str(args.calls)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    ratios = json.loads(run.stdout.strip().splitlines()[-1])
    print(ratios)
    dest = REPO / "benchmarks" / "results" / "allocator.json"
    dest.write_text(json.dumps({"benchmark": "allocator", "machine": platform.machine(), "cpus": os.cpu_count(),
                                "load_avg": os.getloadavg(), "frame": "1280x720", "results": rows,
                                "eager_vs_compiled": ratios}, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
