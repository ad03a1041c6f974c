"""Video/sequence sources and sinks with real ffmpeg on small synthetic clips."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import decode_codes, make_clip, read_code

from stylefarm.api import run_workflow
from stylefarm.errors import OutputError
from stylefarm.images import encode_image, read_image
from stylefarm.video.encode import Encoder, EncodeSpec
from stylefarm.video.ffmpeg import ffmpeg_exe
from stylefarm.video.probe import probe
from stylefarm.video.sequence import SequenceOptions, SequenceSource
from stylefarm.video.source import VideoSource, VideoSourceOptions

pytestmark = pytest.mark.video
NTSC = Fraction(24000, 1001)


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=48)


def source(path: Path, **opts) -> VideoSource:
    return VideoSource(VideoSourceOptions(path=str(path), **opts), path.parent)


def test_probe_reports_exact_rate_count_and_audio_without_ffprobe(clip):
    info = probe(clip)
    assert (info.width, info.height, info.frames) == (160, 120, 48)
    assert info.fps == NTSC and info.has_audio and info.pix_fmt == "yuv420p" and not info.vfr
    assert abs(info.duration - 48 / float(NTSC)) < 0.05


def test_rotated_video_is_decoded_upright_with_swapped_size(clip, tmp_path):
    rotated = tmp_path / "rot.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(clip), "-c", "copy",
                    str(rotated)], check=True)
    info = probe(rotated)
    assert info.rotation == 90 and (info.width, info.height) == (120, 160)
    first = next(source(rotated).items())
    assert first.image.shape == (160, 120, 3)


@pytest.mark.parametrize("frames, expected", [("10-20", range(10, 21)), ("0-0", [0]), ("45-", range(45, 48)),
                                              ("00:00:01.001-00:00:01.5015", range(24, 36)),
                                              ("00:00:01:00-00:00:01:05", range(24, 30))])
def test_frame_range_selects_exactly_those_frames(clip, frames, expected):
    src = source(clip, frames=frames)
    items = list(src.items())
    assert src.count() == len(expected)
    assert [it.index for it in items] == list(expected)
    assert [read_code(it.image) for it in items] == list(expected)


def test_start_number_shifts_frame_numbers_and_ranges(clip):
    items = list(source(clip, frames="1010-1012", start_number=1000).items())
    assert [(it.frame, read_code(it.image)) for it in items] == [(1010, 10), (1011, 11), (1012, 12)]


def test_workflow_keeps_frame_count_rational_fps_audio_and_frame_order(clip, workflow, tmp_path):
    wf = workflow(f"""
inputs:
  - path: {clip}
steps:
  - use: resize
    with: {{scale: 0.5}}
output:
  dir: out
  images: false
  frames: {{pattern: "png/{{input.stem}}.####.png"}}
  video: {{path: "{{input.stem}}_styled.mp4", preset: veryfast}}
""")
    report = run_workflow(wf)
    assert report["counts"] == {"done": 48, "skipped": 0, "failed": 0}
    out = probe(tmp_path / "out" / "clip_styled.mp4")
    assert (out.frames, out.fps, out.width, out.height) == (48, NTSC, 80, 60)
    assert out.audio_codec == "aac" and abs(out.duration - probe(clip).duration) <= 1 / float(NTSC)
    assert decode_codes(out.path) == list(range(48))
    assert len(list((tmp_path / "out" / "png").glob("clip.*.png"))) == 48


@pytest.mark.parametrize("mode, size", [("pad", (82, 62)), ("crop", (80, 60))])
def test_odd_sizes_are_padded_or_cropped_to_even(clip, workflow, tmp_path, mode, size):
    wf = workflow(f"""
inputs: [{{path: {clip}, frames: 0-5}}]
steps: [{{use: resize, with: {{width: 81, height: 61}}}}]
output: {{dir: out, images: false, video: {{path: odd.mp4, preset: ultrafast, odd_size: {mode}}}}}
""")
    run_workflow(wf)
    out = probe(tmp_path / "out" / "odd.mp4")
    assert (out.width, out.height, out.frames) == (*size, 6)
    assert out.audio_codec == "aac"  # a range re-encodes the audio to cut it exactly


def test_rerun_rebuilds_video_from_recorded_frames_without_restyling(clip, workflow, tmp_path):
    wf = workflow(f"""
inputs: [{{path: {clip}, frames: 0-23}}]
output: {{dir: out, pattern: "{{input.stem}}.{{frame:04d}}.png", video: {{path: v.mp4, preset: ultrafast}}}}
""")
    run_workflow(wf)
    (tmp_path / "out" / "v.mp4").unlink()
    report = run_workflow(wf)
    assert report["counts"]["skipped"] == 24 and report["counts"]["done"] == 0
    assert decode_codes(tmp_path / "out" / "v.mp4") == list(range(24))


def test_video_without_audio_gives_video_without_audio(tmp_path, workflow):
    silent = make_clip(tmp_path / "silent.mp4", frames=12, audio=False)
    wf = workflow(f"""
