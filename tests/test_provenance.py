"""Provenance in every report (versions, workflow hash, resolved options, weights sha256, seeds,
command, host, device) and `stylefarm report DIR` merging a farm job's shard reports."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from pathlib import Path

import pytest

import stylefarm
from stylefarm.hookspecs import hookimpl
from stylefarm.host import PluginHost
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.step import InputPath, Step, StepOptions
from stylefarm.workflow import read_yaml_file


class LoadsWeightsOptions(StepOptions):
    weights: InputPath


class LoadsWeights(Step):
    """Loads a state dict through the weights manager, like every model step does."""

    name = "test_loads_weights"

    Options = LoadsWeightsOptions

    def setup(self, device: str) -> None:
        from stylefarm.weights import load_weights

        self.state, _ = load_weights("test/scale", self.options.weights)

    def process(self, batch):
        scale = float(self.state["scale"])
        return [it.with_image((it.image * scale).clip(0, 1)) for it in batch]


class _Plugin:
    @hookimpl
    def stylefarm_register_steps(self):
        return [LoadsWeights]


WF = """\
version: 1
inputs:
  - generate: noise
    count: 3
    width: 24
    height: 16
    seed: 7
steps:
  - use: test_loads_weights
    with: {weights: scale.pt}
  - use: color_transfer
    with: {reference: ref.png}
output:
  dir: out
execution:
  device: cpu
