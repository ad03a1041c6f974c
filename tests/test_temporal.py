"""The step-level `temporal:` filter: flow_blend removes flicker without ghosting, ema is the
naive baseline, keyframes reset on cuts/gaps/occlusion, state is per source and replays are exact."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from test_temporal_steps import flicker

from stylefarm.item import Item
from stylefarm.plugins.evaluate.metrics import mean, pair_scores, ssim
from stylefarm.temporal import PREV_META, PREV_WEIGHT_META, TemporalFilter, TemporalOptions

MEDIA = Path(__file__).resolve().parents[1] / "workflows" / "media"


def load(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(MEDIA / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


@pytest.fixture(scope="module")
def pan() -> list[np.ndarray]:
    """A synthetic camera pan over a shipped photo: 1 px down, 2 px right per frame."""
    photo = load("astronaut.jpg")
    return [np.ascontiguousarray(photo[40 + t:40 + t + 120, 60 + 2 * t:60 + 2 * t + 160]) for t in range(10)]


def run(filt: TemporalFilter, frames: list[np.ndarray], source: str = "clip", start: int = 0) -> list[Item]:
    out = []
    for t, frame in enumerate(frames, start=start):
        item = Item(source=source, index=t, image=frame, original=frame)
        out.append(filt.apply([item], [item.with_image(flicker(frame, t))])[0])
    return out


@pytest.mark.parametrize(("value", "mode"), [(False, "off"), ("off", "off"), (None, "off"), (True, "flow_blend"),
                                             ("ema", "ema"), ({"mode": "flow_blend", "strength": 0.5}, "flow_blend")])
def test_options_accept_off_a_mode_string_and_a_mapping(value, mode):
    assert TemporalOptions.model_validate(value).mode == mode


def test_options_reject_unknown_modes_and_keys():
    with pytest.raises(ValidationError):
        TemporalOptions.model_validate("blur")
    with pytest.raises(ValidationError):
        TemporalOptions.model_validate({"mode": "ema", "strenght": 0.5})


def test_flow_blend_halves_the_warping_error_without_losing_fidelity_to_the_input(pan):
    per_frame = [flicker(f, t) for t, f in enumerate(pan)]
    blended = [it.image for it in run(TemporalFilter(TemporalOptions()), pan)]
    e_off = mean([s.e_warp for s in pair_scores(per_frame, pan)])
    e_blend = mean([s.e_warp for s in pair_scores(blended, pan)])
    assert e_blend < 0.5 * e_off
    ssim_off = np.mean([ssim(o, x) for o, x in zip(per_frame, pan)])
    ssim_blend = np.mean([ssim(o, x) for o, x in zip(blended, pan)])
    assert ssim_blend > ssim_off - 0.02  # no ghosting: structure of the current frame is kept


def test_ema_ghosts_where_flow_blend_does_not(pan):
    ema = [it.image for it in run(TemporalFilter(TemporalOptions(mode="ema")), pan)]
    blend = [it.image for it in run(TemporalFilter(TemporalOptions()), pan)]
    assert np.mean([ssim(o, x) for o, x in zip(blend, pan)]) > np.mean([ssim(o, x) for o, x in zip(ema, pan)]) + 0.05


def test_a_scene_cut_is_a_keyframe_so_nothing_of_the_previous_shot_bleeds_in(pan):
    other = load("coffee.jpg")[50:170, 100:260]
    frames = [*pan[:4], np.ascontiguousarray(other), *pan[4:6]]
    out = run(TemporalFilter(TemporalOptions()), frames)
    assert out[4].meta["temporal"]["keyframe"] and out[4].meta["temporal"]["reason"] == "cut"
    np.testing.assert_array_equal(out[4].image, flicker(frames[4], 4))
    assert not out[3].meta["temporal"]["keyframe"]


def test_a_frame_mostly_occluded_is_a_keyframe(pan):
    filt = TemporalFilter(TemporalOptions(max_occlusion=0.05))
    shifted = [pan[0], np.ascontiguousarray(np.roll(pan[0], 30, axis=1))]  # 30 px jump: a wide new band
    out = run(filt, shifted)
    assert out[1].meta["temporal"]["reason"] == "occlusion"


def test_a_gap_in_frame_indices_starts_again_from_a_keyframe(pan):
    filt = TemporalFilter(TemporalOptions())
    run(filt, pan[:3])
    later = run(filt, pan[5:6], start=5)[0]
    assert later.meta["temporal"] == {"keyframe": True, "reason": "start"}


def test_state_is_per_source_when_two_videos_interleave(pan):
    alone = [it.image for it in run(TemporalFilter(TemporalOptions()), pan[:5])]
    filt = TemporalFilter(TemporalOptions())
    mixed = []
    for t in range(5):
        for source, frame in (("a", pan[t]), ("b", pan[9 - t])):
            item = Item(source=source, index=t, image=frame, original=frame)
            mixed.append(filt.apply([item], [item.with_image(flicker(frame, t))])[0])
    for t in range(5):
        np.testing.assert_array_equal(mixed[2 * t].image, alone[t])


def test_replaying_a_batch_item_by_item_gives_the_same_results(pan):
    """ChainRunner re-runs a failed batch one item at a time: the filter must not see it as new frames."""
    filt = TemporalFilter(TemporalOptions())
    items = [Item(source="clip", index=t, image=f, original=f) for t, f in enumerate(pan[:6])]
    results = [it.with_image(flicker(it.image, it.index)) for it in items]
    first = filt.apply(items[:3], results[:3]) + filt.apply(items[3:], results[3:])
    again = [filt.apply([items[t]], [results[t]])[0] for t in range(3, 6)]
    for a, b in zip(first[3:], again):
        np.testing.assert_array_equal(a.image, b.image)


def test_prepare_gives_the_warped_previous_result_and_its_confidence(pan):
    filt = TemporalFilter(TemporalOptions())
    done = run(filt, pan[:2])
    item = Item(source="clip", index=2, image=pan[2], original=pan[2])
    prepared = filt.prepare([item])[0]
    prev, weight = prepared.meta[PREV_META], prepared.meta[PREV_WEIGHT_META]
    assert prev.shape == pan[2].shape and weight.shape == pan[2].shape[:2]
    assert weight[:, -2:].max() == 0.0 and weight[-1:].max() == 0.0  # what panned in has no previous result
    assert np.median(weight) > 0.8
    moved = done[1].image[1:, 2:]  # the pan moves content by (-2, -1) px per frame
    assert np.abs(prev[:-1, :-2] - moved)[5:-5, 5:-5].mean() < 0.02
    assert filt.prepare([Item(source="clip", index=7, image=pan[7], original=pan[7])])[0].meta == {}


def test_warmup_frames_default_from_strength():
    assert TemporalOptions(strength=0.8).warmup_frames == 11
    assert TemporalOptions(strength=0.5).warmup_frames == 4
    assert TemporalOptions(warmup=2).warmup_frames == 2
    assert TemporalOptions(mode="off").warmup_frames == 0


@pytest.mark.parametrize(("yaml_value", "expected"), [("off", None), ("false", None), ("flow_blend", "flow_blend"),
                                                      ("{mode: ema, strength: 0.3}", "ema")])
def test_workflow_step_key_is_validated_into_the_plan(workflow, tmp_path, yaml_value, expected):
    from stylefarm.plan import build_plan
    from stylefarm.workflow import read_yaml_file

    path = workflow(f"""version: 1