inputs: [{{path: {silent}}}]
output: {{dir: out, images: false, video: {{path: s.mp4, preset: ultrafast}}}}
""")
    run_workflow(wf)
    out = probe(tmp_path / "out" / "s.mp4")
    assert out.frames == 12 and not out.has_audio


def write_sequence(folder: Path, frames: list[int], depth: int = 8) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        image = np.full((24, 32, 3), f / 2000, np.float32)
        (folder / f"sh010.{f:04d}.png").write_bytes(encode_image(".png", image, None, depth))


def test_sequence_with_gap_fails_by_default_and_holds_on_request(tmp_path):
    write_sequence(tmp_path / "seq", [1001, 1002, 1004])
    strict = SequenceSource(SequenceOptions(sequence="seq/sh010.%04d.png"), tmp_path)
    with pytest.raises(Exception, match="missing in 1001-1004: 1003"):
        strict.count()
    held = SequenceSource(SequenceOptions(sequence="seq/sh010.####.png", missing="hold"), tmp_path)
    items = [it.load() for it in held.items()]
    assert [it.frame for it in items] == [1001, 1002, 1003, 1004]
    assert items[2].meta["held_from"] == "sh010.1002.png"
    assert np.array_equal(items[2].image, items[1].image)


def test_sequence_16bit_range_to_frames_and_video(tmp_path, workflow):
    write_sequence(tmp_path / "seq", list(range(1001, 1011)), depth=16)
    wf = workflow("""
inputs: [{sequence: seq/sh010.####.png, frames: 1003-1008, fps: 24000/1001}]
output:
  dir: out
  images: false
  frames: {pattern: "{input.stem}.%04d.png"}
  video: {path: "{input.stem}.mov", preset: ultrafast}
""")
    run_workflow(wf)
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == [f"sh010.{f}.png" for f in range(1003, 1009)]
    from stylefarm.images import read_image

    assert read_image(tmp_path / "out" / "sh010.1003.png")[2] == 16
    out = probe(tmp_path / "out" / "sh010.mov")
    assert (out.frames, out.fps) == (6, NTSC)


def _deep_clip(path: Path) -> Path:
    """A 10-bit clip whose luma ramps through 1024 levels (8 bits could hold 256)."""
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "nullsrc=s=1024x8:r=24,format=yuv444p10le,geq=lum='X':cb=512:cr=512", "-frames:v", "3",
                    "-c:v", "ffv1", str(path)], check=True)
    return path


def test_10bit_video_keeps_its_depth_in_frames_and_10bit_video(tmp_path, workflow):
    clip = _deep_clip(tmp_path / "deep.mkv")
    wf = workflow(f"""
inputs: [{{path: {clip}}}]
output:
  dir: out
  pattern: "f.{{frame:04d}}.png"
  video: {{path: deep_out.mkv, codec: ffv1, pix_fmt: yuv444p10le}}
""")
    run_workflow(wf)
    frame, _, depth = read_image(tmp_path / "out" / "f.0000.png")
    assert depth == 16 and len(np.unique(frame[..., 1])) > 600  # an 8-bit path gives at most 256
    out = source(tmp_path / "out" / "deep_out.mkv")
    first = next(iter(out.items()))
    assert first.bit_depth == 16 and len(np.unique(first.image[..., 1])) > 600


def test_10bit_video_into_an_8bit_encoder_says_so(tmp_path, workflow, caplog):
    clip = _deep_clip(tmp_path / "deep.mkv")
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput: {{dir: out, images: false, video: {{path: v.mp4}}}}\n")
    with caplog.at_level("WARNING"):
        run_workflow(wf)
    assert any("10-bit frames but libx264 yuv420p keeps 8 bits" in r.message for r in caplog.records)


def _encode(tmp_path: Path, frames: int, **options) -> tuple[Encoder, Path]:
    """`frames` grey 64x48 frames at 24 fps through a real ffmpeg encoder."""
    final = tmp_path / "out.mp4"
    encoder = Encoder(EncodeSpec(64, 48, Fraction(24), "libx264", "yuv420p", options), final)
    for i in range(frames):
        encoder.send(np.full((48, 64, 3), 10 * i, np.uint8))
    return encoder, final


def test_encoder_writes_its_frames_and_renames_into_place(tmp_path):
    encoder, final = _encode(tmp_path, 12)
    assert encoder.finish() == final and probe(final).frames == 12
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # the temp file renamed into place


def test_encoder_that_drops_frames_fails_and_leaves_no_file(tmp_path):
    encoder, final = _encode(tmp_path, 24, r=12)  # a lower output rate: ffmpeg drops frames
    encoder._stop_writer()
    assert encoder.pipe.wait() == 0
    written = probe(encoder.temp).frames
    assert written < 24
    with pytest.raises(OutputError, match=f"encoder wrote {written} frames for 24 sent"):
        encoder.finish()
    assert list(tmp_path.iterdir()) == []



def test_a_folder_of_pictures_becomes_one_video_a_frame_each_in_order(tmp_path, workflow):
    """Each picture started a new video at the same path: a 1-frame video of the last one, exit 0."""
    import imageio.v3 as iio

    for i in range(5):
        iio.imwrite(tmp_path / f"p{i}.png", np.full((48, 64, 3), 40 * i, np.uint8))
    wf = workflow('inputs: [{glob: "p*.png"}]\noutput: {dir: out, images: false, video: {path: all.mp4, crf: 0}}\n')
    run_workflow(wf)
    frames = [f.mean() for f in iio.imiter(tmp_path / "out" / "all.mp4")]
    assert [round(v / 40) for v in frames] == [0, 1, 2, 3, 4]
    first = (tmp_path / "out" / "all.mp4").read_bytes()
    (tmp_path / "out" / "all.mp4").unlink()
    wf.write_text(wf.read_text().replace("images: false", "images: true"))  # with files a resume can read back
    run_workflow(wf)
    again = (tmp_path / "out" / "all.mp4").read_bytes()
    assert [round(f.mean() / 40) for f in iio.imiter(tmp_path / "out" / "all.mp4")] == [0, 1, 2, 3, 4]
    assert len(again) > 0 and len(first) > 0
