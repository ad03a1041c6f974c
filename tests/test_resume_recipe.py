"""Resume knows the recipe: changed options redo items and say why; unchanged ones are skipped."""

from __future__ import annotations

import json

import _test_steps
import yaml

from stylefarm.host import PluginHost
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.workflow import apply_override, read_yaml_file

WF = {"inputs": [{"generate": "noise", "count": 3, "width": 12, "height": 8}],
      "steps": [{"use": "resize", "with": {"scale": 0.5}},
                {"use": "blend", "input": "original", "with": {"amount": 0.5}}],
      "output": {"dir": "out"}}


def run(tmp_path, *overrides: str, force: bool = False, host: PluginHost | None = None,
        extra: dict | None = None) -> dict:
    data = json.loads(json.dumps(WF))
    data["steps"] += [extra] if extra else []
    for assignment in overrides:
        apply_override(data, assignment)
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(data))
    return Run(build_plan(read_yaml_file(path), tmp_path, host=host), force=force, progress=False).execute()


def test_changed_option_redoes_items_and_says_which(tmp_path):
    assert run(tmp_path)["counts"]["done"] == 3
    again = run(tmp_path)
    assert again["counts"] == {"done": 0, "skipped": 3, "failed": 0} and again["redone"] is None
    changed = run(tmp_path, "steps.1.with.amount=0.7")
    assert changed["counts"]["done"] == 3 and changed["counts"]["skipped"] == 0
    assert changed["redone"]["items"] == 3
    assert changed["redone"]["why"] == "1 step changed: blend.amount"
    assert run(tmp_path, "steps.1.with.amount=0.7")["counts"]["skipped"] == 3


def test_output_setting_and_added_step_count_as_changes(tmp_path):
    run(tmp_path)
    deeper = run(tmp_path, "output.bit_depth=16")
    assert deeper["redone"]["changes"] == ["output.bit_depth"]
    grown = run(tmp_path, "output.bit_depth=16", extra={"use": "resize", "id": "shrink", "with": {"scale": 0.5}})
    assert "shrink (added)" in grown["redone"]["why"]


def test_style_file_content_change_redoes(tmp_path):
    reference = tmp_path / "ref.png"
    import numpy as np

    from stylefarm.images import encode_image

    reference.write_bytes(encode_image(".png", np.zeros((4, 4, 3), np.float32), None, 8, 95))
    step = {"use": "color_transfer", "with": {"reference": str(reference)}}
    run(tmp_path, extra=step)
    reference.write_bytes(encode_image(".png", np.ones((4, 4, 3), np.float32), None, 8, 95))
    report = run(tmp_path, extra=step)
    assert report["redone"]["changes"] == ["color_transfer.files"]


def test_force_still_redoes_everything(tmp_path):
    run(tmp_path)
    assert run(tmp_path, force=True)["counts"]["done"] == 3


def test_failed_item_after_force_is_redone_by_the_next_run(tmp_path):
    host = PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])
    poison = {"use": "test_poison", "with": {"indexes": [1]}}
    clean = {"use": "test_poison", "with": {"indexes": []}}
    assert run(tmp_path, host=host, extra=clean)["counts"]["done"] == 3
    assert run(tmp_path, force=True, host=host, extra=poison)["counts"]["failed"] == 1
    # item 1's old "done" line from the first run must not make it skip now
    report = run(tmp_path, host=host, extra=clean)
    assert any(out.endswith("noise.0001.png") for out in report["outputs"])


def test_item_and_segment_keys_name_their_input_file():
    from stylefarm.manifest import input_files

    clip = "/plates/sh#010..v2.mov"
    assert input_files(f"{clip}#12") == [clip]
    assert input_files(f"segment:{clip}#0..{clip}#99") == [clip]
    assert input_files("noise#3") == []  # a generated input: nothing to re-deliver
