"""AdaIN tiled inference: same picture as one pass, global statistics, bounded tiles.

Uses the random weights of the shared parity fixture (../shared/reference/adain); the
shipped demo photo and style from workflows/media are the inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stylefarm.plugins.adain.ops import official_resize
from stylefarm.plugins.adain.step import AdaINOptions, AdaINStep

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))
FIXTURE = SHARED / "reference" / "adain" / "fixture.pt"
MEDIA = REPO / "workflows" / "media"
STYLE = str(MEDIA / "style" / "hubble_deep_field.jpg")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A medium frame whose height (292) is not a multiple of 8: border tiles are partial."""
    from stylefarm.images import read_image

    if not FIXTURE.is_file():
        pytest.skip(f"AdaIN parity fixture not found at {FIXTURE} (set STYLEFARM_SHARED to ../shared)")
    return official_resize(read_image(MEDIA / "chelsea.jpg")[0], 292, False)[:, :300]


def stylize(image: np.ndarray, **options) -> tuple[np.ndarray, AdaINStep]:
    step = AdaINStep(AdaINOptions(style=STYLE, weights=str(FIXTURE), content_size=0, style_size=128,
                                  **options))
    step.setup("cpu")
    return step.stylize([image])[0], step


def test_tiled_result_matches_one_pass_on_a_medium_image(photo, monkeypatch):
    """2 x 2 tiles of 256 px, default 128 px overlap.

    Tolerance 1e-3 (a quarter of one 8-bit level): tile edges see reflection padding
    instead of neighbours, but that error stays inside the zero-weight margin and the low
    end of the feathered ramp (measured ~4e-6). Per-tile AdaIN statistics or an unblended
    seam would be off by > 1e-2.
    """
    full, _ = stylize(photo)
    calls = []
    original = AdaINStep._encode_packed
    monkeypatch.setattr(AdaINStep, "_encode_packed", lambda self, t: calls.append(t.shape) or original(self, t))
    tiled, _ = stylize(photo, tile=256)
    assert len(calls) == 4 and all(max(shape[-2:]) == 256 // 8 for shape in calls)
    assert tiled.shape == full.shape == (292, 300, 3)
    assert np.abs(tiled - full).max() < 1e-3


def test_frame_that_fits_one_tile_takes_the_official_path(photo):
    full, _ = stylize(photo[:96, :128])
    tiled, _ = stylize(photo[:96, :128], tile=128, tile_overlap=64)
    assert np.array_equal(full, tiled)


@pytest.mark.parametrize("tile, overlap", [(100, 64), (256, 60), (128, 128)])
def test_tile_sizes_off_the_encoder_grid_are_rejected(tile, overlap):
    with pytest.raises(ValueError, match="multiples of 8"):
        AdaINOptions(style="s.jpg", tile=tile, tile_overlap=overlap)


def test_relative_style_mask_and_weights_resolve_against_the_workflow(tmp_path):
    context = {"base_dir": tmp_path}
    opts = AdaINOptions.model_validate(
        {"style": ["a.jpg", "/abs/b.jpg"], "mask": ["m1.png", "m2.png"],
         "weights": {"vgg": "w/vgg.pth", "decoder": "w/dec.pth"}}, context=context)
    assert opts.style == [str(tmp_path / "a.jpg"), "/abs/b.jpg"]
    assert opts.mask == [str(tmp_path / "m1.png"), str(tmp_path / "m2.png")]
    assert opts.weights == {"vgg": str(tmp_path / "w/vgg.pth"), "decoder": str(tmp_path / "w/dec.pth")}
    one_file = AdaINOptions.model_validate({"style": "a.jpg", "weights": "both.pth"}, context=context)
    assert one_file.weights == str(tmp_path / "both.pth")
