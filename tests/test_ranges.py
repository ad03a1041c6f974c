"""Frame ranges are merged and spelled in one place (`stylefarm.ranges`): the task names, locks,
reports, farm exports and narrowed videos that use them say a selection the same way."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from stylefarm.export.job import compress
from stylefarm.ranges import frame_count, holds, merge, ranges_text
from stylefarm.runlock import Selection, covers, describe, task_selection
from stylefarm.runner import frames_text, probe_item
from stylefarm.shard import ItemSelection, parse_frames
from stylefarm.video import yuv
from stylefarm.video.sink import color_options, kept_ranges


@pytest.mark.parametrize(("ranges", "merged"), [
    ([], []),
    ([(5, 5)], [(5, 5)]),
    ([(1, 4), (5, 9)], [(1, 9)]),  # adjacent: one run of frames
    ([(1, 4), (6, 9)], [(1, 4), (6, 9)]),  # a one-frame gap stays a gap
    ([(1, 6), (4, 9)], [(1, 9)]),  # overlapping
    ([(1, 20), (4, 9)], [(1, 20)]),  # one inside the other
    ([(8, 12), (1, 4), (5, 9)], [(1, 12)]),  # unsorted
    ([(3, 3), (3, 3), (2, 2)], [(2, 3)]),  # repeated single frames
    ([(-5, -1), (0, 2)], [(-5, 2)]),  # negative frame numbers
])
def test_merge_sorts_and_joins_overlapping_and_adjacent_ranges(ranges, merged):
    assert merge(ranges) == merged
    assert merge(iter(ranges)) == merged  # any iterable, read once


@pytest.mark.parametrize(("ranges", "offset", "text"), [
    ([], 0, ""),
    ([(7, 7)], 0, "7"),
    ([(1001, 1012), (1020, 1020)], 0, "1001-1012,1020"),
    ([(0, 0), (2, 11)], 1001, "1001,1003-1012"),
    ([(-3, -1)], 0, "-3--1"),
])
def test_ranges_text_is_what_frames_reads_back(ranges, offset, text):
    assert ranges_text(ranges, offset) == text
    if text and offset == 0 and ranges[0][0] >= 0:
        assert parse_frames(text) == ranges


def test_holds_and_frame_count():
    ranges = [(1, 3), (7, 7)]
    assert [n for n in range(10) if holds(ranges, n)] == [1, 2, 3, 7]
    assert not holds(ranges, None) and not holds([], 1)
    assert frame_count(ranges) == 4 and frame_count([]) == 0


def test_every_place_spells_a_selection_the_same_way():
    frames = [(1001, 1012), (1020, 1020)]
    assert frames_text(frames) == "1001-1012,1020"
    assert frames_text([]) is None and frames_text(None) is None
    assert describe(Selection(tuple(frames), (2, 4))) == "--frames 1001-1012,1020 --shard 2/4"
    assert describe(Selection(())) == "--frames "
    nothing = ItemSelection(None, frames, None)
    assert nothing.nothing_selected() == "--frames 1001-1012,1020 selects nothing: the inputs have no numbered " \
                                         "frames (stills)"


def test_task_names_and_covers_merge_their_ranges():
    assert task_selection("frames-1010-1020_1001-1009_1015.shard-1-of-2") == Selection(((1001, 1020),), (1, 2))
    assert task_selection("frames-5").frames == ((5, 5),)
    assert covers([task_selection("frames-1-4"), task_selection("frames-5-9")], task_selection("frames-2-8"))
    assert not covers([task_selection("frames-1-4"), task_selection("frames-6-9")], task_selection("frames-2-8"))


def test_kept_ranges_shift_clip_and_merge():
    assert kept_ranges(0, 24, 1001, ((1012, 1014), (1001, 1005), (1006, 1008))) == [(0, 7), (11, 13)]
    assert kept_ranges(0, 24, 1001, ((900, 950),)) == []  # all before the video: nothing kept
    assert kept_ranges(0, None, 1001, ((1010, 5000),)) == [(9, 3999)]  # a length it cannot say: unclipped end
    assert kept_ranges(0, 24, 1001, ((1000, 1030),)) is None  # holds every frame: a plain run's video
    assert kept_ranges(0, 24, 1001, ()) is None


def test_compress_makes_ranges_of_frame_numbers():
    assert compress([7, 1, 3, 2, 3]) == [(1, 3), (7, 7)]
    assert compress([]) == []


def test_probe_item_stands_for_a_frame_or_a_still_of_the_job(tmp_path):
    plan = SimpleNamespace(base_dir=tmp_path)
    frame, still = probe_item(plan), probe_item(plan, None)
    assert Path(frame.source) == tmp_path / "probe.png" and frame.index == 0 and frame.frame == 0
    assert still.frame is None and probe_item(plan, 1001).frame == 1001


@pytest.mark.parametrize(("tags", "matrix"), [
    (["tv", "bt709", "progressive"], {"colorspace": "bt709", "full": False}),
    (["pc", "bt2020nc/bt2020/smpte2084"], {"colorspace": "bt2020nc", "full": True}),
    (["tv", "bt709/unknown/unknown"], {"colorspace": "bt709", "full": False}),
    (["bt470bg", "progressive"], {"colorspace": None, "full": False}),  # BT.601: OpenCV's own
    (["pc"], {"colorspace": None, "full": True}),
    ([], {"colorspace": None, "full": False}),
])
def test_the_converting_matrix_is_the_one_the_video_is_tagged_with(tags, matrix):
    assert yuv.source_matrix({"video": {"color": tags}}) == matrix
    options = color_options(tags)
    assert options.get("colorspace") == matrix["colorspace"] and (options.get("range") == "pc") == matrix["full"]
