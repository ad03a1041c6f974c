"""Running workflows locally: outputs, report, resume, partial failures, kill + rerun."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import STYLEFARM

from stylefarm.api import load_workflow, run_workflow
from stylefarm.errors import EXIT_FATAL, EXIT_PARTIAL
from stylefarm.images import read_image


def stills_workflow(src: Path, extra: str = "") -> str:
    return f"""\
version: 1
inputs:
  - dir: {src}
steps:
  - use: resize
    with: {{max_side: 96}}
  - use: color_transfer
    with: {{reference: {src}/ref.jpg, strength: 0.8}}
output:
  dir: out
  sheet: {{thumb: 64}}
{extra}"""


@pytest.fixture
def stills(tmp_path, content_images) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for path in content_images[:4]:
        shutil.copy(path, src / path.name)
    shutil.copy(content_images[-1], src / "ref.jpg")
    return src


def test_chain_writes_outputs_report_and_sheet(cli, workflow, stills, tmp_path):
    result = cli("run", str(workflow(stills_workflow(stills))), "--no-progress")
    assert result.returncode == 0, result.stderr
    outs = sorted((tmp_path / "out").glob("*.png"))
    names = {p.name for p in outs}
    assert "contact_sheet.png" in names and len(outs) == 6  # 5 inputs (incl. ref) + sheet
    img, _, _ = read_image(tmp_path / "out" / "chicago.png")
    assert max(img.shape[:2]) == 96
    report = json.loads((tmp_path / "out" / ".stylefarm" / "report.json").read_text())
    assert report["status"] == "ok" and report["counts"] == {"done": 5, "skipped": 0, "failed": 0}
    assert set(report["steps"]) == {"resize", "color_transfer"}
    assert report["steps"]["resize"]["items"] == 5
    assert "python" in report["versions"] and report["versions"]["stylefarm"]


def test_rerun_skips_finished_and_force_redoes(cli, workflow, stills, tmp_path):
    path = workflow(stills_workflow(stills))
    assert cli("run", str(path)).returncode == 0
    stamp = (tmp_path / "out" / "chicago.png").stat().st_mtime_ns
    again = cli("run", str(path))
    assert again.returncode == 0 and "done 0, skipped 5" in again.stdout
    assert (tmp_path / "out" / "chicago.png").stat().st_mtime_ns == stamp
    forced = cli("run", str(path), "--force")
    assert "done 5, skipped 0" in forced.stdout


def test_corrupt_image_among_good_ones_is_reported_and_exit_says_partial(cli, workflow, stills, tmp_path):
    data = (stills / "chicago.jpg").read_bytes()
    (stills / "broken.jpg").write_bytes(data[: len(data) // 3])
    (stills / "garbage.png").write_bytes(b"not a png at all")
    result = cli("run", str(workflow(stills_workflow(stills))))
    assert result.returncode == EXIT_PARTIAL, result.stderr
    out = tmp_path / "out"
    assert (out / "chicago.png").is_file() and not (out / "broken.png").exists()
    report = json.loads((out / ".stylefarm" / "report.json").read_text())
    failed = {Path(f["source"]).name for f in report["failures"]}
    assert failed == {"broken.jpg", "garbage.png"} and report["status"] == "partial"
    assert report["counts"]["done"] == 5
    assert "broken.jpg" in result.stderr


def test_unwritable_output_dir_is_one_line_fatal(cli, workflow, stills, tmp_path):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    text = stills_workflow(stills).replace("  dir: out", "  dir: blocker/out")
    result = cli("run", str(workflow(text)))
    assert result.returncode == EXIT_FATAL
    assert result.stderr.strip().splitlines()[-1].startswith("error: output directory")


def test_dry_run_prints_plan_and_writes_nothing(cli, workflow, stills, tmp_path):
    result = cli("run", str(workflow(stills_workflow(stills))), "--dry-run")
    assert result.returncode == 0
    assert "resize" in result.stdout and "(5 items)" in result.stdout and "backend=local" in result.stdout
    assert not (tmp_path / "out").exists()


def test_progress_degrades_to_log_lines_without_tty(cli, workflow, stills):
    result = cli("--log-level", "info", "run", str(workflow(stills_workflow(stills))))
    assert "progress 5/5 items" in result.stderr


def test_log_level_error_silences_info(cli, workflow, stills):
    result = cli("--log-level", "error", "run", str(workflow(stills_workflow(stills))))
    assert "INFO" not in result.stderr


KILL_WF = """\
version: 1
inputs:
  - generate: noise
    count: 400
    width: 192
    height: 160
steps:
  - use: color_transfer
    with: {reference: ref.png}
  - use: resize
    with: {scale: 1.5}
