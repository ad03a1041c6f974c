"""`VideoSource.item_meta()` is what each of the video's items carries, so code that builds items
without decoding (`--dry-run`, segment planning) hands the video sink the same facts."""

from __future__ import annotations

import pytest
from video_fixtures import make_clip

from stylefarm.video.source import VideoSource

pytestmark = pytest.mark.video


def test_item_meta_is_what_the_items_of_a_frame_range_carry(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, size="64x48", audio=False)
    source = VideoSource(VideoSource.Options(path=str(clip), frames="3-8"), tmp_path)
    meta = source.item_meta()
    assert meta["video"]["first"] == 3 and meta["video"]["count"] == 6 and meta["video"]["whole"] is False
    assert [it.meta for it in source.items()] == [meta] * 6
    assert source.frame_item(5).meta == meta
