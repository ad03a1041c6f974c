"""Bad workflows: one-line errors naming file, line and field; exit code 2; nothing written."""

from __future__ import annotations

import pytest

from stylefarm.errors import EXIT_INVALID, WorkflowError
from stylefarm.workflow import apply_override, parse_yaml

GOOD = """\
version: 1
inputs:
  - generate: gradient
    count: 2
    width: 64
    height: 48
steps:
  - use: resize
    with: {scale: 0.5}
output:
  dir: out
"""


def assert_one_line_error(result, *needles):
    assert result.returncode == EXIT_INVALID, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_missing_workflow_file_names_it(cli, tmp_path):
    assert_one_line_error(cli("run", str(tmp_path / "nope.yaml")), "workflow file not found", "nope.yaml")


def test_yaml_syntax_error_names_line(cli, workflow):
    path = workflow(GOOD.replace("  - use: resize", "  - use: [resize"))
    assert_one_line_error(cli("validate", str(path)), "wf.yaml:", "YAML syntax error")


def test_wrong_option_type_names_file_line_and_field(cli, workflow):
    path = workflow(GOOD.replace("{scale: 0.5}", "{scale: big}"))
    line = assert_one_line_error(cli("run", str(path)), "wf.yaml:9", "steps[0].with.scale", "'big'")
    assert "number" in line


def test_unknown_step_lists_available_and_closest(cli, workflow):
    path = workflow(GOOD.replace("use: resize", "use: resise"))
    assert_one_line_error(cli("run", str(path)), "wf.yaml:8", "unknown step 'resise'", "color_transfer",
                          "did you mean 'resize'")


def test_unknown_option_is_rejected(cli, workflow):
    path = workflow(GOOD.replace("{scale: 0.5}", "{scale: 0.5, sharpen: 2}"))
    assert_one_line_error(cli("run", str(path)), "steps[0].with.sharpen", "unknown field")


def test_python_object_tag_is_refused(cli, workflow, tmp_path):
    path = workflow(GOOD + "evil: !!python/object/apply:os.system ['touch pwned']\n")
    assert_one_line_error(cli("run", str(path)), "wf.yaml:12", "python object tags are not allowed")
    assert not (tmp_path / "pwned").exists()


def test_glob_matching_nothing_is_an_error(cli, workflow, tmp_path):
    path = workflow(GOOD.replace("  - generate: gradient\n    count: 2\n    width: 64\n    height: 48\n",
                                 "  - glob: stills/*.jpg\n"))
    assert_one_line_error(cli("run", str(path)), "wf.yaml:3", "matched no image files")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field,value", [("pattern", '"../../escape.png"'), ("dir", "out/{input.stem}/../../x")])
def test_output_escaping_the_output_dir_is_rejected(cli, workflow, field, value):
    text = GOOD.replace("  dir: out\n", "  dir: out\n" if field == "pattern" else "")
    path = workflow(text + f"  {field}: {value}\n")
    assert_one_line_error(cli("run", str(path)), f"output.{field}")


def test_unknown_pattern_field_is_rejected(cli, workflow):
    path = workflow(GOOD + '  pattern: "{input.stme}.png"\n')
    assert_one_line_error(cli("validate", str(path)), "output.pattern", "input.stem")


def test_invalid_execution_device(cli, workflow):
    path = workflow(GOOD + "execution:\n  device: gpu0\n")
    assert_one_line_error(cli("validate", str(path)), "execution.device", "cuda:N")


def test_previous_outputs_untouched_by_invalid_rerun(cli, workflow, tmp_path):
    path = workflow(GOOD)
    assert cli("run", str(path)).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").glob("*.png")}
    assert len(before) == 2
    bad = workflow(GOOD.replace("{scale: 0.5}", "{scale: -1}"))
    assert cli("run", str(bad), "--force").returncode == EXIT_INVALID
    assert {p: p.read_bytes() for p in (tmp_path / "out").glob("*.png")} == before


def test_overrides_set_nested_fields_and_reject_bad_paths():
    data = parse_yaml(GOOD, "wf.yaml").data
    apply_override(data, "steps.0.with.scale=0.25")
    apply_override(data, "execution.batch_size=2")
    assert data["steps"][0]["with"]["scale"] == 0.25
    assert data["execution"]["batch_size"] == 2
    with pytest.raises(WorkflowError, match="expected KEY.PATH=VALUE"):
        apply_override(data, "nonsense")
    with pytest.raises(WorkflowError, match="no such field"):
        apply_override(data, "steps.5.with.scale=1")


