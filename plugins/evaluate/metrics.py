"""Temporal-stability and fidelity metrics of a stylized video against its input (numpy only).

E_warp follows the evaluation protocol of Lai et al. 2018 ("Learning Blind Video Temporal
Consistency"): flow and occlusion come from the *input* frames; output frame t+1 is warped
back onto frame t with the forward flow, and the squared difference is averaged over the
non-occluded pixels (and channels) of frame t; pairs are averaged per shot, then per video.
Pairs across a scene cut of the input are left out (they have no motion to compensate).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stylefarm.flow import flow_pair, warp
from stylefarm.temporal import histogram_distance

CUT_THRESHOLD = 0.4  # same defaults as the temporal filter's keyframe reset
MAX_OCCLUSION = 0.5


@dataclass
class PairScore:
    """Scores of the pair (t-1, t)."""

    index: int  # t
    e_warp: float | None  # None across a cut
    frame_diff: float  # mean squared difference of consecutive outputs (no flow)
    input_diff: float  # the same on the input frames (what the motion alone gives)
    occluded: float  # occluded fraction of frame t-1
    cut: bool


def warp_error(out_prev: np.ndarray, out_cur: np.ndarray, fw: np.ndarray, occluded_prev: np.ndarray) -> float:
    """Lai et al.: mean over non-occluded pixels and channels of (warp(O_t, F_{t-1->t}) - O_{t-1})^2."""
    warped = warp(out_cur, fw)
    keep = ~occluded_prev
    if not keep.any():
        keep = np.ones_like(keep)
    diff = (warped - out_prev)[keep]
    return float(np.mean(diff.astype(np.float64) ** 2))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on luma in [0, 1]."""
    x = cv2.cvtColor(np.ascontiguousarray(a, np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(np.ascontiguousarray(b, np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def match_size(output: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Outputs of another size (a resize step) are compared at the input's size."""
    if output.shape[:2] == like.shape[:2]:
        return output
    return cv2.resize(output, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_AREA)


def pair_scores(outputs: list[np.ndarray], inputs: list[np.ndarray], max_side: int | None = None,
                key: str | None = None) -> list[PairScore]:
    """Scores of every consecutive pair; flow at full resolution by default (the protocol)."""
    scores = []
    for t in range(1, len(inputs)):
        x0, x1 = inputs[t - 1], inputs[t]
        o0, o1 = match_size(outputs[t - 1], x0), match_size(outputs[t], x1)
        pair = flow_pair(x0, x1, (key, t - 1, t) if key else None, max_side)
        occluded = pair.occluded_prev
        frac = float(occluded.mean())
        cut = histogram_distance(x0, x1) > CUT_THRESHOLD or frac > MAX_OCCLUSION
        e = None
        if not cut:
            occ_full = occluded if occluded.shape == x0.shape[:2] else cv2.resize(
                occluded.astype(np.uint8), (x0.shape[1], x0.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            e = warp_error(o0, o1, pair.full(pair.fw), occ_full)
        scores.append(PairScore(t, e, mse(o0, o1), mse(x0, x1), frac, cut))
    return scores


def shots(scores: list[PairScore], frames: int) -> list[tuple[int, int]]:
    """(first, last) frame of each shot: a cut between t-1 and t starts a shot at t."""
    starts = [0] + [s.index for s in scores if s.cut]
    ends = [s - 1 for s in starts[1:]] + [frames - 1]
    return list(zip(starts, ends))


def mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None
