"""Optical flow between input frames: known synthetic motion is recovered, warping aligns the
frames, occlusion masks flag what panned into view, and each pair is computed once."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from stylefarm import flow

PHOTO = Path(__file__).resolve().parents[1] / "workflows" / "media" / "astronaut.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def shifted_pair(photo: np.ndarray, dx: int, dy: int, h: int = 180, w: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """prev and cur crops where the content moves by (+dx, +dy) pixels: prev(p) = cur(p + (dx, dy))."""
    y0, x0 = 100, 120
    prev = photo[y0:y0 + h, x0:x0 + w]
    cur = photo[y0 - dy:y0 - dy + h, x0 - dx:x0 - dx + w]
    return np.ascontiguousarray(prev), np.ascontiguousarray(cur)


@pytest.mark.parametrize("max_side", [None, 120])
def test_flow_recovers_a_known_translation_also_from_a_smaller_working_resolution(photo, max_side):
    prev, cur = shifted_pair(photo, 6, -4)
    pair = flow.compute_pair(prev, cur, max_side=max_side)
    fw, bw = pair.full(pair.fw), pair.full(pair.bw)
    assert fw.shape == (180, 240, 2)
    inner = (slice(20, -20), slice(20, -20))
    assert np.median(fw[inner][..., 0]) == pytest.approx(6, abs=0.3)
    assert np.median(fw[inner][..., 1]) == pytest.approx(-4, abs=0.3)
    assert np.median(bw[inner][..., 0]) == pytest.approx(-6, abs=0.3)
    assert np.median(bw[inner][..., 1]) == pytest.approx(4, abs=0.3)


def test_warping_with_the_flow_aligns_the_frames(photo):
    prev, cur = shifted_pair(photo, 5, 3)
    pair = flow.compute_pair(prev, cur, max_side=None)
    aligned = flow.warp(prev, pair.full(pair.bw))
    inner = (slice(10, -10), slice(10, -10))
    before = np.abs(prev - cur)[inner].mean()
    after = np.abs(aligned - cur)[inner].mean()
    assert after < 0.1 * before


def test_occlusion_marks_the_disoccluded_border_and_little_else(photo):
    prev, cur = shifted_pair(photo, 6, -4)  # content moves right and up: new pixels enter left and bottom
    pair = flow.compute_pair(prev, cur, max_side=None)
    occ = pair.occluded_cur
    assert occ[:, :6].mean() > 0.95 and occ[-4:, :].mean() > 0.95
    assert occ[10:-10, 12:-10].mean() < 0.02
    left = pair.occluded_prev  # prev's pixels that leave the view: right and top
    assert left[:, -6:].mean() > 0.95 and left[:4, :].mean() > 0.95


def test_occlusion_thresholds_follow_lai_et_al():
    """A consistent flow is clear; a backward flow that disagrees by more than the threshold is
    occluded; a flow discontinuity is a motion boundary."""
    fw = np.zeros((20, 20, 2), np.float32)
    fw[..., 0] = 2.0
    assert not flow.occlusion(fw, -fw)[:, 3:-3].any()
    bad = -fw.copy()
    bad[5:10, 5:10, 0] += 1.0  # |fw + bw|^2 = 1 > 0.01 * (4 + 1) + 0.5
    assert flow.occlusion(fw, bad)[5:10, 5:9].all()
    step = np.zeros((20, 20, 2), np.float32)
    step[:, 10:, 0] = 1.0
    boundary = flow.occlusion(-step, step)
    assert boundary[:, 9].all() and not boundary[:, 14:16].any()


def test_flow_pair_is_computed_once_per_key_and_never_reused_for_other_pixels(photo):
    flow.clear_cache()
    prev, cur = shifted_pair(photo, 2, 1)
    first = flow.flow_pair(prev, cur, ("clip", 0, 1), max_side=120)
    assert flow.flow_pair(prev.copy(), cur.copy(), ("clip", 0, 1), max_side=120) is first
    _, other = shifted_pair(photo, 4, 4)
    assert flow.flow_pair(other, cur, ("clip", 0, 1), max_side=120) is not first


def test_confidence_is_zero_where_occluded_and_high_where_the_flow_explains_the_frame(photo):
    prev, cur = shifted_pair(photo, 6, 0)
    pair = flow.compute_pair(prev, cur, max_side=None)
    conf = pair.confidence_cur()
    assert conf[:, :6].max() == 0.0
    assert np.median(conf[20:-20, 20:-20]) > 0.8
