"""Bad video inputs and outputs: clear one-line errors, non-zero exits, nothing partial left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from video_fixtures import make_clip, read_code

from stylefarm.api import load_workflow, run_workflow
from stylefarm.errors import OutputError, StylefarmError, WorkflowError
from stylefarm.images import read_image
from stylefarm.video.ffmpeg import ffmpeg_exe
from stylefarm.video.segments import join

pytestmark = pytest.mark.video


def video_workflow(workflow, clip: Path, extra: str = "", images: str = "false") -> Path:
    return workflow(f"""
inputs: [{{path: {clip}{extra}}}]
output: {{dir: out, images: {images}, pattern: "f.{{frame:04d}}.png", video: {{path: v.mp4, preset: ultrafast}}}}
""")


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(".part")]


def test_truncated_video_processes_frames_before_damage_and_reports_where_it_stopped(tmp_path, workflow):
    clip = make_clip(tmp_path / "full.mkv", frames=48)
    data = clip.read_bytes()
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(data[: len(data) * 6 // 10])
    wf = video_workflow(workflow, broken, images="true")
    report = run_workflow(wf)  # partial (exit 3): the frames before the damage are kept
    failure, video = report["failures"]
    assert video["item"] == "output.video" and "v.mp4 not written: received" in video["error"]
    assert "decoding stopped at frame" in failure["error"] and "of 48 frames" in failure["error"]
    done = sorted((tmp_path / "out").glob("f.*.png"))
    assert 10 < len(done) < 48 and report["counts"]["done"] == len(done)
    assert not (tmp_path / "out" / "v.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("content, message", [(b"", "empty file"),
                                              (b"hello, not a video\n" * 50, "not a readable video")])
def test_file_that_is_not_a_video_is_rejected_at_plan_time(tmp_path, workflow, content, message):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(WorkflowError, match=message):
        load_workflow(video_workflow(workflow, bad))


def test_audio_only_file_has_no_video_stream(tmp_path, workflow):
    audio = tmp_path / "tone.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(audio)],
                   check=True)
    with pytest.raises(WorkflowError, match="no video stream"):
        load_workflow(video_workflow(workflow, audio))


def test_zero_frame_video_is_rejected(tmp_path, workflow):
    empty = tmp_path / "empty.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "0",
                    "-c:v", "libx264", str(empty)], check=True)
    with pytest.raises(WorkflowError, match="(zero-length|no video stream|not a readable)"):
        load_workflow(video_workflow(workflow, empty))


@pytest.mark.parametrize("frames", ["40-60", "50-", "00:00:03-00:00:04"])
def test_frame_range_outside_the_video_names_the_available_frames(tmp_path, workflow, frames):
    clip = make_clip(tmp_path / "c.mp4", frames=48)
    with pytest.raises(WorkflowError, match="outside the available frames 0-47|empty"):
        load_workflow(video_workflow(workflow, clip, f", frames: '{frames}'"))


def test_a_list_of_ranges_in_an_inputs_frames_points_at_the_command_line(tmp_path, workflow):
    """It said "bad frame range part '3,7,10-11'"."""
    clip = make_clip(tmp_path / "c.mp4", frames=12)
    with pytest.raises(WorkflowError, match=r"frames: takes one range .* --frames 1-3,7,10-11 on the command line"):
        load_workflow(video_workflow(workflow, clip, ", frames: '1-3,7,10-11'"))


def test_missing_ffmpeg_binary_says_how_to_install(tmp_path, workflow, monkeypatch):
    clip = make_clip(tmp_path / "c.mp4", frames=4)
    monkeypatch.setenv("STYLEFARM_FFMPEG", str(tmp_path / "no" / "ffmpeg"))
    with pytest.raises(StylefarmError, match="pip install imageio-ffmpeg"):
        load_workflow(video_workflow(workflow, clip))


def test_unwritable_video_location_fails_without_temp_files(tmp_path, workflow):
    clip = make_clip(tmp_path / "c.mp4", frames=6)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "blocker").write_text("a file where a folder should be")
    wf = workflow(f"""