def test_cli_override_is_validated_like_the_file(cli, workflow):
    path = workflow(GOOD)
    assert_one_line_error(cli("validate", str(path), "--set", "execution.batch_size=0"), "execution.batch_size")


def test_schema_includes_every_installed_step(cli):
    import json

    result = cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    names = [v["properties"]["use"]["const"] for v in schema["properties"]["steps"]["items"]["oneOf"]]
    assert {"resize", "color_transfer", "blend"} <= set(names)
    assert "max_side" in schema["$defs"]["step_resize"]["properties"]
    assert "sheet" in schema["$defs"]["OutputSpec"]["properties"]


@pytest.mark.parametrize("sink, needle", [
    ("video: {path: '{input.nope}.mp4'}", "output.video.path: bad output pattern '{input.nope}.mp4'"),
    ("video: {path: ../../x.mp4}", "output.video.path: output path"),
    ("frames: {pattern: '{fram}.png'}", "output.frames.pattern: bad output pattern"),
    ("sheet: {path: sheet.pdf}", "output.sheet.path: .pdf: not a picture format"),  # was: after the whole job
    ("animation: {path: '{input.stem}.png'}", "output.animation.path: the animation is a GIF: name a .gif file"),
])
def test_sink_file_names_are_checked_before_the_run(cli, workflow, sink, needle):
    """A sink's own name template (video path, frames pattern) is checked as output.pattern is:
    file, line, field, exit 2, instead of an error once the first frame is written."""
    path = workflow(GOOD + f"  {sink}\n")
    assert_one_line_error(cli("run", str(path)), "wf.yaml:12", needle)
    assert not (path.parent / "out").exists()


@pytest.mark.parametrize("step, needle", [
    ("{use: color_transfer, with: {reference: nope.jpg}}", "wf.yaml:8: steps[0].with.reference: file not found"),
    ("{use: gatys, with: {style: [a.png, nope.jpg]}}", "steps[0].with.style[1]: file not found"),
])
def test_a_missing_option_file_is_a_workflow_error(cli, workflow, tmp_path, step, needle):
    """Named by file, line and field before the run starts (it was the step set-up's ValueError)."""
    import numpy as np

    from stylefarm.images import encode_image

    (tmp_path / "a.png").write_bytes(encode_image(".png", np.zeros((4, 4, 3), np.float32), None, 8))  # there
    path = workflow(GOOD.replace("  - use: resize\n    with: {scale: 0.5}\n", f"  - {step}\n"))
    assert_one_line_error(cli("run", str(path)), needle, "nope.jpg")
    assert not (tmp_path / "out").exists()
    assert_one_line_error(cli("validate", str(path)), needle)  # validate builds the plan too


def test_validate_document_does_not_look_for_option_files(tmp_path):
    """The schema/loader check of documented workflows needs no files (their style images are examples)."""
    from stylefarm.plan import validate_document

    doc = parse_yaml(GOOD.replace("  - use: resize\n    with: {scale: 0.5}\n",
                                  "  - {use: color_transfer, with: {reference: nope.jpg}}\n"), "wf.yaml")
    assert validate_document(doc, tmp_path).steps[0].use == "color_transfer"


@pytest.mark.parametrize("step, field", [("color_transfer", "reference: {junk}"),
                                         ("cin26", "style: 1, mask: [{junk}]")])
def test_a_style_image_or_mask_that_is_not_a_picture_is_a_workflow_error(cli, workflow, tmp_path, step, field):
    """A text or HTML file saved as .jpg failed the step's set-up at run time (exit 1, no line)."""
    junk = tmp_path / "junk.jpg"
    junk.write_text("<html>a download page, not the picture</html>")
    wf = workflow(GOOD.replace("  - use: resize\n    with: {scale: 0.5}",
                               f"  - use: {step}\n    with: {{{field.format(junk='junk.jpg')}}}"))
    result = cli("validate", str(wf))
    assert_one_line_error(result, "wf.yaml:9: steps[0].with.", "not a picture stylefarm can read", str(junk))
