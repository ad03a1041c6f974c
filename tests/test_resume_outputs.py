"""Resume trusts an output only at the size it was written: a truncated or replaced frame is
redone (and said), an unreadable one of the same size is named in one line, older manifests
without sizes still resume; a sequence's re-delivered frame is redone like a replaced input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from video_fixtures import decode_codes, make_clip

from stylefarm.images import read_image


def stylefarm(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylefarm", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def job(tmp_path):
    make_clip(tmp_path / "in.mp4", frames=8, audio=False)
    wf = {"version": 1, "inputs": [{"path": "in.mp4"}], "steps": [{"use": "resize", "with": {"width": 80}}],
          "output": {"dir": "out", "images": False, "frames": {"pattern": "frames/{input.stem}.{frame:04d}.png"},
                     "video": {"path": "{input.stem}_s.mp4"}}}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(wf))
    done = stylefarm("run", "wf.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_a_truncated_and_a_replaced_frame_are_redone_and_named(job):
    frames = job / "out" / "frames"
    (frames / "in.0005.png").write_bytes(b"not a picture")
    cut = frames / "in.0002.png"
    cut.write_bytes(cut.read_bytes()[:100])
    plan = stylefarm("run", "wf.yaml", "--dry-run", cwd=job)
    assert "redone 2 because their outputs changed size since written: frames/in.0002.png, frames/in.0005.png" \
        in plan.stdout + plan.stderr
    again = stylefarm("run", "wf.yaml", cwd=job)
    assert again.returncode == 0, again.stderr
    assert "done 2, skipped 6" in again.stdout + again.stderr
    for name in ("in.0002.png", "in.0005.png"):
        assert read_image(frames / name)[0].shape[:2] == (60, 80)
    assert decode_codes(job / "out" / "in_s.mp4") == list(range(8))
    report = json.loads((job / "out" / ".stylefarm" / "report.json").read_text())
    assert report["redone"]["outputs"] == {"items": 2, "files": ["frames/in.0002.png", "frames/in.0005.png"]}
    assert "done 0, skipped 8" in (lambda r: r.stdout + r.stderr)(stylefarm("run", "wf.yaml", cwd=job))


def test_an_unreadable_frame_of_the_written_size_is_named_in_one_line(job):
    frame = job / "out" / "frames" / "in.0004.png"
    frame.write_bytes(bytes(frame.stat().st_size))
    again = stylefarm("run", "wf.yaml", cwd=job)
    assert again.returncode == 1
    error = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "in.0004.png" in error[0] and "--force" in error[0]
    assert "Traceback" not in again.stderr


def test_manifest_lines_without_sizes_still_resume(job):
    manifest = job / "out" / ".stylefarm" / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all("sizes" in entry for entry in lines)
    manifest.write_text("".join(json.dumps({k: v for k, v in e.items() if k != "sizes"}) + "\n" for e in lines))
    again = stylefarm("run", "wf.yaml", cwd=job)
    assert again.returncode == 0 and "done 0, skipped 8" in again.stdout + again.stderr


def test_a_redelivered_sequence_frame_is_redone_and_named(tmp_path):
    from stylefarm.images import encode_image

    plates = tmp_path / "plates"
    plates.mkdir()
    for frame in range(1001, 1005):
        (plates / f"sh010.{frame}.png").write_bytes(encode_image(".png", np.full((6, 8, 3), 0.2, np.float32),
                                                                 None, 8, 95))
    wf = {"version": 1, "inputs": [{"sequence": "plates/sh010.%04d.png", "fps": 24}],
          "steps": [{"use": "resize", "with": {"width": 4}}], "output": {"dir": "out"}}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(wf))
    assert stylefarm("run", "wf.yaml", cwd=tmp_path).returncode == 0
    (plates / "sh010.1003.png").write_bytes(encode_image(".png", np.ones((6, 8, 3), np.float32), None, 8, 95))
    again = stylefarm("run", "wf.yaml", cwd=tmp_path)
    said = again.stdout + again.stderr
    assert again.returncode == 0 and "done 1, skipped 3" in said, said
    assert "redone 1 because its input changed: sh010.1003.png" in said
    assert read_image(tmp_path / "out" / "sh010.1003.png")[0].min() == 1.0
    assert "done 0, skipped 4" in (lambda r: r.stdout + r.stderr)(stylefarm("run", "wf.yaml", cwd=tmp_path))