inputs: [{{generate: noise, count: 2, width: 8, height: 8}}]
steps:
  - use: resize
    with: {{scale: 0.5}}
    temporal: {yaml_value}
output: {{dir: out}}
""")
    call = build_plan(read_yaml_file(path), tmp_path).chain[-1]
    assert (call.temporal.mode if call.temporal else None) == expected
    assert call.is_temporal == (expected is not None)


def test_a_bad_temporal_value_is_a_one_line_error_naming_the_key(workflow, tmp_path):
    from stylefarm.errors import StylefarmError
    from stylefarm.plan import build_plan
    from stylefarm.workflow import read_yaml_file

    path = workflow("""version: 1
inputs: [{generate: noise, count: 2, width: 8, height: 8}]
steps:
  - use: resize
    with: {scale: 0.5}
    temporal: {mode: flow_blend, strenght: 2}
output: {dir: out}
""")
    with pytest.raises(StylefarmError, match=r"steps\[0\]\.temporal\.strenght"):
        build_plan(read_yaml_file(path), tmp_path)


def test_uint8_input_frames_give_the_same_result_as_floats(pan):
    """8-bit video frames may travel as uint8 until a step needs floats; `original` stays uint8."""
    frames8 = [(f * 255 + 0.5).astype(np.uint8) for f in pan[:4]]
    floats8 = [f.astype(np.float32) / 255 for f in frames8]
    as_float = run(TemporalFilter(TemporalOptions()), floats8)
    filt = TemporalFilter(TemporalOptions())
    for t, (f8, ff) in enumerate(zip(frames8, floats8)):
        item = Item(source="clip", index=t, image=ff, original=f8)
        got = filt.apply([item], [item.with_image(flicker(ff, t))])[0]
        np.testing.assert_allclose(got.image, as_float[t].image, atol=1e-6)
        assert got.meta["temporal"]["keyframe"] == (t == 0)
