"""Segment a video into frame ranges, encode each alone, join without re-encoding: frame-exact."""

from __future__ import annotations

from fractions import Fraction

import pytest
from video_fixtures import decode_codes, make_clip

from stylefarm.api import run_workflow
from stylefarm.video.probe import probe
from stylefarm.video.segments import segment_ranges

pytestmark = pytest.mark.video


def test_segment_ranges_cover_every_frame_once():
    assert segment_ranges(60, 25) == [(0, 24), (25, 49), (50, 59)]
    assert segment_ranges(10, 10, first=1001) == [(1001, 1010)]


def test_segments_joined_by_cli_are_frame_exact_with_audio_once(tmp_path, workflow, cli):
    clip = make_clip(tmp_path / "shot.mp4", frames=60)
    segments = []
    for lo, hi in segment_ranges(60, 25):
        wf = workflow(f"""
inputs: [{{path: {clip}, frames: {lo}-{hi}}}]
output: {{dir: out, images: false,
          video: {{path: "{{input.stem}}.seg{{frame:04d}}.mp4", preset: veryfast, audio: none}}}}
""", name=f"seg{lo}.yaml")
        run_workflow(wf)
        segments.append(tmp_path / "out" / f"shot.seg{lo:04d}.mp4")
    assert [probe(s).frames for s in segments] == [25, 25, 10]
    joined = tmp_path / "joined.mp4"
    proc = cli("join", *map(str, segments), "-o", str(joined), "--audio-from", str(clip))
    assert proc.returncode == 0, proc.stderr
    info = probe(joined)
    assert (info.frames, info.fps, info.audio_codec) == (60, Fraction(24000, 1001), "aac")
    assert abs(info.duration - probe(clip).duration) <= 1 / 23.976
    assert decode_codes(joined) == list(range(60))