"""


@pytest.fixture
def weighted_run(tmp_path, one_torch_thread):
    import numpy as np
    import torch

    from stylefarm.images import atomic_write_bytes, encode_image

    torch.save({"scale": torch.tensor(0.9)}, tmp_path / "scale.pt")
    atomic_write_bytes(tmp_path / "ref.png", encode_image(".png", np.full((8, 8, 3), 0.4, np.float32), None, 8))
    (tmp_path / "wf.yaml").write_text(WF)
    host = PluginHost(extra_plugins=[(_Plugin(), "stylefarm-provenance-tests")])
    plan = build_plan(read_yaml_file(tmp_path / "wf.yaml"), tmp_path, host)
    report = Run(plan, progress=False).execute()
    return tmp_path, report


def test_report_records_weights_sha256_versions_hash_options_seeds_and_host(weighted_run):
    root, report = weighted_run
    prov = report["provenance"]
    weights = root / "scale.pt"
    assert prov["weights"] == [{"path": str(weights), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}]
    assert prov["distributions"]["stylefarm"] == stylefarm.__version__
    assert prov["workflow"]["file_sha256"] == hashlib.sha256((root / "wf.yaml").read_bytes()).hexdigest()
    steps = prov["workflow"]["resolved"]["steps"]
    assert steps[1]["with"] == {"reference": str(root / "ref.png"), "strength": 1.0, "space": "lab"}  # defaults
    assert steps[0]["with"]["weights"] == str(weights)  # paths resolved against the workflow
    assert prov["workflow"]["seeds"] == {"inputs[0].seed": 7}
    import torch

    assert prov["torch"] == torch.__version__ and "cuda" in prov
    assert prov["host"]["name"] == socket.gethostname() and prov["devices"] == ["cpu"]
    assert prov["device_requested"] == "cpu" and prov["command"][1:] == sys.argv[1:]
    assert Path(prov["command"][0]).is_absolute()
    on_disk = json.loads((root / "out/.stylefarm/report.json").read_text())
    assert on_disk["provenance"]["weights"] == prov["weights"]


def test_resolved_hash_changes_with_an_option_but_not_with_formatting(tmp_path):
    from stylefarm.api import load_workflow
    from stylefarm.provenance import workflow_section

    base = "version: 1\ninputs: [{generate: noise, count: 1}]\nsteps: [{use: resize, with: {scale: 0.5}}]\n"
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text("# same job, other layout\n" + base.replace("{scale: 0.5}", "{scale: 0.50}"))
    (tmp_path / "c.yaml").write_text(base.replace("0.5", "0.25"))
    a, b, c = (workflow_section(load_workflow(tmp_path / f"{n}.yaml")) for n in "abc")
    assert a["resolved_sha256"] == b["resolved_sha256"] != c["resolved_sha256"]
    assert a["file_sha256"] != b["file_sha256"]


def test_report_command_merges_shard_reports(cli, workflow, tmp_path):
    wf = workflow("version: 1\ninputs: [{generate: checker, count: 7, width: 16, height: 16}]\n"
                  "steps: [{use: resize, with: {scale: 0.5}}]\noutput: {dir: out}\nexecution: {device: cpu}\n")
    for shard in ("1/3", "2/3", "3/3"):
        assert cli("--log-level", "error", "run", str(wf), "--shard", shard, "--no-progress").returncode == 0
    text = cli("report", str(tmp_path / "out"))
    assert text.returncode == 0, text.stderr
    assert "ok; 7 items recorded in the manifest - done 7, failed 0" in text.stdout
    assert text.stdout.count("  task shard-") == 3
    merged = json.loads(cli("report", str(tmp_path / "out"), "--json").stdout)
    assert merged["counts"]["done"] == 7 and merged["steps"]["resize"]["items"] == 7
    assert len(merged["workers"]) == 3 and merged["provenance"]["workflow"]["path"] == str(wf)


def test_report_command_shows_a_running_job_from_its_manifest(cli, workflow, tmp_path):
    wf = workflow("version: 1\ninputs: [{generate: checker, count: 4, width: 16, height: 16}]\n"
                  "output: {dir: out}\nexecution: {device: cpu}\n")
    assert cli("--log-level", "error", "run", str(wf), "--shard", "1/2", "--no-progress").returncode == 0
    for report in (tmp_path / "out/.stylefarm").glob("report*.json"):
        report.unlink()  # as if the task were still running: only the manifest has been written
    text = cli("report", str(tmp_path / "out"))
    assert text.returncode == 0 and "running; 2 items recorded in the manifest" in text.stdout


def test_report_command_on_a_folder_without_reports_is_one_line(cli, tmp_path):
    result = cli("report", str(tmp_path))
    assert result.returncode == 2 and "no stylefarm reports" in result.stderr


def test_the_host_platform_is_python_s_own_string_without_its_uname_run(monkeypatch):
    import platform
    import subprocess

    from stylefarm.provenance import _platform

    expected = platform.platform()
    started: list = []
    real_init = subprocess.Popen.__init__

    def spy(self, args, *a, **kw):
        started.append(args)
        real_init(self, args, *a, **kw)

    monkeypatch.setattr(platform, "_uname_cache", None)  # what a new process sees: uname not asked yet
    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    assert _platform() == expected
    assert sys.platform != "linux" or not started, started


def test_merged_job_takes_its_task_fields_from_the_caller_and_the_rest_from_the_reports():
    """`merge_job` judges tasks, counts, failures and status itself (manifest, live runs): the
    merge takes them as given, in the report's usual place, and sums the rest as ever."""
    from stylefarm.provenance import merge_reports, task_name

    reports = [{"_file": f"report.shard-{i}-of-2.json", "status": "failed", "seconds": 1.5, "outputs": ["a.png"],
                "counts": {"done": 9, "skipped": 0, "failed": 9}, "failures": [{"item": "x#1"}],
                "workers": {"w": {"items": 1}}} for i in (1, 2)]
    job = {"tasks": [{"task": "shard-1-of-2"}], "counts": {"done": 2}, "failures": [], "status": "ok"}
    merged = merge_reports(reports, job)
    assert {k: merged[k] for k in job} == job
    assert list(merged)[:10] == ["workflow", "tasks", "counts", "outputs", "failures", "workers", "steps",
                                 "seconds", "provenance", "status"]
    assert merged["seconds"] == 3.0 and merged["outputs"] == ["a.png"]
    assert set(merged["workers"]) == {"shard-1-of-2:w", "shard-2-of-2:w"}
    assert merge_reports(reports)["status"] == "failed"  # without a job: each report as it says
    assert [task_name(r) for r in reports] == ["shard-1-of-2", "shard-2-of-2"]
    assert task_name({"_file": "report.json"}) == "main"
