"""Flow-guided temporal consistency for any per-frame step (the step-level `temporal:` key).

Interface used by the host:
- `TemporalOptions` validates the `temporal:` value of a workflow step (`false`/`off`, a mode
  string such as `flow_blend`, or a mapping of options);
- `ChainRunner` builds one `TemporalFilter` per step that has it and calls
  `apply(inputs, outputs)` after every `process` call with the step's input and output items;
  `prepare(inputs)` (optional, before `process`) puts the warped previous result in
  `item.meta["temporal_prev"]` for optimisation steps that start from it.

Modes, with y_t the step's own result for frame t and o_t what the filter returns:
- `flow_blend`: o_t = y_t + s * c_t * (warp(o_{t-1}) - y_t), where warp brings the previous
  *output* onto frame t with the backward flow of the *input* frames and c_t in [0, 1] is the
  per-pixel flow confidence (0 where occluded; see stylefarm.flow). Disoccluded pixels and
  pixels the flow cannot explain keep this frame's own result, so nothing ghosts in.
- `ema`: o_t = (1 - s) y_t + s o_{t-1} (no motion compensation: the naive blend, for comparison).
A keyframe (o_t = y_t) starts every source, follows a gap in the frame indices, a scene cut
(histogram distance of the input frames) and a frame where too much is occluded.

State is per source and keyed by frame index, and frames of one source reach one filter in
order (executors route a temporal chain's source to one worker). Re-running frames the filter
has already seen (a batch isolated item by item after an error) uses the state from before
them, so a replay gives the same result. Frames marked `meta["temporal_warmup"]` (a shard's or
a resumed run's lead-in, see runner.py) go through the filter like any other; the runner
drops their results.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .item import Item, as_float

WARMUP_META = "temporal_warmup"
PREV_META = "temporal_prev"
PREV_WEIGHT_META = "temporal_prev_weight"


class TemporalOptions(BaseModel):
    """The `temporal:` key of a step. `temporal: flow_blend` is short for `{mode: flow_blend}`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "ema", "flow_blend"] = Field("flow_blend", description="flow_blend (motion-"
                                                      "compensated), ema (naive blend, for comparison) or off")
    strength: float = Field(0.8, ge=0.0, le=1.0, description="weight of the (warped) previous output where "
                            "the flow is fully trusted; 0 = per-frame result")
    max_side: int | None = Field(360, ge=16, description="longer side of the flow's working resolution "
                                 "(flow is scaled back to the frame); null = full resolution")
    preset: Literal["ultrafast", "fast", "medium"] = Field("medium", description="OpenCV DIS preset")
    interpolation: Literal["linear", "cubic"] = Field("cubic", description="resampling of the warped output "
                                                      "(cubic blurs less when warped frame after frame)")
    sigma_photo: float = Field(0.1, gt=0, description="input-frame difference after warping (0-1 scale) at "
                               "which confidence falls to 1/e: lighting changes and flow failures")
    sigma_fb: float = Field(1.0, gt=0, description="forward-backward flow error (pixels) scale of the confidence")
    cut_threshold: float = Field(0.4, gt=0, le=1, description="histogram (Bhattacharyya) distance between "
                                 "consecutive input frames that counts as a scene cut: keyframe")
    max_occlusion: float = Field(0.5, gt=0, le=1, description="fraction of occluded pixels above which the "
                                 "frame is a keyframe")
    warmup: int | None = Field(None, ge=0, le=100, description="frames processed (not written) before a "
                               "shard's or resumed run's first frame; default from strength")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """YAML `off` parses as False; `true` means the defaults; a string is the mode."""
        if data is None or data is False:
            return {"mode": "off"}
        if data is True:
            return {}
        if isinstance(data, str):
            return {"mode": data.strip().lower()}
        return data

    @property
    def warmup_frames(self) -> int:
        """Enough lead-in for the previous state's weight to fall under 10% (s^n <= 0.1)."""
        if self.mode == "off":
            return 0
        if self.warmup is not None:
            return self.warmup
        if self.strength <= 0.1:
            return 1
        if self.strength >= 1.0:
            return 30
        return min(30, math.ceil(math.log(0.1) / math.log(self.strength)))


