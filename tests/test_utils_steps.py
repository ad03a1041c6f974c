"""The classical built-in steps do what they say."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from stylefarm.item import Item
from stylefarm.plugins.utils.steps import (
    BlendOptions,
    BlendStep,
    ColorTransferOptions,
    ColorTransferStep,
    ResizeOptions,
    ResizeStep,
    rgb_to_lab,
    target_size,
)


def item(h=40, w=60, seed=0):
    img = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    return Item(source="x.png", index=0, image=img, original=img)


@pytest.mark.parametrize("opts,size", [({"width": 30}, (30, 20)), ({"height": 10}, (15, 10)),
                                       ({"scale": 0.5}, (30, 20)), ({"max_side": 45}, (45, 30)),
                                       ({"max_side": 100}, (60, 40)), ({"scale": 1, "multiple_of": 16}, (48, 32))])
def test_resize_sizes(opts, size):
    assert target_size(60, 40, ResizeOptions(**opts)) == size
    out = ResizeStep(ResizeOptions(**opts)).process([item()])[0]
    assert out.image.shape == (size[1], size[0], 3) and out.image.dtype == np.float32


def test_resize_needs_exactly_one_rule():
    with pytest.raises(ValidationError, match="one of"):
        ResizeOptions(scale=0.5, max_side=10)


def test_color_transfer_matches_reference_statistics(tmp_path, content_images):
    step = ColorTransferStep(ColorTransferOptions(reference=str(content_images[0])))
    step.setup("cpu")
    src = item(64, 64, seed=1)
    out = step.process([src])[0].image
    lab_out, ref = rgb_to_lab(out).reshape(-1, 3), step.reference.reshape(-1, 3)
    assert np.allclose(lab_out.mean(0), ref.mean(0), atol=3.0)
    half = ColorTransferStep(ColorTransferOptions(reference=str(content_images[0]), strength=0.0))
    half.setup("cpu")
    assert np.allclose(half.process([src])[0].image, src.image)


def test_blend_mixes_with_original():
    src = item()
    processed = src.with_image(np.ones_like(src.image))
    out = BlendStep(BlendOptions(amount=0.25)).process([processed])[0].image
    assert np.allclose(out, 0.25 + 0.75 * src.original, atol=1e-6)
