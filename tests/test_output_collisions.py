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


@pytest.mark.parametrize("output, message", [
    ("pattern: '{input.stem}.exr'", "output.pattern: .exr: not a picture format stylefarm writes; use one of .png"),
    ("pattern: '{input.stem}'", "output.pattern: no suffix: not a picture format"),
    ("{pattern: '{input.stem}.jpg', bit_depth: 16}", "output.pattern: a .jpg file cannot hold 16-bit pixels "
                                                     r"\(bit_depth: 16\); name .png, .tif, .tiff files"),
    ("{bit_depth: 32}", "output.bit_depth: a .png file cannot hold 32-bit pixels"),  # the default name is .png
    ("{images: false, frames: {pattern: 'f.####.exr'}}", "output.frames.pattern: .exr: not a picture format"),
    ("{images: false, frames: {pattern: 'f.####.webp', bit_depth: 16}}", "output.frames.bit_depth: a .webp file"),
])
def test_picture_names_and_depths_no_format_holds_are_refused_at_validation(cli, workflow, tmp_path, output,
                                                                            message):
    """Before: a KeyError or IndexError from the image writer at the first item (exit 1), or
    8-bit files where 16 or 32 bits were asked for."""
    import re

    png(tmp_path / "a.png")
    body = output if output.startswith("{") else "{" + output + "}"
    wf = workflow(f"inputs: [{{path: a.png}}]\noutput: {body}\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2 and re.search(r"wf.yaml:2: " + message, result.stderr), result.stderr


def test_a_name_that_keeps_the_inputs_suffix_is_written_or_refused_by_the_write(workflow, tmp_path):
    png(tmp_path / "a.png")
    wf = workflow("inputs: [{path: a.png}]\noutput: {dir: out, pattern: '{input.stem}_x.{input.suffix}'}\n")
    report = run_workflow(wf)
    assert report["counts"]["done"] == 1 and (tmp_path / "out" / "a_x.png").is_file()


@pytest.mark.parametrize("pattern, suggestion", [
    ("{input.stem}.{input.suffix}", "{input.stem}.{frame:04d}.{input.suffix}"),
    ("{input.name}", "{input.stem}.{frame:04d}.{input.suffix}"),
    ("x/{input.stem}.tif", "x/{input.stem}.{frame:04d}.tif"),
    ("{input.stem}", "{input.stem}.{frame:04d}"),  # was '{input.{frame:04d}.stem}'
])
def test_the_frame_field_is_suggested_before_the_suffix_not_inside_a_field(pattern, suggestion):
    assert plan_module._with_frame(pattern) == suggestion


@pytest.mark.video
def test_a_video_inputs_suffix_in_the_picture_name_is_refused_at_validation(cli, workflow):
    from conftest import REPO

    clip = REPO / "workflows" / "media" / "testsrc.mp4"
    pattern = "{input.stem}.{frame:04d}.{input.suffix}"
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput:\n  pattern: \"{pattern}\"\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2
    assert "wf.yaml:3: output.pattern: for inputs[0]" in result.stderr and ".mp4: not a picture format" in result.stderr


@pytest.mark.parametrize("output, owner", [
    ('{dir: out, pattern: "{input.stem}.png", sheet: {path: a.png}}', "a.png"),  # a still's file
    ('{dir: out, pattern: "{input.stem}_{step}.png", sheet: {path: a_resize.png}}', "a.png"),  # a saved stage's
    ('{dir: out, images: false, frames: {pattern: "f####.png"}, sheet: {path: f0003.png}}', "gradient frame 3"),
    ('{dir: out, pattern: "g{frame:03d}.png", sheet: {path: g002.png}}', "gradient frame 2"),
])
def test_a_sheet_named_like_an_items_file_is_refused(cli, workflow, tmp_path, output, owner):
    """The sheet overwrote that item's output at the end of the run (exit 0), and resume, finding
    the file, never redid the item."""
    png(tmp_path / "src" / "a.png")
    framed = "frames:" in output or "{frame" in output
    source = "{generate: gradient, count: 4, width: 8, height: 8}" if framed else "{glob: src/*.png}"
    wf = workflow(f"inputs: [{source}]\nsteps: [{{use: resize, save: true, with: {{scale: 0.5}}}}, "
                  f"{{use: blend, with: {{amount: 0.5}}}}]\noutput: {output}\n")
    if "{step}" not in output:
        wf.write_text(wf.read_text().replace("save: true, ", ""))
    result = cli("validate", str(wf))
    assert result.returncode == 2, result.stderr
    assert "wf.yaml:3: output.sheet.path: " in result.stderr and "is also the file of " in result.stderr
    assert owner in result.stderr and "the contact sheet would overwrite it" in result.stderr


def test_an_empty_output_dir_is_refused(cli, workflow, tmp_path):
    """`--set output.dir=` wrote every result, the sheet and the run state into the workflow's folder."""
    png(tmp_path / "a.png")
    wf = workflow("inputs: [{glob: a.png}]\noutput: {dir: out}\n")
    result = cli("run", str(wf), "--set", "output.dir=")
    assert result.returncode == 2 and "output.dir: empty; name a folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "wf.yaml"]


@pytest.mark.video
def test_a_frames_pattern_without_a_frame_field_is_refused_at_validation(cli, workflow):
    """Every frame failed at run time instead (exit 3), the message pointing at output.pattern."""
    from conftest import REPO

    clip = REPO / "workflows" / "media" / "testsrc.mp4"
    frames = '  frames: {pattern: "f/{input.stem}.png"}\n'
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput:\n  images: false\n" + frames)
    result = cli("validate", str(wf))
    assert result.returncode == 2
    assert "wf.yaml:4: output.frames.pattern: 'f/{input.stem}.png' gives every frame" in result.stderr
    assert "'f/{input.stem}.{frame:04d}.png'" in result.stderr