inputs: [{{path: {clip}}}]
output: {{dir: out, images: false, video: {{path: blocker/v.mp4, preset: ultrafast}}}}
""")
    with pytest.raises(OutputError, match="cannot write"):
        run_workflow(wf)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("images", ["false", "true"])  # relayed (one ffmpeg) / piped
def test_an_encoder_that_refuses_its_options_says_why_on_both_paths(tmp_path, workflow, images, monkeypatch):
    """ffmpeg's own reason, not a count of the frames it never took (the relayed path said
    "received 0 of 6 frames" before). The load-time trial of `options:` is set aside to reach the
    run-time path: an encoder can still refuse settings at the video's own size."""
    monkeypatch.setattr("stylefarm.video.ffmpeg.check_encoder_opens", lambda *args: None)
    clip = make_clip(tmp_path / "c.mp4", frames=6)
    wf = workflow(f"""
inputs: [{{path: {clip}}}]
output: {{dir: out, images: {images}, video: {{path: v.mp4, options: {{tune: nosuch}}}}}}
""")
    with pytest.raises(OutputError, match="cannot write video .*v.mp4: .*invalid tune 'nosuch'"):
        run_workflow(wf)
    assert leftovers(tmp_path) == [] and not (tmp_path / "out" / "v.mp4").exists()


def test_a_codec_this_ffmpeg_cannot_encode_is_a_workflow_error(tmp_path, workflow):
    clip = make_clip(tmp_path / "c.mp4", frames=6)
    wf = workflow(f"""
inputs: [{{path: {clip}}}]
output: {{dir: out, images: false, video: {{path: v.mp4, codec: libx246}}}}
""")
    with pytest.raises(WorkflowError, match=r"wf.yaml:3: output.video.codec: the ffmpeg in use has no such video "
                                            r"encoder; did you mean .*libx264.*\(got 'libx246'\)"):
        load_workflow(wf)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("video, message", [
    ("{path: v.mp4, codec: prores_ks}", r"codec: a .mp4 file cannot hold prores video: give path a .mov, .mkv, "
                                        r".avi, .nut, .ts suffix"),
    ("{path: v.webm, codec: libx264}", "codec: a .webm file cannot hold h264 video"),
    ("{path: v.mov, codec: libvpx-vp9}", "codec: a .mov file cannot hold vp9 video"),
    ("{path: v.xyz}", r"path: v.xyz: unsupported video container; use one of .avi, .m4v"),
    ("{path: v.mp4, bitrate: lots}", "bitrate: expected bits per second, e.g. 8M"),
    ("{path: v.mp4, preset: quick}", "preset: libx264 has no such preset; use one of ultrafast"),
    ("{path: v.mkv, codec: libx265, preset: quick}", "preset: libx265 has no such preset"),
    ("{path: v.mp4, pix_fmt: yuv421p}", r"pix_fmt: the ffmpeg in use has no such pixel format; did you mean "
                                        r"yuv422p or yuv420p"),
    # `options:` are tried on the real encoder: its own cause, not each part that stopped
    ("{path: v.mp4, options: {tune: flim}}", r"options: libx264 refuses these settings: x264 \[error\]: invalid "
                                             r"tune 'flim'$"),
    ("{path: v.mp4, options: {tunez: film}}", r"options: libx264 refuses these settings: Unrecognized option "
                                              r"'tunez'.$"),
    ("{path: v.mkv, codec: libx265, options: {profile:v: nosuch}}", "options: libx265 refuses these settings: x265 "
                                                                     r"\[error\]: unknown profile <nosuch>$"),
])
def test_encoder_options_ffmpeg_would_refuse_at_the_first_frame_are_workflow_errors(tmp_path, workflow, video,
                                                                                     message):
    """Said when the workflow is read, with file, line and field, before any frame is made."""
    clip = make_clip(tmp_path / "c.mp4", frames=4)
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput: {{dir: out, images: false, video: {video}}}\n")
    with pytest.raises(WorkflowError, match=r"wf.yaml:2: output.video." + message):
        load_workflow(wf)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("video", ["{path: v.mov, codec: prores_ks}", "{path: v.mkv, codec: ffv1}",
                                   "{path: v.webm, preset: quick}",  # vp9 takes no preset: none is passed
                                   "{path: v.mp4, bitrate: 2.5M}", "{path: v.mp4, bitrate: 800000}",
                                   "{path: v.mp4, pix_fmt: yuv444p, fps: 25, options: {g: 12}}",
                                   "{path: v.mp4, options: {tune: film, profile:v: high, x264-params: keyint=24}}",
                                   "{path: v.mov, codec: prores_ks, options: {profile:v: 3, vendor: apl0}}"])
