"""Never two items written to one path: refused at validation, guarded at run time."""

from __future__ import annotations

import numpy as np
import pytest

from stylefarm import plan as plan_module
from stylefarm.api import run_workflow
from stylefarm.images import encode_image


def png(path, value: float = 0.5):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_image(".png", np.full((4, 6, 3), value, np.float32), None, 8, 95))
    return path


@pytest.mark.video
def test_video_container_in_image_pattern_points_to_output_video(cli, workflow):
    from conftest import REPO

    clip = REPO / "workflows" / "media" / "testsrc.mp4"
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput:\n  pattern: \"{{input.stem}}_out.mp4\"\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2
    assert "wf.yaml:3: output.pattern: .mp4 is a video container" in result.stderr and "output.video" in result.stderr


@pytest.mark.video
def test_frames_of_one_video_into_one_image_name_is_refused(cli, workflow):
    from conftest import REPO

    clip = REPO / "workflows" / "media" / "testsrc.mp4"
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput:\n  pattern: \"{{input.stem}}_out.png\"\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2
    assert "output.pattern" in result.stderr and "same file" in result.stderr
    assert "{input.stem}_out.{frame:04d}.png" in result.stderr


def test_two_images_with_one_name_are_refused_naming_both(cli, workflow, tmp_path):
    a, b = png(tmp_path / "shots" / "a" / "plate.png"), png(tmp_path / "shots" / "b" / "plate.png")
    wf = workflow("inputs: [{dir: shots, recursive: true}]\noutput:\n  pattern: \"{input.stem}.png\"\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2
    assert str(a) in result.stderr and str(b) in result.stderr and "{input.rel}" in result.stderr
    fixed = workflow("inputs: [{dir: shots, recursive: true}]\noutput:\n  pattern: \"{input.rel}/{input.stem}.png\"\n",
                     "fixed.yaml")
    assert cli("validate", str(fixed)).returncode == 0


def test_run_time_guard_fails_the_second_item_and_keeps_the_first(workflow, tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "MAX_LISTED", 0)  # inputs too many to list: the runner's guard holds
    png(tmp_path / "a" / "x.png", 0.2)
    png(tmp_path / "b" / "x.png", 0.8)
    wf = workflow("inputs: [{path: a/x.png}, {path: b/x.png}]\noutput: {dir: out}\n")
    report = run_workflow(wf)
    assert report["counts"]["done"] == 1 and report["counts"]["failed"] == 1
    assert "would overwrite" in report["failures"][0]["error"] and "a/x.png" in report["failures"][0]["error"]
    from stylefarm.images import read_image

    assert abs(read_image(tmp_path / "out" / "x.png")[0].mean() - 0.2) < 0.01
