"""Relayed videos (`Plan.relay`): when no step and no other output needs the pixels, one ffmpeg
decodes and encodes each video. The file must be the piped path's, byte for byte, and the run
must report, fail and cancel as the piped path does."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from video_fixtures import decode_codes, make_clip

from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.video import ffmpeg
from stylefarm.workflow import read_yaml_file

STYLEFARM = Path(sys.executable).parent / "stylefarm"


def plan_for(tmp: Path, clip: Path, steps: str = "[]", video: str = "{path: out.mp4}", extra: str = "",
             inputs: str = ""):
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "wf.yaml"
    path.write_text(f"inputs: [{{path: {clip}{inputs}}}]\nsteps: {steps}\n"
                    f"output: {{dir: out, images: false, video: {video}{extra}}}\n")
    return build_plan(read_yaml_file(path), tmp)


def run_both(tmp: Path, clip: Path, **kwargs) -> tuple[dict, dict]:
    """The same workflow relayed (as planned) and piped (relay turned off): both reports."""
    relayed, piped = plan_for(tmp / "relay", clip, **kwargs), plan_for(tmp / "pipe", clip, **kwargs)
    assert relayed.relay
    piped.relay = False
    return Run(relayed, progress=False).execute(), Run(piped, progress=False).execute()


def same_file(a: Path, b: Path) -> bool:
    """mp4: the same bytes; Matroska writes a random segment id, so there the same packets
    (every stream's timestamps and checksums) and the same tags."""
    if a.suffix == ".mp4":
        return a.read_bytes() == b.read_bytes()
    def look(path: Path) -> tuple[str, str]:
        packets = ffmpeg.run(["-v", "error", "-i", str(path), "-map", "0", "-c", "copy", "-f", "framecrc", "-"]).stdout
        return packets, ffmpeg.run(["-hide_banner", "-i", str(path)]).stderr.split("\n", 1)[1]  # not its name

    seen = look(a)
    return seen == look(b) and seen[0].count("\n") > 20


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", frames=30, size="160x120")


@pytest.mark.parametrize("kwargs", [
    {},
    {"video": "{path: out.mp4, preset: veryfast, crf: 23}"},
    {"steps": "[{use: resize, with: {scale: 0.5}}]"},
    {"inputs": ", frames: '5-17'"},  # a range: seek, exact cut, audio re-encoded to the cut
    {"video": "{path: out.mkv, audio: none}"},
])
def test_relayed_video_is_the_piped_file_byte_for_byte(tmp_path, clip, kwargs):
    relayed, piped = run_both(tmp_path, clip, **kwargs)
    assert relayed["relay"] and "relay" not in piped
    name = "out.mkv" if "mkv" in kwargs.get("video", "") else "out.mp4"
    a, b = (tmp_path / d / "out" / name for d in ("relay", "pipe"))
    assert same_file(a, b)
    frames = 13 if "inputs" in kwargs else 30
    assert relayed["counts"] == piped["counts"] == {"done": frames, "skipped": 0, "failed": 0}
    assert decode_codes(a) == list(range(5, 18) if "inputs" in kwargs else range(30))
    assert {k: v["items"] for k, v in relayed["steps"].items()} == {k: v["items"] for k, v in piped["steps"].items()}


def test_colour_tags_and_a_broadcast_rate_survive_the_relay(tmp_path):
    tagged = make_clip(tmp_path / "bt709.mp4", frames=20, rate="30000/1001",
                       extra=["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"])
    run_both(tmp_path, tagged)
    a, b = (tmp_path / d / "out" / "out.mp4" for d in ("relay", "pipe"))
    assert a.read_bytes() == b.read_bytes()
    banner = ffmpeg.run(["-hide_banner", "-i", str(a)]).stderr
    assert "bt709" in banner and "29.97 fps" in banner


@pytest.mark.parametrize("steps, extra, video", [
    ("[{use: resize, with: {scale: 0.5, in_decoder: false}}]", "", "{path: out.mp4}"),  # a step runs here
    ("[]", ", frames: {pattern: 'f/{frame:04d}.png'}", "{path: out.mp4}"),  # another output wants pixels
    ("[]", "", "{path: out.mp4, pix_fmt: yuv444p}"),  # the encoder does not take the decoder's frames
    ("[{use: resize, with: {scale: 2}}]", "", "{path: out.mp4}"),  # an enlargement is not done by the decoder
])
def test_relay_only_when_nothing_needs_the_pixels(tmp_path, clip, steps, extra, video):
    assert not plan_for(tmp_path, clip, steps, video, extra).relay


def test_dry_run_says_the_video_is_relayed(tmp_path, clip):
    out = subprocess.run([str(STYLEFARM), "run", str(plan_for(tmp_path, clip).doc.filename), "--dry-run"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "unit: frame, relayed: one ffmpeg per video" in out.stdout


def test_a_farm_task_selection_runs_the_piped_path(tmp_path, clip):
    plan = plan_for(tmp_path, clip)
    report = Run(plan, progress=False, item_filter=lambda _source, item: item.index < 30).execute()
    assert plan.relay and "relay" not in report and report["counts"]["done"] == 30


def test_items_are_reported_while_the_one_ffmpeg_runs(tmp_path):
    """The log paces the items: the first arrives long before the encoder has finished."""
    long = make_clip(tmp_path / "long.mp4", frames=240, size="320x240", audio=False)
    plan = plan_for(tmp_path, long, video="{path: out.mp4, preset: slow}")
    sink = plan.sinks[0][0](plan.sinks[0][1], Run(plan, progress=False)._context())
    running, count = [], 0
    for item in plan.sources[0].relay_items(sink.relay):
        running.append(sink.track.encoder.pipe.proc.poll() is None)
        sink.write(item)
        count += 1
    assert count == 240 and running[0] and running[10]
    assert sink.close()[0].name == "out.mp4"


def test_truncated_video_fails_as_on_the_piped_path(tmp_path):
    data = make_clip(tmp_path / "full.mkv", frames=48).read_bytes()
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(data[: len(data) * 6 // 10])
    relayed, piped = run_both(tmp_path, broken)
    for report in (relayed, piped):
        stopped, video = report["failures"]
        assert "decoding stopped at frame" in stopped["error"] and "of 48 frames" in stopped["error"]
        assert video["item"] == "output.video" and "out.mp4 not written: received" in video["error"]
    assert relayed["counts"] == piped["counts"] and relayed["status"] == "partial"
    assert relayed["failures"][0]["error"] == piped["failures"][0]["error"]
    for d in ("relay", "pipe"):
        out = tmp_path / d / "out"
        assert not (out / "out.mp4").exists() and not list(out.rglob("*.part"))


def test_sigterm_during_a_relayed_video_leaves_no_file(tmp_path):
    long = make_clip(tmp_path / "long.mp4", frames=480, size="320x240")
    plan_for(tmp_path, long, video="{path: out.mp4, preset: slower}")
    proc = subprocess.Popen([str(STYLEFARM), "run", str(tmp_path / "wf.yaml"), "--no-progress"],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "out").glob("*.part")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-1000:]
    out = tmp_path / "out"
    assert not list(out.rglob("*.part")) and not (out / "out.mp4").exists()


def test_last_error_skips_the_info_lines_of_a_paced_log():
    log = "[info] Input #0\n[Parsed_showinfo_0 @ 0x1] [info] n:3 pts_time:0.125\n[error] No space left on device\n" \
          "[info] x264 frame I:1\n"
    assert ffmpeg.last_error(log) == "No space left on device"
    fatal = ("[vost#0:0 @ 0x1] [fatal] Unknown encoder 'x'\n[vost#0:0 @ 0x1] [fatal] Error selecting an encoder\n"
             "[error] Error opening output file o.mp4.\n[fatal] Error opening output files: Encoder not found\n")
    assert ffmpeg.last_error(fatal) == "Unknown encoder 'x' ... Error opening output files: Encoder not found"
    assert ffmpeg.last_error("[info] n:3 pts_time:0.125\n") == "no message"
    assert ffmpeg.last_error("plain line\nlast plain line\n") == "last plain line"


@pytest.fixture(scope="module")
def anamorphic(tmp_path_factory) -> Path:
    """160x120 stored, shown 16:9 (SAR 4:3): what DV and HDV cameras write."""
    return make_clip(tmp_path_factory.mktemp("ana") / "ana.mp4", frames=12, extra=["-vf", "setsar=4/3"])


def test_anamorphic_source_keeps_its_pixel_aspect(tmp_path, anamorphic):
    from stylefarm.video.probe import probe

    assert probe(anamorphic).sar == Fraction(4, 3)
    run_both(tmp_path / "same", anamorphic)  # relayed and piped, yuv420p
    a, b = (tmp_path / "same" / d / "out" / "out.mp4" for d in ("relay", "pipe"))
    assert a.read_bytes() == b.read_bytes() and probe(a).sar == Fraction(4, 3)
    half = plan_for(tmp_path / "half", anamorphic, "[{use: resize, with: {scale: 0.5}}]")
    Run(half, progress=False).execute()
    assert probe(tmp_path / "half" / "out" / "out.mp4").sar == Fraction(4, 3)
    wide = plan_for(tmp_path / "wide", anamorphic, "[{use: resize, with: {width: 212, height: 120}}]",
                    extra=", frames: {pattern: 'f/{frame:04d}.png'}")  # a step in Python, RGB frames
    assert not wide.relay and wide.sources[0].layout == "rgb"
    Run(wide, progress=False).execute()
    info = probe(tmp_path / "wide" / "out" / "out.mp4")
    assert (info.width, info.height) == (212, 120) and abs(info.dar - Fraction(16, 9)) < 0.01


def test_square_pixels_stay_untagged(tmp_path, clip):
    Run(plan_for(tmp_path, clip), progress=False).execute()
    assert "SAR" not in ffmpeg.run(["-hide_banner", "-i", str(tmp_path / "out" / "out.mp4")]).stderr


def test_a_rotated_phone_clip_is_turned_upright_on_both_paths(tmp_path, clip):
    rotated = tmp_path / "rot.mp4"
    ffmpeg.run(["-v", "error", "-y", "-display_rotation", "90", "-i", str(clip), "-c", "copy", str(rotated)])
    run_both(tmp_path, rotated)
    a, b = (tmp_path / d / "out" / "out.mp4" for d in ("relay", "pipe"))
    assert a.read_bytes() == b.read_bytes()
    from stylefarm.video.probe import probe

    info = probe(a)
    assert (info.width, info.height, info.rotation) == (120, 160, 0)
