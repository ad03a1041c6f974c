"""Colour description through the piped path: frames that go through Python (RGB) come back as
YUV with the source's matrix and range and its tags, as the relayed path's do, so an identity
step's video decodes to the source's pixels under its tags (bt709 HD, full range, HDR10)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest

from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.video import yuv
from stylefarm.video.encode import EncodeSpec, encode_argv
from stylefarm.video.ffmpeg import ffmpeg_exe
from stylefarm.video.probe import probe
from stylefarm.workflow import read_yaml_file

SIZE, FRAMES = (320, 180), 6
IDENTITY = "[{use: color_transfer, with: {reference: ref.png, strength: 0, space: rgb}}]"  # RGB frames, unchanged
BT709 = {"matrix": "bt709", "tags": "colorspace=bt709:color_primaries=bt709:color_trc=bt709"}
HDR10 = {"matrix": "bt2020", "tags": "colorspace=bt2020nc:color_primaries=bt2020:color_trc=smpte2084"}


def make_tagged(path: Path, matrix: str, tags: str, range_: str = "tv", pix_fmt: str = "yuv420p",
                codec: str = "libx264") -> Path:
    """A colourful clip really converted with `matrix` and `range_`, and tagged so (setparams: this
    ffmpeg takes the frames' tags over the -colorspace/-color_trc output options)."""
    vf = f"scale=out_color_matrix={matrix}:out_range={range_},format={pix_fmt},setparams=range={range_}:{tags}"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate=24", "-frames:v", str(FRAMES), "-vf", vf, "-c:v", codec,
                    "-crf", "6", str(path)], check=True, capture_output=True)
    return path


def decode(path: Path, matrix: str, range_: str, deep: bool = False) -> np.ndarray:
    """Every frame as RGB, read with the given matrix and range whatever the file's tags say."""
    fmt, dtype, top = ("rgb48le", "<u2", 65535.0) if deep else ("rgb24", np.uint8, 255.0)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf",
                          f"scale=in_color_matrix={matrix}:in_range={range_},format={fmt}", "-f", "rawvideo", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype).reshape(-1, SIZE[1], SIZE[0], 3).astype(np.float64) * (255.0 / top)


def run_job(tmp: Path, clip: Path, steps: str, video: str, relay: bool = False) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    import cv2

    cv2.imwrite(str(tmp / "ref.png"), np.full((8, 8, 3), 90, np.uint8))
    wf = tmp / "wf.yaml"
    wf.write_text(f"inputs: [{{path: {clip}}}]\nsteps: {steps}\noutput: {{dir: out, images: false, video: {video}}}\n")
    plan = build_plan(read_yaml_file(wf), tmp)
    assert plan.relay == relay
    report = Run(plan, progress=False).execute()
    assert report["counts"] == {"done": FRAMES, "skipped": 0, "failed": 0}, report.get("failures")
    return tmp / "out" / video.split("path: ")[1].split(",")[0].rstrip("}")


@pytest.mark.parametrize("range_", ["tv", "pc"])
def test_bt709_video_through_a_step_keeps_its_matrix_range_and_tags(tmp_path, range_):
    source = make_tagged(tmp_path / "bt709.mp4", BT709["matrix"], BT709["tags"], range_)
    out = run_job(tmp_path / "pipe", source, IDENTITY, "{path: out.mp4, crf: 4, preset: veryfast}")
    assert probe(out).color[:2] == (range_, "bt709")
    want, got = decode(source, "bt709", range_), decode(out, "bt709", range_)
    assert np.abs(want - got).mean() < 1.5  # ffmpeg alone: 1.1-1.2 (chroma edges); BT.601 or the wrong range: 3-5


def test_piped_and_relayed_videos_of_a_tagged_source_carry_the_same_tags(tmp_path):
    source = make_tagged(tmp_path / "bt709.mp4", BT709["matrix"], BT709["tags"])
    piped = run_job(tmp_path / "pipe", source, IDENTITY, "{path: out.mp4}")
    relayed = run_job(tmp_path / "relay", source, "[]", "{path: out.mp4}", relay=True)
    assert probe(piped).color == probe(relayed).color == probe(source).color


def test_hdr10_video_keeps_pq_bt2020_and_its_signal_values_with_one_warning(tmp_path, caplog):
    source = make_tagged(tmp_path / "hdr10.mkv", HDR10["matrix"], HDR10["tags"], pix_fmt="yuv420p10le",
                         codec="libx265")
    with caplog.at_level(logging.WARNING, logger="stylefarm.video"):
        out = run_job(tmp_path / "pipe", source, IDENTITY,
                      "{path: out.mkv, codec: libx265, pix_fmt: yuv420p10le, crf: 4, preset: ultrafast}")
    assert probe(out).pix_fmt == "yuv420p10le"
    assert probe(out).color == probe(source).color == ("tv", "bt2020nc/bt2020/smpte2084", "progressive")
    want, got = decode(source, "bt2020", "tv", deep=True), decode(out, "bt2020", "tv", deep=True)
    assert np.abs(want - got).mean() < 1.5  # in 8-bit levels
    said = [r.getMessage() for r in caplog.records if "PQ" in r.getMessage()]
    assert len(said) == 1 and "not linear light" in said[0] and "out.mkv" in said[0]


