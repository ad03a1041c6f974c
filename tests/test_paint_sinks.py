"""The stroke list and painting animation reach files through their sinks."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import imageio.v3 as iio

REPO = Path(__file__).resolve().parent.parent
WF = """\
version: 1
inputs:
  - path: {image}
steps:
  - use: resize
    with: {{max_side: 96}}
  - use: paint_transformer
    with: {{strokes_json: {strokes}, animate: true, animate_frames: 2}}
output:
  dir: out
  strokes: true
  animation: {{fps: 4, hold: 2}}
"""


def test_strokes_json_and_gif_are_written(cli, workflow, tmp_path):
    image = REPO / "workflows" / "media" / "coffee.jpg"
    result = cli("run", str(workflow(WF.format(image=image, strokes="true"))))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out" / "coffee_strokes.json").read_text())
    assert data["strokes"] and {"x", "y", "w", "h", "angle", "r", "g", "b"} <= set(data["strokes"][0])
    gif = iio.imread(tmp_path / "out" / "coffee_painting.gif")
    assert gif.ndim == 4 and gif.shape[0] >= 4 and max(gif.shape[1:3]) == 96
    mode = (tmp_path / "out" / "coffee.png").stat().st_mode
    assert mode & stat.S_IRGRP  # outputs are readable like any file, not mkstemp's 0600


def test_strokes_output_without_the_step_option_is_one_line_error(cli, workflow):
    image = REPO / "workflows" / "media" / "coffee.jpg"
    result = cli("run", str(workflow(WF.format(image=image, strokes="false"))))
    assert result.returncode == 1
    assert "needs `strokes_json: true`" in result.stderr.strip().splitlines()[-1]
