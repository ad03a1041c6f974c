"""The benchmark runner works end to end at tiny sizes (asserts nothing about speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_runner_writes_json_and_chart(tmp_path):
    env = {**os.environ, "BENCH_RESULTS": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--size", "tiny", "--repeat", "1",
                             "--case", "P1", "--case", "P2", "--case", "P3"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (saved,) = tmp_path.glob("*.json")
    data = json.loads(saved.read_text())
    assert {r["case"] for r in data["results"]} == {"P1", "P2", "P3"}
    assert all(r["summary"] for r in data["results"])
    assert saved.with_suffix(".png").is_file()
