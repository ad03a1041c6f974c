"""Segment mode vs frame mode on a multi-node Ray cluster (head + 2 worker nodes of 1 CPU on
this machine): the driver's CPU per frame (the part that does not scale with workers), the CPU
of every process per frame, bytes through the object store per frame, and wall clock against
a local run of the same job. 1280x720 clip, `resize` (near free) and `cin26`.

This machine has 2 cores, so wall-clock scale-out cannot show the driver limit by itself:
CPU-seconds are measured and the driver's frames/s ceiling projected as 1 / driver CPU per frame.

    .venv/bin/python -m benchmarks.segment_mode [--models resize:20:60:240,cin26:4:8:48]

Writes benchmarks/results/segment_mode.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.video_io import make_source

REPO = Path(__file__).resolve().parent.parent
STEPS = {"resize": "{use: resize, with: {scale: 0.5}}",
         "cin26": "{use: cin26, with: {style: 7, max_size: 0, compile: false}}"}


def own_cpu() -> float:
    """This process and its reaped children (the driver's ffmpeg decoder/encoder/join)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def daemon_cpu() -> float:
    """Ray's own processes (GCS, raylets): neither driver nor actor, but part of the total."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "gcs_server" in cmd or "/raylet" in cmd:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


def array_bytes(items) -> int:
    total = 0
    for item in items:
        if item is None:
            continue
        for array in (item.image, item.original, item.alpha, *item.meta.get("stages", {}).values()):
            total += array.nbytes if isinstance(array, np.ndarray) else 0
    return total


def count_transfers(counter: dict) -> None:
    """Count what crosses the object store: frames and results (frame mode), the pickled task
    and result (segment mode). Array sizes are summed, no extra pickling of frames."""
    from ray import cloudpickle

    from stylefarm.executors.ray_executor import RayPool

    submit, collect = RayPool.submit, RayPool.collect

    def counted_submit(self, unit):
        counter["bytes"] += len(cloudpickle.dumps(unit.segment)) if unit.segment is not None else \
            array_bytes(unit.items)
        return submit(self, unit)

    def counted_collect(self, handle):
        done = collect(self, handle)
        results = done.results
        counter["bytes"] += len(cloudpickle.dumps(results)) if not isinstance(results, list) else \
            array_bytes(r for r, _ in results)
        return done

    RayPool.submit, RayPool.collect = counted_submit, counted_collect


def workflow(folder: Path, model: str) -> Path:
    path = folder / f"{model}.yaml"
    path.write_text(f"version: 1\ninputs: [{{path: clip.mp4}}]\nsteps:\n  - {STEPS[model]}\n"
                    f"output: {{dir: out_{model}, images: false, "
                    "video: {path: out.mp4, preset: veryfast, crf: 18}}\n"
                    "execution: {device: cpu, batch_size: 4, threads: 1}\n")
    return path


def one_run(wf: Path, overrides: list[str], counter: dict) -> dict:
    from stylefarm.api import load_workflow
    from stylefarm.runner import Run

    plan = load_workflow(wf, overrides)
    counter["bytes"] = 0
    cpu0, daemons0, start = own_cpu(), daemon_cpu(), time.perf_counter()
    report = Run(plan, force=True, progress=False).execute()
    wall = time.perf_counter() - start
    driver, daemons = own_cpu() - cpu0, daemon_cpu() - daemons0
    frames = report["counts"]["done"]
    workers = sum(row.get("cpu_seconds", 0.0) for row in report["workers"].values())
    assert report["status"] == "ok", report["failures"][:3]
    return {"unit": report.get("unit"), "frames": frames, "wall_s": round(wall, 2),
            "driver_cpu_per_frame_ms": round(1000 * driver / frames, 3),
            "workers_cpu_per_frame_ms": round(1000 * workers / frames, 3),
            "ray_daemons_cpu_per_frame_ms": round(1000 * daemons / frames, 3),
            "total_cpu_per_frame_ms": round(1000 * (driver + workers + daemons) / frames, 3),
            "object_store_bytes_per_frame": round(counter["bytes"] / frames),
            "driver_ceiling_fps": round(frames / driver, 1) if driver > 0 else None,
            "nodes": sorted({s.get("node") for s in report.get("segments", []) if s.get("node")})}


def marginal(short: dict, long: dict, key: str) -> float:
    """CPU ms per extra frame between two clip lengths: the per-frame cost without the fixed
    cost of a run (start-up, probe, actor set-up, join, report)."""
    extra = long["frames"] - short["frames"]
    return round((long[key] * long["frames"] - short[key] * short["frames"]) / extra, 3)


def measure(model: str, short_s: int, long_s: int, segment: int, tmp: Path, address: str, counter: dict) -> dict:
    """Frame and segment mode on the cluster at two clip lengths, and local at the long one."""
    rows: dict[str, dict] = {}
    cluster_args = ["execution.backend=ray", f"execution.address={address}", "execution.actors=2",
                    f"execution.segment_frames={segment}"]
    for seconds in (short_s, long_s):
        make_source(tmp / "clip.mp4", seconds, "1280x720")
        wf = workflow(tmp, model)
        for unit in ("frame", "segment"):
            rows[f"{unit}/{seconds}s"] = one_run(wf, [*cluster_args, f"execution.unit={unit}"], counter)
            print(model, unit, seconds, rows[f"{unit}/{seconds}s"], flush=True)
    rows["local"] = one_run(wf, ["execution.backend=local", "execution.threads=2"], counter)
    print(model, "local", rows["local"], flush=True)
    return rows


def ratios_of(rows: dict, short_s: int, long_s: int) -> dict:
    frame, segment = rows[f"frame/{long_s}s"], rows[f"segment/{long_s}s"]
    per_frame = {unit: {key: marginal(rows[f"{unit}/{short_s}s"], rows[f"{unit}/{long_s}s"], key)
                        for key in ("driver_cpu_per_frame_ms", "total_cpu_per_frame_ms")}
                 for unit in ("frame", "segment")}
    return {
        "driver_cpu_segment_vs_frame": round(segment["driver_cpu_per_frame_ms"] / frame["driver_cpu_per_frame_ms"], 4),
        "driver_cpu_marginal_segment_vs_frame": round(per_frame["segment"]["driver_cpu_per_frame_ms"]
                                                      / per_frame["frame"]["driver_cpu_per_frame_ms"], 4),
        "total_cpu_segment_vs_frame": round(segment["total_cpu_per_frame_ms"] / frame["total_cpu_per_frame_ms"], 3),
        "marginal_ms_per_frame": per_frame,
        "driver_ceiling_fps": {unit: round(1000 / per_frame[unit]["driver_cpu_per_frame_ms"], 1)
                               if per_frame[unit]["driver_cpu_per_frame_ms"] > 0 else None
                               for unit in ("frame", "segment")},
        "object_store_segment_vs_frame": round(segment["object_store_bytes_per_frame"]
                                               / max(1, frame["object_store_bytes_per_frame"]), 5),
        "wall_cluster_segment_vs_local": round(segment["wall_s"] / rows["local"]["wall_s"], 3),
        "wall_cluster_frame_vs_local": round(frame["wall_s"] / rows["local"]["wall_s"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resize:20:60:240,cin26:4:8:48",
                        help="model:short seconds:long seconds:segment frames, ... (720p clips at 24 fps)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray.cluster_utils import Cluster

    models = [(name, int(a), int(b), int(seg)) for name, a, b, seg in (m.split(":") for m in args.models.split(","))]
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                                "object_store_memory": 300 * 1024**2})
        for _ in range(2):
            cluster.add_node(num_cpus=1, object_store_memory=300 * 1024**2)
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        cluster.wait_for_nodes()
        counter = {"bytes": 0}
        count_transfers(counter)
        try:
            for model, short_s, long_s, segment in models:
                rows[model] = measure(model, short_s, long_s, segment, tmp, cluster.address, counter)
        finally:
            ray.shutdown()
            cluster.shutdown()
    ratios = {model: ratios_of(rows[model], short_s, long_s) for model, short_s, long_s, _ in models}
    result = {"benchmark": "segment_mode", "cpus": os.cpu_count(), "machine": platform.machine(),
              "load_avg": os.getloadavg(),
              "clips": {m: f"1280x720 at 24 fps, {a} s and {b} s; segment_frames {seg}" for m, a, b, seg in models},
              "cluster": "Ray head (0 CPU) + 2 worker nodes of 1 CPU on this machine; actors: 2, threads: 1",
              "runs": rows, "ratios": ratios,
              "goals": {"driver_cpu_segment_vs_frame": "<= 0.05", "total_cpu_segment_vs_frame": "<= 1.0",
                        "object_store_segment_vs_frame": "<= 0.01"}}
    dest = REPO / "benchmarks" / "results" / "segment_mode.json"
    dest.write_text(json.dumps(result, indent=1))
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
