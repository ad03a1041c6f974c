"""`stylefarm export openjd`: the real `openjd` CLI checks the template and runs the whole job
(every task of every step) here; its outputs must be byte-identical to a plain local run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from farm_fixtures import output_hashes, stills_job, video_job

pytest.importorskip("openjd.cli", reason="openjd-cli is not installed (pip install 'stylefarm[test]')")
OPENJD = Path(sys.executable).parent / "openjd"


def openjd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(OPENJD), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def export(cli, fmt: str, wf: Path, out: Path, *extra: str) -> dict:
    result = cli("--log-level", "error", "export", fmt, str(wf), "-o", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load((out / "template.yaml").read_text()) if fmt == "openjd" else {}


def local_run(cli, wf: Path, out: Path) -> dict[str, str]:
    result = cli("--log-level", "error", "run", str(wf), "--output", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    return output_hashes(out)


@pytest.mark.video
def test_openjd_job_runs_every_chunk_and_encode_and_matches_a_local_run(cli, tmp_path):
    wf = video_job(tmp_path / "shot")
    template = export(cli, "openjd", wf, tmp_path / "bundle", "--chunks", "3")
    assert template["extensions"] == ["TASK_CHUNKING"]
    args = template["steps"][0]["script"]["actions"]["onRun"]["args"]
    assert args[-5:] == ["--set", "inputs.0.frames={{Task.Param.Frame}}", "--frames", "{{Task.Param.Frame}}",
                         "--no-progress"]  # each task decodes only its own frames
    assert [s["name"] for s in template["steps"]] == ["Stylize", "Encode"]
    assert (tmp_path / "bundle" / "parameter_values.yaml").is_file()
    checked = openjd("check", str(tmp_path / "bundle" / "template.yaml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()  # defaults are absolute: the job runs from any directory, with no -p
    ran = openjd("run", str(tmp_path / "bundle" / "template.yaml"), "--step", "Encode", "--run-dependencies",
                 cwd=elsewhere)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "Chunks run: 4" in ran.stdout  # 3 stylize chunks + 1 encode
    state = tmp_path / "shot" / "out" / ".stylefarm"
    assert sorted(p.name for p in state.glob("report.frames-*.json")) == [
        "report.frames-1001-1012.json", "report.frames-1001-1036.json",  # the encode step keeps to Frames
        "report.frames-1013-1024.json", "report.frames-1025-1036.json"]
    farm = output_hashes(tmp_path / "shot" / "out")
    assert {"clip_styled.mp4", "contact_sheet.png", "clip.1001.png", "clip.1036.png"} <= set(farm)
    assert farm == local_run(cli, wf, tmp_path / "local")


@pytest.mark.video
def test_openjd_job_of_a_frame_range_encodes_just_those_frames_as_a_local_run_of_them(cli, tmp_path):
    from stylefarm.video.probe import probe

    wf = video_job(tmp_path / "shot", frames=24)
    export(cli, "openjd", wf, tmp_path / "bundle", "--chunk-size", "5", "--frames", "1003-1012")
    ran = openjd("run", str(tmp_path / "bundle" / "template.yaml"), "--step", "Encode", "--run-dependencies",
                 cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    out = tmp_path / "shot" / "out"
    assert probe(out / "clip_styled.mp4").frames == 10
    local = cli("--log-level", "error", "run", str(wf), "--output", str(tmp_path / "local"), "--frames", "1003-1012",
                "--no-progress")
    assert local.returncode == 0, local.stderr
    assert output_hashes(out) == output_hashes(tmp_path / "local")


def test_openjd_stills_job_uses_shards_and_a_dependent_assemble_step(cli, tmp_path):
    """Shard mode runs for real in test_export_formats (OpenCue); here the template's shape."""
    wf = stills_job(tmp_path / "job")
    template = export(cli, "openjd", wf, tmp_path / "bundle", "--chunk-size", "2")
    space = template["steps"][0]["parameterSpace"]["taskParameterDefinitions"][0]
    assert (space["type"], space["range"]) == ("INT", "1-3")
    args = template["steps"][0]["script"]["actions"]["onRun"]["args"]
    assert args[-3:] == ["--shard", "{{Task.Param.Shard}}/3", "--no-progress"] and "output.sheet=false" in args
    assert "extensions" not in template and "Frames" not in {p["name"] for p in template["parameterDefinitions"]}
    assemble = template["steps"][1]
    assert assemble["name"] == "Assemble" and assemble["dependencies"] == [{"dependsOn": "Stylize"}]
    assert "--shard" not in assemble["script"]["actions"]["onRun"]["args"]
    checked = openjd("check", str(tmp_path / "bundle" / "template.yaml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.video
def test_openjd_without_chunking_lists_ranges_and_maps_gpu_timeout_retries(cli, tmp_path):
    wf = video_job(tmp_path / "shot", frames=10)
    wf.write_text(wf.read_text().replace("device: cpu", "device: cuda"))
    template = export(cli, "openjd", wf, tmp_path / "bundle", "--chunk-size", "4", "--no-task-chunking",
                      "--task-timeout", "900", "--task-retries", "5")
    stylize = template["steps"][0]
    assert stylize["parameterSpace"]["taskParameterDefinitions"][0]["range"] == ["1001-1004", "1005-1008",
                                                                                 "1009-1010"]
    assert stylize["hostRequirements"]["amounts"] == [{"name": "amount.worker.gpu", "min": 1}]
    assert stylize["script"]["actions"]["onRun"]["timeout"] == 900
    assert "hostRequirements" not in template["steps"][1]  # encoding needs no GPU
    values = yaml.safe_load((tmp_path / "bundle" / "parameter_values.yaml").read_text())["parameterValues"]
    assert {"name": "deadline:maxRetriesPerTask", "value": 5} in values
    checked = openjd("check", str(tmp_path / "bundle" / "template.yaml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_export_of_a_job_without_items_in_the_frame_range_is_one_line(cli, tmp_path):
    wf = stills_job(tmp_path / "job", count=1)
    result = cli("export", "openjd", str(wf), "--frames", "1-10", "-o", str(tmp_path / "b"))
    assert result.returncode == 2 and "no items" in result.stderr.strip().splitlines()[-1]


def _video_only(wf: Path) -> Path:
    images = '  pattern: "{input.stem}.{frame:04d}.png"\n  sheet: {thumb: 48}\n'
    wf.write_text(wf.read_text().replace(images, "  images: false\n"))
    return wf


@pytest.mark.video
def test_video_without_frame_images_hands_frames_over_in_the_state_folder(cli, tmp_path):
    wf = _video_only(video_job(tmp_path / "shot", frames=10))
    template = export(cli, "openjd", wf, tmp_path / "bundle", "--chunks", "2")
    handover = "output.frames.pattern=.stylefarm/farm-frames/{input.stem}/{input.stem}.{frame:06d}.png"
    for step in template["steps"]:  # both steps plan the same frame files, so encode resumes from them
        assert handover in step["script"]["actions"]["onRun"]["args"]


@pytest.mark.slow
@pytest.mark.video
def test_video_only_job_run_by_openjd_matches_a_local_run(cli, tmp_path):
    wf = _video_only(video_job(tmp_path / "shot", frames=24))
    export(cli, "openjd", wf, tmp_path / "bundle", "--chunks", "3")
    ran = openjd("run", str(tmp_path / "bundle" / "template.yaml"), "--step", "Encode", "--run-dependencies",
                 cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert output_hashes(tmp_path / "shot" / "out") == local_run(cli, wf, tmp_path / "local")  # the video only
