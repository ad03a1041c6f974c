"""benchmarks/gpu.py end to end on CPU (`--device cpu --quick`, tiny sizes): JSON, chart, sections.

No wall-clock asserts: only that every cell ran (or says why not) and the report has its parts.
On a GPU machine the same script runs with `--device cuda` (python -m benchmarks --gpu).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks import gpu  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM WEIGHTS:UserWarning")


def test_quick_cpu_run_writes_every_section(tmp_path, one_torch_thread):
    args = gpu.parse_args(["--device", "cpu", "--quick", "--models", "adain", "--precisions", "float32",
                           "bfloat16", "--sizes", "32", "40x24", "--video-frames", "3", "--out", str(tmp_path)])
    path = gpu.run(args)
    report = json.loads(path.read_text())
    cells = {(r["precision"], r["size"]): r for r in report["models"]}
    assert set(cells) == {(p, s) for p in ("float32", "bfloat16") for s in ("32", "40x24")}
    assert all(r["fps"] > 0 and r["frames"] >= 4 for r in cells.values()), cells
    (video,) = report["video"]
    assert video["model"] == "adain" and video["frames"] == 3 and video["ratio_bare_over_pipeline"] > 0
    codecs = report["codecs"][0]
    assert {"nvenc", "nvdec", "hwaccels", "nvenc_usable"} <= set(codecs)
    assert report["environment"]["device"] == "cpu" and "adain" in report["paper"]
    assert path.with_suffix(".png").stat().st_size > 0


def test_budget_spent_skips_cells_and_says_which(tmp_path):
    args = gpu.parse_args(["--device", "cpu", "--quick", "--models", "adain", "cut", "--budget", "0",
                           "--out", str(tmp_path)])
    report = json.loads(gpu.run(args).read_text())
    assert report["models"] == [] and report["video"] == []
    assert "adain float32: budget" in report["skipped"] and "video cut: budget" in report["skipped"]


def test_sizes_parse_square_widescreen_and_explicit():
    assert gpu.parse_size("512") == (512, 512)
    assert gpu.parse_size("1080p") == (1920, 1080)
    assert gpu.parse_size("720p") == (1280, 720)
    assert gpu.parse_size("96x54") == (96, 54)


def test_every_model_step_with_a_precision_option_is_benchmarked():
    from stylefarm.host import get_host

    steps = {n for n, p in get_host().steps.items()
             if p.plugin.distribution == "stylefarm" and "precision" in p.obj.Options.model_fields}
    assert steps == set(gpu.MODELS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the refusal path does not apply")
def test_cuda_requested_without_a_gpu_says_how_to_run_on_cpu(tmp_path):
    with pytest.raises(SystemExit, match="--device cpu"):
        gpu.run(gpu.parse_args(["--out", str(tmp_path)]))


def test_module_entry_point_forwards_gpu_flag():
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--gpu", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--precisions" in out.stdout and "example:" in out.stdout


def test_the_prepared_device_check_runs_its_steps_on_cpu(tmp_path):
    """benchmarks/device_check.sh is what a lent GPU machine runs (docs/gpu.md): rehearsed here on CPU
    (install of stylefarm with its entry points into a fresh folder, the CUDA tests, the benchmark)."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(REPO / "benchmarks" / "device_check.sh"), "--rehearse"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "steps" in (tmp_path / "install.log").read_text()
    log = (tmp_path / "cuda_tests.log").read_text()
    assert "skipped" in log and "error" not in log.lower(), log[-1500:]
    (report,) = tmp_path.glob("gpu-*.json")
    assert {r["model"] for r in json.loads(report.read_text())["models"]} == {"adain", "cut"}
    assert "device_check: tests exit 0, benchmark exit 0" in run.stdout