def test_encoder_options_the_checks_let_through_are_ones_ffmpeg_takes(tmp_path, workflow, video):
    """The other half: what the load-time checks accept, the real encoder writes (numbers for text
    fields included: YAML's `bitrate: 800000`, `g: 12` are numbers)."""
    clip = make_clip(tmp_path / "c.mp4", frames=4)
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput: {{dir: out, images: false, video: {video}}}\n")
    report = run_workflow(wf)
    assert report["counts"]["failed"] == 0 and len(list((tmp_path / "out").glob("v.*"))) == 1


def test_encoder_options_are_tried_at_a_broadcast_size_before_they_are_refused(tmp_path):
    """DNxHD takes only broadcast sizes and bitrates: its settings pass at 1080p, a wrong bitrate
    fails at both sizes; a hardware encoder is never tried where the workflow is read."""
    from stylefarm.video.ffmpeg import check_encoder_opens

    check_encoder_opens("dnxhd", "yuv422p", {"b:v": "36M"})
    with pytest.raises(ValueError, match="dnxhd refuses these settings: .*incompatible with DNxHD"):
        check_encoder_opens("dnxhd", "yuv422p", {"b:v": "37M"})
    check_encoder_opens("h264_nvenc", "yuv420p", {"nosuch": "1"})


def test_the_containers_refusals_are_the_bundled_ffmpegs(tmp_path):
    """VIDEO_REFUSED / VIDEO_ONLY are facts about ffmpeg's muxers: each refused pair fails with the
    real binary and each pair next to it that the table lets through is written."""
    from stylefarm.video.encode import CONTAINERS, holds

    encoders = {"vp8": "libvpx", "vp9": "libvpx-vp9", "av1": "libaom-av1", "prores": "prores_ks", "h264": "libx264",
                "qtrle": "qtrle", "huffyuv": "huffyuv", "utvideo": "utvideo", "ffv1": "ffv1", "mjpeg": "mjpeg"}
    wrong = []
    for suffix in (".mp4", ".mov", ".webm", ".mkv", ".nut"):
        for codec, encoder in encoders.items():
            out = tmp_path / f"{codec}{suffix}"
            proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=24",
                                   "-frames:v", "2", "-c:v", encoder, "-y", str(out)], capture_output=True)
            if (proc.returncode == 0) != holds(CONTAINERS[suffix], codec):
                wrong.append(f"{suffix} {codec}: ffmpeg rc {proc.returncode}")
    assert not wrong, wrong


def test_the_containers_audio_refusals_are_the_bundled_ffmpegs(tmp_path):
    """AUDIO_REFUSED / AUDIO_ONLY: each audio stream copied into each container, with the real binary."""
    from stylefarm.video.encode import CONTAINERS, holds_audio

    encoders = {"aac": ("aac", "m4a"), "mp3": ("libmp3lame", "mp3"), "opus": ("libopus", "opus"),
                "vorbis": ("libvorbis", "ogg"), "flac": ("flac", "flac"), "pcm_s16le": ("pcm_s16le", "wav"),
                "ac3": ("ac3", "ac3"), "alac": ("alac", "caf")}
    wrong = []
    for codec, (encoder, ext) in encoders.items():
        sound = tmp_path / f"{codec}.{ext}"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=0.3", "-c:a", encoder, str(sound)],
                       check=True, capture_output=True)
        for suffix in (".mp4", ".mov", ".webm", ".mkv", ".avi", ".ts"):
            fmt = CONTAINERS[suffix]
            video = "libvpx-vp9" if fmt == "webm" else "mjpeg" if fmt == "avi" else "libx264"
            proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=8",
                                   "-i", str(sound), "-map", "0:v", "-map", "1:a", "-frames:v", "2", "-c:v", video,
                                   "-c:a", "copy", "-y", str(tmp_path / f"{codec}{suffix}")], capture_output=True)
            if (proc.returncode == 0) != holds_audio(fmt, codec):
                wrong.append(f"{suffix} {codec}: ffmpeg rc {proc.returncode}")
    assert not wrong, wrong


def test_audio_copy_into_a_container_refusing_the_sources_audio_is_refused_before_work(tmp_path, workflow):
    clip = make_clip(tmp_path / "c.mp4", frames=4)  # aac audio
    wf = workflow(f"""
inputs: [{{path: {clip}}}]
output:
  dir: out
  images: false
  video: {{path: v.webm, codec: libvpx-vp9, audio: copy}}
""")
    with pytest.raises(WorkflowError, match=r":6: output.video.audio: a .webm file cannot hold the aac audio of "
                       r"inputs\[0\] .* use audio: auto or encode .* or give path a .mp4, .*\.mkv"):
        load_workflow(wf)
    wf.write_text(wf.read_text().replace("audio: copy", "audio: auto"))
    report = run_workflow(wf)  # re-encoded to opus
    assert report["counts"]["failed"] == 0 and (tmp_path / "out" / "v.webm").exists()


