"""Variable frame rate and offset timelines with the real ffmpeg: `vfr: passthrough` gives every
stored frame once (not "damaged" gaps), segment mode never shifts a retimed frame at a seam,
and audio stays on the first video frame's time when the streams start at different times."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import _test_steps
import numpy as np
import pytest
import yaml
from video_fixtures import make_clip, read_code

from stylefarm.api import run_workflow
from stylefarm.errors import EXIT_OK
from stylefarm.host import PluginHost
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.video.ffmpeg import ffmpeg_exe
from stylefarm.video.probe import probe
from stylefarm.video.source import VideoSource
from stylefarm.workflow import read_yaml_file

pytestmark = pytest.mark.video
FRAMES = 45  # 20 frames at 30 fps, then 25 at 10 fps
VFR_PTS = "setpts='if(lt(N,20),N/30,20/30+(N-20)/10)/TB'"


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("vfr") / "vfr.mp4", frames=FRAMES, rate="30",
                     extra=["-vf", VFR_PTS, "-fps_mode", "passthrough", "-video_track_timescale", "15360"])


@pytest.fixture(scope="module")
def beep_clip(tmp_path_factory) -> Path:
    """48 frames at 24 fps whose timeline starts at 10 s, the AAC audio 21 ms before the video
    (its priming); a beep at video time 1.0 s."""
    path = tmp_path_factory.mktemp("beep") / "beep.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=24",
                    "-f", "lavfi", "-i", "aevalsrc='if(between(t,1,1.1),0.8*sin(2*PI*1000*t),0)':s=48000:d=2",
                    "-frames:v", "48", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-output_ts_offset", "10", str(path)], check=True, capture_output=True)
    return path


def stored_codes(path: Path) -> list[int]:
    """Codes of every stored frame, none duplicated or dropped by a rate conversion."""
    info = probe(path)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-fps_mode", "passthrough", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return [read_code(f) for f in np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3)]


def beep_at(path: Path) -> float:
    """Seconds from the output's start to the beep's onset in its audio."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", "48000",
                          "-f", "f32le", "-"], check=True, capture_output=True).stdout
    loud = np.nonzero(np.abs(np.frombuffer(raw, np.float32)) > 0.3)[0]
    assert len(loud), "no beep in the output"
    return loud[0] / 48000


def source(path: Path, **options) -> VideoSource:
    return VideoSource(VideoSource.Options(path=str(path), **options), path.parent)


def read(src: VideoSource) -> list[tuple[int, int]]:
    """(index, code) per item; a failing item (a frame called damaged) raises."""
    return [(it.index, read_code(it.load().image)) for it in src.items()]


def test_clip_is_variable_rate(vfr_clip):
    from stylefarm.video.probe import frame_times

    info = probe(vfr_clip)
    assert info.vfr and info.frames == FRAMES and info.damage is None
    times = frame_times(vfr_clip, FRAMES)
    assert times[19:22] == pytest.approx([19 / 30, 20 / 30, 20 / 30 + 0.1], abs=1e-3)


def test_passthrough_items_are_every_stored_frame_once(vfr_clip):
    assert read(source(vfr_clip, vfr="passthrough")) == [(i, i) for i in range(FRAMES)]


@pytest.mark.parametrize("frames", ["21-25", "19-20", "30-31"])
def test_passthrough_range_starts_at_its_stored_frame(vfr_clip, frames):
    lo, _, hi = frames.partition("-")
    wanted = range(int(lo), int(hi or lo) + 1)
    assert read(source(vfr_clip, vfr="passthrough", frames=frames)) == [(i, i) for i in wanted]


