"""The host checks every step result: wrong pictures fail that item, named, and the run goes on."""

from __future__ import annotations

import _test_steps
import numpy as np
import pytest
import yaml
from _ray_fixture import ray_cluster  # noqa: F401

from stylefarm.errors import EXIT_PARTIAL
from stylefarm.host import PluginHost
from stylefarm.images import read_image
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.workflow import read_yaml_file

MODES = {1: "uint8", 2: "scale255", 3: "chw", 4: "nan", 5: "gray", 6: "inplace"}
EXPECTED = {1: "uint8 image, expected float32", 2: "(0-255 values? divide by 255)", 3: "(channels-first?",
            4: "NaN/inf values", 5: "shape (12, 16), expected (H, W, 3)", 6: "read-only"}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])


def run_bad(host, tmp_path, backend: str) -> tuple[Run, dict]:
    data = {"inputs": [{"generate": "noise", "count": 8, "width": 16, "height": 12}],
            "steps": [{"use": "test_bad_output", "with": {"modes": MODES}},
                      {"use": "blend", "input": "original", "save": True, "with": {"amount": 1.0}}],
            "output": {"dir": "out", "pattern": "{input.stem}_{step}.{frame:04d}.png"},
            "execution": {"backend": backend, "device": "cpu", "batch_size": 4, "actors": 1}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(data))
    run = Run(build_plan(read_yaml_file(path), tmp_path, host=host), progress=False)
    return run, run.execute()


def check_report(run: Run, report: dict, tmp_path) -> None:
    assert run.exit_code == EXIT_PARTIAL
    failures = {int(f["item"].split("#")[1]): f["error"] for f in report["failures"]}
    assert set(failures) == set(MODES)
    for index, text in EXPECTED.items():
        assert "step 'test_bad_output'" in failures[index] and text in failures[index], failures[index]
    assert report["counts"]["done"] == 2  # items 0 and 7 are fine and written
    for index in (0, 7):  # the original branch was not touched by the step before it
        written, _, _ = read_image(tmp_path / "out" / f"noise_blend.{index:04d}.png")
        source = np.random.default_rng(index).random((12, 16, 3), dtype=np.float32)
        assert np.abs(written - source).max() <= 1 / 255


def test_wrong_step_outputs_fail_alone_locally(host, tmp_path):
    run, report = run_bad(host, tmp_path, "local")
    check_report(run, report, tmp_path)


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_wrong_step_outputs_fail_alone_on_ray(host, tmp_path):
    run, report = run_bad(host, tmp_path, "ray")
    check_report(run, report, tmp_path)


def test_values_within_rounding_of_the_range_are_clipped_not_failed():
    from stylefarm.contract import output_problem
    from stylefarm.item import Item

    item = Item("x", 0, image=np.full((2, 2, 3), 1.00001, np.float32))
    assert output_problem(item) is None and item.image.max() == 1.0
    item.image = np.full((2, 2, 3), 1.01, np.float32)
    assert "expected [0, 1]" in output_problem(item)


def test_a_0_255_result_of_a_step_declaring_uint8_says_it_was_handed_8_bit_frames():
    from stylefarm.contract import output_problem
    from stylefarm.item import Item

    item = Item("x", 0, image=np.full((2, 2, 3), 204.0, np.float32))  # `it.image * 0.8` on a uint8 frame
    assert "(0-255 values? divide by 255)" in output_problem(item)
    said = output_problem(item, uint8_ok=True)
    assert "declares 'uint8' in pixel_types, so it may be handed 8-bit frames" in said and "as_float" in said
