"""Shared pixel-level controls (`plugins/_controls.py`): YIQ luminance transfer, colour matching, masks."""

from __future__ import annotations

import numpy as np
import pytest

from stylefarm.plugins import _controls as C

RNG = np.random.default_rng(7)


def _warm_image(h=24, w=32):
    """Mid-range colours (no clipping) with correlated channels."""
    base = RNG.random((h, w, 1)).astype(np.float32)
    return np.clip(0.2 + 0.5 * np.concatenate([base, 0.6 * base, 0.3 * base + 0.1], -1)
                   + 0.05 * RNG.random((h, w, 3)), 0, 1).astype(np.float32)


def test_yiq_round_trip_is_exact():
    img = RNG.random((5, 7, 3)).astype(np.float32)
    assert np.allclose(C.yiq_to_rgb(C.rgb_to_yiq(img)), img, atol=1e-5)


def test_recombined_luminance_keeps_the_contents_chroma_and_the_results_luma():
    content, stylized = _warm_image(), 0.3 + 0.4 * RNG.random((24, 32, 3)).astype(np.float32)
    out = C.recombine_luminance(stylized, content)
    yiq_out, yiq_c, yiq_s = C.rgb_to_yiq(out), C.rgb_to_yiq(content), C.rgb_to_yiq(stylized)
    inside = (out > 0.001).all(-1) & (out < 0.999).all(-1)  # unclipped pixels
    assert inside.mean() > 0.9
    assert np.abs(yiq_out[inside, 1:] - yiq_c[inside, 1:]).max() < 1e-4
    assert np.abs(yiq_out[inside, 0] - yiq_s[inside, 0]).max() < 1e-4


def test_luminance_only_is_grey_and_match_luminance_takes_the_contents_mean_and_std():
    style, content = RNG.random((20, 20, 3)).astype(np.float32) * 0.5, _warm_image()
    grey = C.luminance_only(style)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])
    y = C.match_luminance(style, content)[..., 0]
    yc = C.rgb_to_yiq(content)[..., 0]
    assert y.mean() == pytest.approx(yc.mean(), abs=1e-3) and y.std() == pytest.approx(yc.std(), rel=2e-2)


@pytest.mark.parametrize("mode", C.MATCH_MODES)
def test_match_gives_the_style_the_contents_colour_mean_and_covariance(mode):
    style = RNG.random((30, 30, 3)).astype(np.float32)
    content = _warm_image()
    out = C.match_color(style, content, mode, clip=False)
    mu_o, cov_o = C._colour_stats(out)
    mu_c, cov_c = C._colour_stats(content)
    assert np.allclose(mu_o, mu_c, atol=1e-5)
    assert np.allclose(cov_o, cov_c, atol=1e-5)
    assert not np.allclose(C._colour_stats(style)[1], cov_c, atol=1e-3)


def test_match_modes_are_different_maps_of_the_same_covariance():
    style, content = RNG.random((30, 30, 3)).astype(np.float32), _warm_image()
    outs = [C.match_color(style, content, m, clip=False) for m in C.MATCH_MODES]
    assert not np.allclose(outs[0], outs[1], atol=1e-3) and not np.allclose(outs[1], outs[2], atol=1e-3)
    with pytest.raises(ValueError, match="pca, chol, sym"):
        C.match_color(style, content, "lab")


def test_composite_puts_each_result_under_its_mask_and_background_elsewhere():
    red, blue, bg = (np.zeros((4, 6, 3), np.float32) for _ in range(3))
    red[..., 0], blue[..., 2], bg[..., 1] = 1, 1, 1
    left, right = np.zeros((4, 6), np.float32), np.zeros((4, 6), np.float32)
    left[:, :2], right[:, 4:] = 1, 1
    right[:, 1] = 1  # column 1 covered by both: average
    out = C.composite([red, blue], [left, right], background=bg)
    assert np.allclose(out[:, 0], [1, 0, 0]) and np.allclose(out[:, 5], [0, 0, 1])
    assert np.allclose(out[:, 1], [0.5, 0, 0.5]) and np.allclose(out[:, 3], [0, 1, 0])
    with pytest.raises(ValueError, match="one mask per image"):
        C.composite([red], [left, right])


def test_region_map_colours_become_masks_despite_edge_noise():
    region = np.zeros((10, 10, 3), np.float32)
    region[:, :5] = [1, 0, 0]
    region[:, 5:] = [0, 0, 1]
    noisy = np.clip(region + 0.03 * RNG.standard_normal(region.shape), 0, 1).astype(np.float32)
    red, blue, green = C.region_masks(noisy, ["#ff0000", "0,0,255", "#00ff00"])
    assert red[:, :5].all() and not red[:, 5:].any() and blue[:, 5:].all() and not green.any()


def test_bad_region_colour_is_a_one_line_error():
    with pytest.raises(ValueError, match="'#ff00': write '#rrggbb' or 'r,g,b'"):
        C.parse_color("#ff00")
    with pytest.raises(ValueError, match="0-255"):
        C.parse_color("300,0,0")


def test_a_mask_of_another_shape_than_the_picture_is_said_once(caplog):
    from stylefarm.plugins import _controls

    _controls._told.clear()
    portrait = np.ones((451, 300), np.float32)
    with caplog.at_level("WARNING", logger="stylefarm.masks"):
        for _ in range(3):
            _controls.fit_mask(portrait, 300, 451)  # over a landscape picture
        _controls.fit_mask(np.ones((150, 225), np.float32), 300, 451)  # a half-size mask of the right shape
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "a 300x451 mask is stretched over a 451x300 picture" in said[0]
