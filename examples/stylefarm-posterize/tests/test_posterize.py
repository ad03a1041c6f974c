"""The example plugin's own tests, written with stylefarm's testing kit (copy them with the plugin)."""

import numpy as np
import pytest

from stylefarm.testing import check_step_contract, make_item, run_step


@pytest.mark.parametrize("options", [{"levels": 3}, {"levels": 4, "dither": True}])
def test_posterize_keeps_the_step_contract(options):
    check_step_contract("posterize", options)


def test_posterize_leaves_only_the_given_levels():
    (out,) = run_step("posterize", {"levels": 3}, [make_item(seed=1)])
    assert set(np.unique(np.round(out.image, 3))) <= {0.0, 0.5, 1.0}


def test_posterize_in_a_workflow(stylefarm_workflow, stylefarm_weights):
    report = stylefarm_workflow("inputs: [{generate: gradient, width: 40, height: 30}]\n"
                                "steps: [{use: posterize, with: {levels: 2}}]\n")
    assert report["counts"] == {"done": 1, "skipped": 0, "failed": 0}