def test_rgb_encoder_formats_keep_primaries_and_transfer_but_no_matrix():
    color = {"range": "tv", "colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709"}
    yuv = " ".join(encode_argv(EncodeSpec(64, 32, 24, "libx264", "yuv420p", color=color), Path("o.mp4"), "mp4"))
    assert "scale=out_color_matrix=bt709:out_range=tv" in yuv and "format=yuv420p" in yuv and "colorspace=bt709" in yuv
    rgb = " ".join(encode_argv(EncodeSpec(64, 32, 24, "ffv1", "gbrp", color=color), Path("o.mkv"), "matroska"))
    assert "scale=" not in rgb and "colorspace" not in rgb and "setparams=color_primaries=bt709:color_trc=bt709" in rgb


@pytest.mark.parametrize("range_", ["tv", "pc"])
def test_yuv_fallback_conversions_use_the_sources_matrix_and_range(tmp_path, range_):
    """An odd resize target or a frame of another size goes through RGB here: the same colours as
    ffmpeg's decoder gives, and back to the same samples."""
    source = make_tagged(tmp_path / "bt709.mp4", BT709["matrix"], BT709["tags"], range_)
    planar = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(source), "-frames:v", "1", "-f", "rawvideo",
                             "-pix_fmt", "yuv420p", "-"], check=True, capture_output=True).stdout
    frame = np.frombuffer(planar, np.uint8).reshape(SIZE[1] * 3 // 2, SIZE[0])
    matrix = yuv.source_matrix({"video": {"color": list(probe(source).color)}})
    assert matrix == {"colorspace": "bt709", "full": range_ == "pc"}
    rgb = yuv.to_rgb(frame, **matrix)
    assert np.abs(rgb.astype(float) - decode(source, "bt709", range_)[0]).mean() < 1.5  # BT.601: 3-5 off
    back = yuv.from_rgb(rgb, **matrix).astype(float)
    assert np.abs(back - frame).mean() < 1.0


def test_an_odd_resize_of_a_bt709_video_converts_with_its_matrix(tmp_path):
    """An odd target size leaves 4:2:0 for RGB inside `resize`: that conversion used BT.601 while
    the sink encoded back as BT.709, shifting the colours. Measured against the same job on a
    BT.601 source (resampling and chroma differences alone): the BT.709 job must do as well."""
    import cv2

    def error(matrix: str, tags: str, name: str) -> float:
        clip = make_tagged(tmp_path / f"{name}.mp4", matrix, tags)
        out = run_job(tmp_path / name, clip, "[{use: resize, with: {width: 161, height: 91}}]", "{path: v.mp4, crf: 6}")
        raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(out), "-vf",
                              f"scale=in_color_matrix={matrix}:in_range=tv,format=rgb24", "-f", "rawvideo", "-"],
                             check=True, capture_output=True).stdout
        got = np.frombuffer(raw, np.uint8).reshape(-1, 92, 162, 3)[:, :91, :161].astype(np.float64)  # padded even
        want = np.stack([cv2.resize(f, (161, 91), interpolation=cv2.INTER_AREA) for f in decode(clip, matrix, "tv")])
        return float(np.abs(got - want).mean())

    baseline = error("bt601", "colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m", "sd")
    assert error("bt709", BT709["tags"], "hd") < baseline + 1.0


def test_ffprobe_colour_fields_read_as_the_banner_words():
    """A system ffprobe's JSON keeps the bt2020 / PQ tags the bundled probe reads from the banner
    (no ffprobe on the test machines: its documented field names, fed as it writes them)."""
    from stylefarm.video.probe import ffprobe_color
    from stylefarm.video.yuv import color_options

    hdr = {"color_range": "tv", "color_space": "bt2020nc", "color_primaries": "bt2020",
           "color_transfer": "smpte2084"}
    assert ffprobe_color(hdr) == ("tv", "bt2020nc/bt2020/smpte2084")
    assert color_options(ffprobe_color(hdr)) == {"range": "tv", "colorspace": "bt2020nc",
                                                 "color_primaries": "bt2020", "color_trc": "smpte2084"}
    assert ffprobe_color({"color_range": "pc", "color_space": "bt709", "color_primaries": "bt709",
                          "color_transfer": "bt709"}) == ("pc", "bt709")
    assert ffprobe_color({"color_space": "bt709"}) == ("bt709/unknown/unknown",)
    assert ffprobe_color({"color_range": "unknown"}) == ()