@pytest.mark.parametrize("steps", ["[{use: resize, with: {scale: 0.5}}]", "[]"], ids=["piped", "relayed"])
def test_passthrough_workflow_writes_every_stored_frame_once(vfr_clip, workflow, tmp_path, steps):
    wf = workflow(f"""
inputs: [{{path: {vfr_clip}, vfr: passthrough}}]
steps: {steps}
output: {{dir: out, images: false, video: {{path: v.mp4, preset: veryfast}}}}
""")
    report = run_workflow(wf)
    assert report["counts"] == {"done": FRAMES, "skipped": 0, "failed": 0}
    out = probe(tmp_path / "out" / "v.mp4")
    assert out.frames == FRAMES and abs(out.duration - probe(vfr_clip).duration) < 0.1  # at the average rate
    assert stored_codes(out.path) == list(range(FRAMES))


def test_range_on_an_offset_timeline_starts_at_its_first_frame(tmp_path):
    clip = make_clip(tmp_path / "late.mp4", frames=48, rate="24", extra=["-output_ts_offset", "10"])
    assert read(source(clip, frames="18-21")) == [(i, i) for i in range(18, 22)]
    assert probe(clip).lead > 0.01  # AAC priming: the audio starts before the video


@pytest.mark.parametrize("frames, beep", [(None, 1.0), ("18-35", 0.25)])
def test_audio_stays_in_sync_when_it_starts_before_the_video(beep_clip, workflow, tmp_path, frames, beep):
    wf = workflow(f"""
inputs: [{{path: {beep_clip}{f', frames: {frames}' if frames else ''}}}]
steps: [{{use: resize, with: {{scale: 0.5}}}}]
output: {{dir: out, images: false, video: {{path: v.mp4, preset: veryfast}}}}
""")
    run_workflow(wf)
    assert beep_at(tmp_path / "out" / "v.mp4") == pytest.approx(beep, abs=0.003)


# --- segment mode -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])


def run_plan(host, tmp: Path, clip: Path, out: str, unit: str, **input_options) -> dict:
    data = {"version": 1, "inputs": [{"path": str(clip), **input_options}],
            "steps": [{"use": "resize", "with": {"scale": 0.5}}, {"use": "blend", "with": {"amount": 0.5}}],
            "output": {"dir": out, "pattern": "{input.stem}.{frame:04d}.png", "video": {"path": "v.mp4"}},
            "execution": {"device": "cpu", "batch_size": 4, "unit": unit, "segment_frames": 10}}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(data))
    runner = Run(build_plan(read_yaml_file(path), tmp, host=host), progress=False)
    report = runner.execute()
    assert runner.exit_code == EXIT_OK
    return report


def pngs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.png"))}


def test_retimed_vfr_input_runs_in_frame_mode_said_once(host, vfr_clip, tmp_path, caplog):
    framed = run_plan(host, tmp_path, vfr_clip, "frame", "frame")
    with caplog.at_level(logging.INFO, logger="stylefarm.segment"):
        report = run_plan(host, tmp_path, vfr_clip, "seg", "segment")
    assert framed["unit"] == report["unit"] == "frame"
    said = [r for r in caplog.records if "segment mode off" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and "vfr.mp4" in said[0].getMessage()
    assert pngs(tmp_path / "seg") == pngs(tmp_path / "frame") and len(pngs(tmp_path / "seg")) == FRAMES


def test_passthrough_vfr_segments_write_what_frame_mode_writes(host, vfr_clip, tmp_path):
    framed = run_plan(host, tmp_path, vfr_clip, "frame", "frame", vfr="passthrough")
    report = run_plan(host, tmp_path, vfr_clip, "seg", "segment", vfr="passthrough")
    assert framed["unit"] == "frame" and report["unit"] == "segment" and len(report["segments"]) == 4
    assert pngs(tmp_path / "seg") == pngs(tmp_path / "frame") and len(pngs(tmp_path / "seg")) == FRAMES
    assert probe(tmp_path / "seg" / "v.mp4").frames == FRAMES


def test_segment_join_keeps_audio_in_sync_when_it_starts_before_the_video(host, beep_clip, tmp_path):
    report = run_plan(host, tmp_path, beep_clip, "seg", "segment")
    assert report["unit"] == "segment"
    assert beep_at(tmp_path / "seg" / "v.mp4") == pytest.approx(1.0, abs=0.003)