DISK_FULL = """
import resource, sys
from stylefarm.api import run_workflow
resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))  # every later file write is capped: a full disk
run_workflow(sys.argv[1])
"""


@pytest.mark.parametrize("video", ["{path: v.mkv, codec: ffv1}",  # piped: ffv1 writes yuv444p
                                   "{path: v.mkv, preset: ultrafast, crf: 0}"])  # relayed (tests/test_relay.py)
def test_disk_full_during_encode_exits_nonzero_and_removes_temp(tmp_path, workflow, video):
    clip = make_clip(tmp_path / "c.mp4", frames=48, size="320x240")
    wf = workflow(f"""
inputs: [{{path: {clip}}}]
output: {{dir: out, images: false, video: {video}}}
""")
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, str(wf)], capture_output=True, text=True,
                          timeout=120, env={**os.environ})
    assert proc.returncode != 0
    assert "cannot write video" in proc.stderr and "SIGXFSZ" in proc.stderr, proc.stderr[-2000:]
    assert leftovers(tmp_path) == [] and not (tmp_path / "out" / "v.mkv").exists()


def test_join_into_one_of_its_own_segments_is_refused_and_the_segment_kept(cli, tmp_path):
    a, b = make_clip(tmp_path / "a.mp4", frames=4), make_clip(tmp_path / "b.mp4", frames=4)
    before = a.read_bytes()
    result = cli("join", str(a), str(b), "-o", str(a))
    assert result.returncode == 2 and "join: " in result.stderr and "is one of the files joined" in result.stderr
    assert a.read_bytes() == before


def test_join_with_audio_from_a_silent_video_is_an_error(tmp_path):
    silent = make_clip(tmp_path / "s.mp4", frames=4, audio=False)
    with pytest.raises(StylefarmError, match="no audio"):
        join([silent], tmp_path / "j.mp4", audio_from=silent)


@pytest.mark.parametrize("second, differs", [({"size": "96x64"}, "b.mp4 is 96x64 h264 at 24000/1001 fps"),
                                              ({"rate": "25"}, "b.mp4 is 160x120 h264 at 25 fps")])
def test_join_of_unlike_segments_names_the_first_that_differs_and_how(tmp_path, second, differs):
    a = make_clip(tmp_path / "a.mp4", frames=4, audio=False)
    b = make_clip(tmp_path / "b.mp4", frames=4, audio=False, **second)
    with pytest.raises(StylefarmError, match=f"join: segments differ: a.mp4 is 160x120 h264 at 24000/1001 fps, "
                                             f"{differs}; encode them"):
        join([a, a, b], tmp_path / "j.mp4")
    assert not (tmp_path / "j.mp4").exists()


def test_frames_lost_in_the_middle_keep_their_true_numbers(tmp_path, workflow):
    """Intra-only (MJPEG) clip with damaged frames in the middle: ffmpeg drops them; the frames
    after the hole keep their own numbers and the lost ones are reported as failed, by number."""
    clip = make_clip(tmp_path / "mj.mkv", frames=60, size="64x48", audio=False,
                     extra=["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"])
    data = bytearray(clip.read_bytes())
    data[int(len(data) * 0.45):int(len(data) * 0.55)] = bytes(int(len(data) * 0.55) - int(len(data) * 0.45))
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(bytes(data))
    wf = workflow(f"inputs: [{{path: {broken}}}]\noutput: {{dir: out, pattern: 'f.{{frame:04d}}.png'}}\n")
    report = run_workflow(wf)
    lost = sorted(int(f["item"].rsplit("#", 1)[1]) for f in report["failures"])
    assert lost and lost == list(range(lost[0], lost[-1] + 1)), lost  # one contiguous hole
    assert all("could not be decoded" in f["error"] for f in report["failures"])
    written = sorted(int(p.stem.split(".")[1]) for p in (tmp_path / "out").glob("f.*.png"))
    assert sorted(written + lost) == list(range(60))
    for number in (lost[0] - 1, lost[-1] + 1, 59):  # each written frame shows its own code
        image, _, _ = read_image(tmp_path / "out" / f"f.{number:04d}.png")
        assert read_code(image) == number