output:
  dir: out
execution:
  batch_size: 2
"""


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}


def test_rerun_after_sigkill_skips_finished_and_matches_uninterrupted(tmp_path):
    from stylefarm.images import atomic_write_bytes, encode_image

    ref = np.random.default_rng(3).random((32, 32, 3)).astype(np.float32)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        atomic_write_bytes(tmp_path / name / "ref.png", encode_image(".png", ref, None, 8))
        (tmp_path / name / "wf.yaml").write_text(KILL_WF)
    cmd = [str(STYLEFARM), "--log-level", "error", "run"]
    subprocess.run([*cmd, "wf.yaml"], cwd=tmp_path / "a", check=True, timeout=600)
    manifest = tmp_path / "b" / "out" / ".stylefarm" / "manifest.jsonl"
    proc = subprocess.Popen([*cmd, "wf.yaml"], cwd=tmp_path / "b")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not manifest.exists() or len(manifest.read_text().splitlines()) < 20):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(manifest.read_text().splitlines())
    assert 20 <= finished < 400, "the run was not killed half way"
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "out").glob("*.png")}
    rerun = subprocess.run([*cmd, "wf.yaml"], cwd=tmp_path / "b", capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    skipped = int(rerun.stdout.split("skipped ")[1].split(",")[0])
    assert skipped >= finished
    recorded = [json.loads(line)["outputs"][0] for line in manifest.read_text().splitlines()[:finished]]
    for rel in recorded:  # finished outputs were not recomputed
        assert (tmp_path / "b" / "out" / rel).stat().st_mtime_ns == stamps[Path(rel).name]
    assert not list((tmp_path / "b" / "out").rglob("*.part"))
    assert _snapshot(tmp_path / "b" / "out") == _snapshot(tmp_path / "a" / "out")


def test_python_api_loads_overrides_and_runs(tmp_path, stills):
    path = tmp_path / "wf.yaml"
    path.write_text(stills_workflow(stills))
    plan = load_workflow(path, ["steps.0.with.max_side=48", "output.sheet=false"])
    assert plan.chain[0].options.max_side == 48
    report = run_workflow(path, ["steps.0.with.max_side=48", "output.sheet=false"])
    assert report["counts"]["done"] == 5
    img, _, _ = read_image(tmp_path / "out" / "cornell.png")
    assert max(img.shape[:2]) == 48


STAGES_WF = """\
version: 1
inputs:
  - generate: gradient
    count: 2
    width: 80
    height: 60
steps:
  - use: resize
    with: {scale: 0.5}
    save: true
  - use: blend
    id: soft
    input: original
    with: {amount: 0.5, mode: multiply}
output:
  dir: out
  sheet: {thumb: 32}
"""


def test_saved_stages_are_written_and_branch_from_original(workflow, tmp_path):
    report = run_workflow(workflow(STAGES_WF))
    assert report["counts"]["done"] == 2
    half, _, _ = read_image(tmp_path / "out" / "gradient_resize.0000.png")
    final, _, _ = read_image(tmp_path / "out" / "gradient_soft.0000.png")
    assert half.shape == (30, 40, 3) and final.shape == (60, 80, 3)  # `soft` started from the input
    sheet, _, _ = read_image(tmp_path / "out" / "contact_sheet.png")
    assert sheet.shape[1] > 3 * 32  # input | resize | soft
    again = run_workflow(workflow(STAGES_WF))
    assert again["counts"]["skipped"] == 2


@pytest.mark.parametrize("suffix", [".png", ".webp", ".bmp"])
def test_a_resumed_run_rebuilds_the_sheet_from_the_files_of_any_picture_format(workflow, stills, tmp_path, suffix):
    """Farm tasks and resumed runs assemble the sheet from the written files: webp/bmp results were
    not read back, so the sheet of a run that only resumed went missing without a word."""
    wf = workflow(stills_workflow(stills, f'  pattern: "{{input.stem}}{suffix}"\n'))
    run_workflow(wf)
    sheet = tmp_path / "out" / "contact_sheet.png"
    first = read_image(sheet)[0]
    sheet.unlink()
    assert run_workflow(wf)["counts"]["skipped"] == 5
    again = read_image(sheet)[0]
    assert again.shape == first.shape
    if suffix != ".webp":  # lossy: the files hold other pixels than the run had
        assert np.array_equal(again, first)


def test_saved_stage_needs_step_in_pattern(cli, workflow):
    result = cli("validate", str(workflow(STAGES_WF + "  pattern: '{input.stem}.png'\n")))
    assert result.returncode == 2 and "need {step}" in result.stderr
