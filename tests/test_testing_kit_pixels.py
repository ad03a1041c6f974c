"""`check_step_contract` feeds a step every pixel type it declares, made the way the host makes
them, so a step that only works on float32 fails in the kit instead of on every video frame."""

from __future__ import annotations

import numpy as np
import pytest

from stylefarm.item import Batch
from stylefarm.step import Step
from stylefarm.testing import StepContractError, check_step_contract
from stylefarm.video import yuv


class Dim(Step):
    """Declares uint8 but multiplies as if every frame were float: 0-204 floats on video."""

    name = "test_dim"
    uses_device = False
    pixel_types = ("uint8", "float32")

    def process(self, batch: Batch) -> Batch:
        return [it.with_image(it.image * 0.8) for it in batch]


class Dim8(Dim):
    """The same effect done right on 8-bit frames (rounded, kept uint8)."""

    name = "test_dim8"

    def process(self, batch: Batch) -> Batch:
        out = []
        for it in batch:
            if it.image.dtype == np.uint8:
                out.append(it.with_image(np.round(it.image * 0.8).astype(np.uint8)))
            else:
                out.append(it.with_image(it.image * 0.8))
        return out


class Bgr(Step):
    """Swaps red and blue; declares yuv420p, where the same slicing mirrors the planes instead."""

    name = "test_bgr"
    uses_device = False
    pixel_types = ("uint8", "float32", "yuv420p")

    def process(self, batch: Batch) -> Batch:
        return [it.with_image(it.image[..., ::-1]) for it in batch]


class Threshold(Step):
    """Blacks out dark pixels with a float threshold, on uint8 too: a valid result, another picture."""

    name = "test_threshold"
    uses_device = False
    pixel_types = ("uint8", "float32")

    def process(self, batch: Batch) -> Batch:
        return [it.with_image(np.where(it.image > 0.5, it.image, 0).astype(it.image.dtype)) for it in batch]


class KeepsSize(Step):
    """Halves RGB frames but hands yuv420p frames back untouched (forgot that layout)."""

    name = "test_keeps_size"
    uses_device = False
    pixel_types = ("uint8", "float32", "yuv420p")

    def process(self, batch: Batch) -> Batch:
        return [it if it.layout == yuv.LAYOUT else it.with_image(it.image[::2, ::2]) for it in batch]


def test_kit_feeds_uint8_to_a_step_that_declares_it():
    with pytest.raises(StepContractError) as caught:
        check_step_contract(Dim)
    message = str(caught.value)
    assert message.startswith("fed uint8 frames because the step declares pixel_types=('uint8', 'float32'): ")
    assert "step 'test_dim' returned values in [" in message and "so it may be handed 8-bit frames" in message


def test_kit_passes_a_correct_uint8_step():
    check_step_contract(Dim8)


def test_kit_catches_a_yuv_step_that_scrambles_the_planes():
    with pytest.raises(StepContractError, match=r"^fed yuv420p frames because the step declares pixel_types="
                                                r"\('uint8', 'float32', 'yuv420p'\): frame 0: the Y plane differs"):
        check_step_contract(Bgr)


def test_kit_catches_a_uint8_result_that_is_another_picture():
    with pytest.raises(StepContractError, match=r"^fed uint8 frames .*frame 0: the result differs from the step's "
                                                r"result for the same picture as float32: max \|diff\|"):
        check_step_contract(Threshold)


def test_kit_catches_a_yuv_result_of_another_size():
    with pytest.raises(StepContractError, match=r"^fed yuv420p frames .*a yuv420p result of 48x32, but 24x16"):
        check_step_contract(KeepsSize)


@pytest.mark.parametrize("pixel_types, why", [(("unit8", "float32"), "unknown pixel type 'unit8'"),
                                              (("float32", "yuv420p"), '"yuv420p" needs "uint8"'),
                                              (("uint8",), '"float32" is missing'),
                                              ("float32", "must be a tuple, not 'float32'")])
def test_kit_refuses_pixel_types_the_host_cannot_feed(pixel_types, why):
    class Declares(Dim8):
        name = "test_declares"

    Declares.pixel_types = pixel_types
    with pytest.raises(StepContractError, match=why) as caught:
        check_step_contract(Declares)
    assert str(caught.value).startswith(f"step 'test_declares' declares pixel_types={pixel_types!r}, which the host ")


def test_kit_and_host_refuse_the_same_pixel_types_before_running_the_step():
    from stylefarm.host import ContractError, _check_step, pixel_types_problem

    class Broken(Dim8):
        name = "test_broken"
        pixel_types = ("float32", "yuv420p")

        def process(self, batch: Batch) -> Batch:
            raise AssertionError("a step the host refuses must not run")

    with pytest.raises(StepContractError) as caught:
        check_step_contract(Broken)
    assert str(caught.value).endswith(pixel_types_problem(Broken.pixel_types))
    with pytest.raises(ContractError, match="uint8 wherever yuv420p is"):
        _check_step(Broken)


@pytest.mark.parametrize("options", [{"scale": 0.5}, {"scale": 2}, {"width": 31}, {"width": 20, "height": 14}])
def test_builtin_resize_keeps_the_contract_in_every_pixel_type(options):
    check_step_contract("resize", options)
