"""Benchmark harness: repeat a case, report median and spread, save JSON + a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parent / "results"))


@dataclass
class Case:
    """One benchmark case: `run(size)` returns {metric: value}; `goal` names the ratio judged."""

    name: str
    title: str
    run: Callable[[str], dict[str, float]]
    goal: tuple[str, float] | None = None  # (metric, minimum) e.g. ("ratio", 0.95)
    sizes: tuple[str, ...] = ("small", "large")


@dataclass
class Result:
    case: str
    size: str
    samples: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        keys = self.samples[0].keys() if self.samples else []
        out = {}
        for key in keys:
            values = [s[key] for s in self.samples]
            out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        return out


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_cases(cases: list[Case], sizes: list[str] | None, repeat: int) -> list[Result]:
    results = []
    for case in cases:
        for size in sizes or case.sizes:
            result = Result(case.name, size)
            case.run(size)  # warm-up: imports, page cache, plugin discovery are not what we measure
            for _ in range(repeat):
                result.samples.append(case.run(size))
            results.append(result)
            print(format_row(case, result), flush=True)
    return results


def format_row(case: Case, result: Result) -> str:
    summary = result.summary()
    parts = [f"{k}={v['median']:.4g} [{v['min']:.4g}..{v['max']:.4g}]" for k, v in summary.items()]
    verdict = ""
    if case.goal and case.goal[0] in summary:
        metric, minimum = case.goal
        ok = summary[metric]["median"] >= minimum
        verdict = f"  goal {metric}>={minimum}: {'met' if ok else 'NOT met'}"
    return f"{case.name:<4} {case.title:<38} {result.size:<6} " + " ".join(parts) + verdict


def machine_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0).replace(" ", "-")
    except ImportError:
        pass
    return f"{socket.gethostname().split('.')[0][:16]}-cpu{os.cpu_count()}"


def save(results: list[Result], cases: list[Case]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{machine_name()}-{stamp}.json"
    goals = {c.name: c.goal for c in cases}
    payload = {"machine": machine_name(), "python": platform.python_version(), "date": stamp,
               "results": [{"case": r.case, "size": r.size, "goal": goals.get(r.case),
                            "summary": r.summary(), "samples": r.samples} for r in results]}
    path.write_text(json.dumps(payload, indent=2))
    chart(results, cases, path.with_suffix(".png"))
    return path


def chart(results: list[Result], cases: list[Case], path: Path) -> None:
    """Bar chart of each case's goal metric (median) with its goal line, drawn with OpenCV."""
    import cv2
    import numpy as np

    goals = {c.name: c.goal for c in cases}
    rows = [(f"{r.case} {r.size}", r.summary().get(goals[r.case][0], {}).get("median", 0.0), goals[r.case][1])
            for r in results if goals.get(r.case)]
    if not rows:
        return
    width, bar_h = 900, 34
    img = np.full((bar_h * len(rows) + 40, width, 3), 255, np.uint8)
    top = max(max(v, g) for _, v, g in rows) * 1.1 or 1.0
    scale = (width - 260) / top
    for i, (label, value, goal) in enumerate(rows):
        y = 20 + i * bar_h
        color = (80, 170, 60) if value >= goal else (60, 60, 200)
        cv2.rectangle(img, (220, y), (220 + int(value * scale), y + bar_h - 8), color, -1)
        cv2.line(img, (220 + int(goal * scale), y - 2), (220 + int(goal * scale), y + bar_h - 6), (0, 0, 0), 2)
        cv2.putText(img, label, (8, y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{value:.3f}", (226 + int(value * scale), y + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def first_and_repeats(run: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Seconds of the first call (warm-up: allocations, kernel selection, compile) and of each of
    `repeats` calls after it."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return first, times
