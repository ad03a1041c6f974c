"""Frame-range selection: `frames: 100-250`, `1001-`, `42`, or timecodes.

- Frame numbers are inclusive at both ends (`100-250` is 151 frames).
- `HH:MM:SS.sss` times (or `SS.sss` with a trailing `s`) select the frames whose presentation
  time lies in [start, end): `00:00:01-00:00:02` at 24 fps is frames 24..47.
- `HH:MM:SS:FF` SMPTE timecodes (non-drop-frame, nominal rate = fps rounded) are inclusive,
  like frame numbers. Drop-frame (`;`) timecodes are not supported.
Times are relative to the first frame of the video (index 0), frame numbers are as shown
(for video: `start_number` + index).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)s?$")
_SMPTE = re.compile(r"^(\d+):(\d+):(\d+):(\d+)$")


def parse_range(text: str | int, fps: Fraction, first: int, last: int) -> tuple[int, int]:
    """`text` -> inclusive (first, last) frame numbers, checked against the available [first, last]."""
    text = str(text).strip()
    if "," in text:  # a video input decodes one stretch; the command line's --frames takes lists
        raise ValueError(f"frame range {text!r}: an input's frames: takes one range (e.g. 1-3); for several, "
                         f"select them with --frames {text} on the command line, or give one input per range")
    start_text, sep, end_text = text.partition("-")
    if not sep:
        end_text = start_text
    lo = _point(start_text, fps, first, is_end=False) if start_text else first
    hi = _point(end_text, fps, first, is_end=True) if end_text else last
    if lo > hi:
        raise ValueError(f"frame range {text!r} is empty (start {lo} after end {hi})")
    if lo < first or hi > last:
        raise ValueError(f"frame range {text!r} (frames {lo}-{hi}) is outside the available frames {first}-{last}")
    return lo, hi


def _point(token: str, fps: Fraction, first: int, is_end: bool) -> int:
    token = token.strip()
    if token.isdigit():
        return int(token)
    smpte = _SMPTE.match(token)
    if smpte:
        h, m, s, f = (int(g) for g in smpte.groups())
        nominal = round(fps)
        if f >= nominal:
            raise ValueError(f"timecode {token!r}: frame field {f} must be below {nominal}")
        return first + ((h * 60 + m) * 60 + s) * nominal + f
    if (":" in token or token.endswith("s")) and _TIME.match(token):
        return first + _time_to_index(token, fps, is_end)
    raise ValueError(f"bad frame range part {token!r}: expected a frame number, HH:MM:SS.sss or HH:MM:SS:FF")


def _time_to_index(token: str, fps: Fraction, is_end: bool) -> int:
    """Start: first frame at or after t; end (exclusive): last frame before t."""
    parts = token.rstrip("s").split(":")
    seconds = Fraction(0)
    for part in parts:
        seconds = seconds * 60 + Fraction(part)
    position = seconds * fps
    return math.ceil(position) - 1 if is_end else math.ceil(position)