@dataclass
class _Frame:
    """What the filter remembers of one processed frame."""

    input: np.ndarray  # decoded input frame (flow is computed between inputs)
    output: np.ndarray  # the filtered result o_t


class _SourceState:
    """Recent frames of one source, by index. Entries from before the previous call's first
    frame are dropped: enough to replay the last call (item-by-item isolation) and no more."""

    def __init__(self) -> None:
        self.frames: OrderedDict[int, _Frame] = OrderedDict()
        self.last_start: int | None = None

    def begin(self, first: int) -> None:
        keep_from = min(first, self.last_start if self.last_start is not None else first) - 1
        for index in [i for i in self.frames if i < keep_from]:
            del self.frames[index]
        self.last_start = first


def histogram_distance(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Bhattacharyya distance of per-channel colour histograms (0 same, 1 disjoint)."""
    def hist(img: np.ndarray) -> np.ndarray:
        small = img[:: max(1, img.shape[0] // 128), :: max(1, img.shape[1] // 128)]
        h = np.stack([np.histogram(small[..., c], bins=bins, range=(0.0, 1.0))[0] for c in range(3)])
        return h / max(1, h.sum(axis=1, keepdims=True).max())

    ha, hb = hist(a), hist(b)
    bc = np.sqrt(ha * hb).sum(axis=1).mean()
    return float(math.sqrt(max(0.0, 1.0 - bc)))


def _input_frame(item: Item) -> np.ndarray | None:
    """The decoded input frame as float32 [0, 1] (8-bit video frames may travel as uint8)."""
    frame = item.original if item.original is not None else item.image
    return as_float(frame) if frame is not None else None


class TemporalFilter:
    """Per-source state across frames of one step (one instance per worker, frames in order)."""

    def __init__(self, options: TemporalOptions):
        self.options = options
        self.states: dict[str, _SourceState] = {}
        self.stats = {"frames": 0, "keyframes": 0}

    def _cv_interp(self) -> int:
        import cv2

        return cv2.INTER_CUBIC if self.options.interpolation == "cubic" else cv2.INTER_LINEAR

    def _begin(self, inputs: list[Item]) -> None:
        firsts: dict[str, int] = {}
        for item in inputs:
            firsts[item.source] = min(firsts.get(item.source, item.index), item.index)
        for source, first in firsts.items():
            self.states.setdefault(source, _SourceState()).begin(first)

    def _pair(self, prev: _Frame, frame: np.ndarray, item: Item):
        from .flow import flow_pair

        key = (item.source, item.index - 1, item.index)
        return flow_pair(prev.input, frame, key, self.options.max_side, self.options.preset)

    def apply(self, inputs: list[Item], outputs: list[Item]) -> list[Item]:
        if self.options.mode == "off":
            return outputs
        self._begin(inputs)
        return [self._one(item_in, out) for item_in, out in zip(inputs, outputs)]

    def _one(self, item_in: Item, out: Item) -> Item:
        state = self.states[item_in.source]
        frame = _input_frame(item_in)
        prev = state.frames.get(item_in.index - 1)
        result, info = self._filter(prev, frame, as_float(out.image), item_in)
        result = np.clip(result, 0.0, 1.0).astype(np.float32, copy=False)
        result.setflags(write=False)  # the state keeps it: nobody may edit it afterwards
        state.frames[item_in.index] = _Frame(frame, result)
        state.frames.move_to_end(item_in.index)
        self.stats["frames"] += 1
        self.stats["keyframes"] += info["keyframe"]
        done = out.with_image(result)
        done.meta = {**out.meta, "temporal": info}
        return done

    def _filter(self, prev: _Frame | None, frame: np.ndarray, y: np.ndarray,
                item: Item) -> tuple[np.ndarray, dict[str, Any]]:
        """(o_t, what happened): the blend, or y itself on a keyframe."""
        opts = self.options
        if prev is None or prev.output.shape != y.shape or prev.input.shape != frame.shape:
            return y, {"keyframe": True, "reason": "start" if prev is None else "size"}
        cut = histogram_distance(prev.input, frame)
        if cut > opts.cut_threshold:
            return y, {"keyframe": True, "reason": "cut", "cut_distance": round(cut, 4)}
        if opts.mode == "ema":
            return y + opts.strength * (prev.output - y), {"keyframe": False, "cut_distance": round(cut, 4)}
        warped, weight, occluded = self._warped_prev(prev, frame, y.shape[:2], item)
        info = {"keyframe": False, "cut_distance": round(cut, 4), "occluded": round(occluded, 4)}
        if occluded > opts.max_occlusion:
            return y, {**info, "keyframe": True, "reason": "occlusion"}
        return y + (opts.strength * weight)[..., None] * (warped - y), info

    def _warped_prev(self, prev: _Frame, frame: np.ndarray, shape: tuple[int, int],
                     item: Item) -> tuple[np.ndarray, np.ndarray, float]:
        """(previous output warped onto this frame, confidence at output size, occluded fraction)."""
        import cv2

        from .flow import warp

        pair = self._pair(prev, frame, item)
        confidence = pair.confidence_cur(self.options.sigma_fb, self.options.sigma_photo)
        height, width = shape
        if confidence.shape != (height, width):
            confidence = cv2.resize(confidence, (width, height), interpolation=cv2.INTER_LINEAR)
        warped = warp(prev.output, pair.bw, self._cv_interp())
        return warped, np.clip(confidence, 0.0, 1.0), float(pair.occluded_cur.mean())

    def prepare(self, inputs: list[Item]) -> list[Item]:
        """Before `process`: items whose previous frame is known get `meta["temporal_prev"]`
        (the previous output warped onto this frame, float32 H x W x 3) and
        `meta["temporal_prev_weight"]` (H x W confidence, 0 where occluded): an optimisation step
        initialises from it and may add a temporal loss (Ruder et al. 2016) weighted by it.
        Only the first frame of a batch can have it (batch_size: 1 gives it to every frame)."""
        if self.options.mode == "off":
            return inputs
        out = []
        for item in inputs:
            state = self.states.get(item.source)
            prev = state.frames.get(item.index - 1) if state else None
            frame = _input_frame(item)
            if prev is None or frame is None or prev.input.shape != frame.shape:
                out.append(item)
                continue
            warped, weight, _ = self._warped_prev(prev, frame, prev.output.shape[:2], item)
            item = item.with_image(item.image) if item.image is not None else item
            item.meta = {**item.meta, PREV_META: np.clip(warped, 0, 1).astype(np.float32),
                         PREV_WEIGHT_META: weight.astype(np.float32)}
            out.append(item)
        return out


def chain_warmup(chain: list) -> int:
    """Lead-in frames a shard of this chain needs: the most any of its temporal steps asks for."""
    return max((call.temporal.warmup_frames for call in chain if getattr(call, "temporal", None) is not None),
               default=0)


class LeadIn:
    """Driver-side memory of the last frames handed out per source, so that a batch retried on
    another worker (whose filter has no state for that source) is preceded by warm-up copies of
    the frames before it. Holds copies of the items (the runner frees the originals' pixels)."""

    def __init__(self, frames: int, sources: int = 32):
        self.frames, self.sources = frames, sources
        self.recent: OrderedDict[str, OrderedDict[int, Item]] = OrderedDict()

    def remember(self, items: list[Item]) -> None:
        if not self.frames:
            return
        from dataclasses import replace

        for item in items:
            kept = self.recent.setdefault(item.source, OrderedDict())
            self.recent.move_to_end(item.source)
            kept[item.index] = replace(item, meta={**item.meta, WARMUP_META: True})
            while len(kept) > self.frames + 64:  # a unit may be retried after later ones were sent
                kept.popitem(last=False)
        while len(self.recent) > self.sources:
            self.recent.popitem(last=False)

    def before(self, items: list[Item]) -> list[Item]:
        """Warm-up items for the consecutive frames just before `items[0]` (oldest first)."""
        if not self.frames or not items:
            return []
        kept = self.recent.get(items[0].source, {})
        lead: list[Item] = []
        index = items[0].index - 1
        while len(lead) < self.frames and index in kept:
            lead.insert(0, kept[index])
            index -= 1
        return lead
