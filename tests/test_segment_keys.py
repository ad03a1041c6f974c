"""A segment's manifest key, `segment:<first item key>..<last item key>`, is read in one place
(`stylefarm.manifest.segment_ends`): resume finds its input file, the job report its frames."""

from __future__ import annotations

import pytest

from stylefarm.manifest import input_files, segment_ends
from stylefarm.report import finished_items


@pytest.mark.parametrize("key, ends", [
    ("segment:/v/a.mp4#0../v/a.mp4#7", ("/v/a.mp4#0", "/v/a.mp4#7")),
    ("segment:/p/x#1..y/s.mov#8../p/x#1..y/s.mov#15", ("/p/x#1..y/s.mov#8", "/p/x#1..y/s.mov#15")),  # `#1..` in a path
    ("segment:/i/a.png#0../i/z.png#0", ("/i/a.png#0", "/i/z.png#0")),  # image files: two sources
    ("segment:noise#-1..noise#3", ("noise#-1", "noise#3")),
])
def test_segment_key_splits_where_its_two_ends_name_one_source(key, ends):
    assert segment_ends(key) == ends


def test_resume_and_the_report_read_a_segment_key_alike():
    key = "segment:/p/x#1..y/s.mov#8../p/x#1..y/s.mov#11"
    assert input_files(key) == ["/p/x#1..y/s.mov"]
    assert finished_items([key], []) == {f"/p/x#1..y/s.mov#{i}" for i in range(8, 12)}
