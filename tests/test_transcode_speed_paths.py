"""The fast transcode paths: frames stay in the decoder's yuv420p when every step and sink takes
them as they are, and decode, compute and encode overlap through bounded queues."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import decode_codes, make_clip

from stylefarm.errors import OutputError
from stylefarm.hookspecs import hookimpl
from stylefarm.host import PluginHost
from stylefarm.item import Batch, Item
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.step import Step
from stylefarm.video import ffmpeg, yuv
from stylefarm.video.encode import Encoder, EncodeSpec
from stylefarm.video.probe import probe
from stylefarm.video.sink import color_options
from stylefarm.workflow import read_yaml_file

FRAMES = 24
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]


class Watch(Step):
    """Slow, takes every layout, and notes how far the decoder had got at each frame."""

    name = "test_watch"
    uses_device = False
    pixel_types = ("uint8", "float32", "yuv420p")
    seen: list[tuple[int, int, str]] = []  # (item index, frames the reader had produced, layout)

    def process(self, batch: Batch) -> Batch:
        for item in batch:
            time.sleep(0.02)
            reader = Reader.instances[-1] if Reader.instances else None
            Watch.seen.append((item.index, reader.produced if reader else -1, item.layout))
        return batch


class FloatOnly(Step):
    name = "test_float_only"
    uses_device = False

    def process(self, batch: Batch) -> Batch:
        return batch


class Reader(ffmpeg.ReadAhead):
    instances: list[ffmpeg.ReadAhead] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Reader.instances.append(self)


class _Plugin:
    @hookimpl
    def stylefarm_register_steps(self):
        return [Watch, FloatOnly]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_Plugin(), "stylefarm-tests")])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", frames=FRAMES, size="160x120", rate="24")


def plan_for(host, tmp: Path, clip: Path, steps: str = "[]", output: str = "images: false, video: {path: out.mp4}"):
    path = tmp / "wf.yaml"
    path.write_text(f"inputs: [{{path: {clip}}}]\nsteps: {steps}\noutput: {{dir: out, {output}}}\n"
                    "execution: {batch_size: 1}\n")
    return build_plan(read_yaml_file(path), tmp, host=host)


def run(plan) -> dict:
    report = Run(plan, progress=False).execute()
    assert report["counts"]["failed"] == 0, report["failures"]
    return report


def frame_md5s(path: Path) -> list[str]:
    out = ffmpeg.run(["-v", "error", "-i", str(path), "-an", "-f", "framemd5", "-"]).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def test_identity_transcode_writes_the_frames_ffmpeg_alone_writes(host, clip, tmp_path):
    plan = plan_for(host, tmp_path, clip, output="images: false, video: {path: out.mp4, preset: veryfast, crf: 18}")
    assert plan.sources[0].layout == "yuv420p"
    run(plan)
    alone = tmp_path / "alone.mp4"
    ffmpeg.run(["-v", "error", "-y", "-i", str(clip), *X264, "-c:a", "copy", str(alone)])
    ours = frame_md5s(tmp_path / "out" / "out.mp4")
    assert len(ours) == FRAMES and ours == frame_md5s(alone)


@pytest.mark.parametrize("steps, output", [
    ("[{use: test_float_only}]", "images: false, video: {path: out.mp4}"),
    ("[]", "video: {path: out.mp4}"),  # the images sink wants RGB
    ("[]", "images: false, video: {path: out.mp4, pix_fmt: yuv444p}"),
    ("[{use: resize, with: {scale: 0.5}, save: true}]", "images: false, pattern: '{input.stem}_{step}.png', "
                                                         "video: {path: out.mp4}"),
])
def test_frames_stay_rgb_when_a_step_or_sink_needs_rgb(host, clip, tmp_path, steps, output):
    plan = plan_for(host, tmp_path, clip, steps, output)
    assert plan.sources[0].layout == "rgb"


def test_full_range_video_is_decoded_to_rgb(host, tmp_path):
    full = make_clip(tmp_path / "pc.mp4", frames=4, audio=False, extra=["-color_range", "pc"])
    assert plan_for(host, tmp_path, full).sources[0].layout == "rgb"


def _psnr(a: Path, b: Path) -> float:
    decode = [ffmpeg.run(["-v", "error", "-i", str(p), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], binary=True).stdout
              for p in (a, b)]
    x, y = (np.frombuffer(d, np.uint8).astype(np.float64) for d in decode)
    return 10 * np.log10(255.0 ** 2 / np.mean((x - y) ** 2))


def test_resize_on_yuv_planes_matches_the_rgb_path_and_keeps_frame_order(host, clip, tmp_path):
    steps = "[{use: resize, with: {scale: 0.5}}]"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fast = plan_for(host, tmp_path / "a", clip, steps)
    slow = plan_for(host, tmp_path / "b", clip, steps, "images: false, frames: {pattern: 'f/{frame:04d}.png'}, "
                                                       "video: {path: out.mp4}")
    assert (fast.sources[0].layout, slow.sources[0].layout) == ("yuv420p", "rgb")
    run(fast)
    run(slow)
    out = tmp_path / "a" / "out" / "out.mp4"
    info = probe(out)
    assert (info.width, info.height, info.frames) == (80, 60, FRAMES)
    assert decode_codes(out) == list(range(FRAMES))
    assert _psnr(out, tmp_path / "b" / "out" / "out.mp4") > 30


def _yuv_frames(path: Path) -> np.ndarray:
    info = probe(path)
    raw = ffmpeg.run(["-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], binary=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height * 3 // 2, info.width).astype(int)


LOSSLESS = "images: false, video: {path: out.mp4, crf: 0}"


@pytest.mark.parametrize("with_, size, max_diff", [("{scale: 0.5}", (80, 60), 0), ("{width: 120}", (120, 90), 1)])
def test_a_leading_shrink_runs_in_the_decoder_with_the_steps_pixels(host, clip, tmp_path, with_, size, max_diff):
    """The decoder's area scale gives the step's own pixels at 1/2 and within 1 level otherwise;
    the frames keep their order and the report says where the step ran."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fast = plan_for(host, tmp_path / "a", clip, f"[{{use: resize, with: {with_}}}]", LOSSLESS)
    slow = plan_for(host, tmp_path / "b", clip, f"[{{use: resize, with: {with_[:-1]}, in_decoder: false}}}}]", LOSSLESS)
    assert fast.sources[0].scaled == size and fast.chain[0].in_decoder
    assert slow.sources[0].scaled is None and not slow.chain[0].in_decoder
    assert "shrunk to {}x{} by the decoder".format(*size) in fast.sources[0].describe()
    report = run(fast)
    assert report["steps"]["resize"]["in_decoder"] and report["steps"]["resize"]["items"] == FRAMES
    run(slow)
    ours, step = (_yuv_frames(tmp_path / d / "out" / "out.mp4") for d in "ab")
    assert ours.shape == step.shape == (FRAMES, size[1] * 3 // 2, size[0])
    assert np.abs(ours - step).max() <= max_diff
    assert decode_codes(tmp_path / "a" / "out" / "out.mp4") == list(range(FRAMES))


def test_a_frame_range_shrunk_in_the_decoder_keeps_its_frame_numbers(host, clip, tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(f"inputs: [{{path: {clip}, frames: '5-12'}}]\nsteps: [{{use: resize, with: {{scale: 0.5}}}}]\n"
                    "output: {dir: out, images: false, video: {path: out.mp4}}\n")
    plan = build_plan(read_yaml_file(path), tmp_path, host=host)
    assert plan.sources[0].scaled == (80, 60)
    run(plan)
    assert decode_codes(tmp_path / "out" / "out.mp4") == list(range(5, 13))


@pytest.mark.parametrize("steps, output", [
    ("[{use: resize, with: {scale: 2}}]", "images: false, video: {path: out.mp4}"),  # growing: bilinear, not here
    ("[{use: resize, with: {width: 81}}]", "images: false, video: {path: out.mp4}"),  # odd target
    ("[{use: test_watch}, {use: resize, with: {scale: 0.5}}]", "images: false, video: {path: out.mp4}"),  # not first
    ("[{use: resize, with: {scale: 0.5}}]", "video: {path: out.mp4}"),  # RGB frames for the images sink
])
def test_other_resizes_stay_in_the_step(host, clip, tmp_path, steps, output):
    plan = plan_for(host, tmp_path, clip, steps, output)
    assert plan.sources[0].scaled is None and not any(call.in_decoder for call in plan.chain)


def test_odd_resize_target_of_a_yuv_frame_goes_through_rgb_and_is_padded(host, clip, tmp_path):
    plan = plan_for(host, tmp_path, clip, "[{use: resize, with: {width: 81}}]")
    assert plan.sources[0].layout == "yuv420p"
    run(plan)
    info = probe(tmp_path / "out" / "out.mp4")
    assert (info.width, info.height, info.frames) == (82, 62, FRAMES)


def test_yuv_source_colour_tags_are_kept_on_untouched_frames(host, tmp_path):
    tagged = make_clip(tmp_path / "709.mp4", frames=4, audio=False,
                       extra=["-vf", "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709"])
    plan = plan_for(host, tmp_path, tagged)
    run(plan)
    assert probe(tmp_path / "out" / "out.mp4").color[:2] == ("tv", "bt709")


def test_colour_tags_map_to_setparams_only_when_unambiguous():
    assert color_options(["tv", "bt709", "progressive"]) == {"range": "tv", "colorspace": "bt709",
                                                             "color_primaries": "bt709", "color_trc": "bt709"}
    assert color_options(["tv", "bt2020nc/bt2020/smpte2084"]) == {
        "range": "tv", "colorspace": "bt2020nc", "color_primaries": "bt2020", "color_trc": "smpte2084"}
    assert color_options(["tv", "bt709/unknown/unknown"]) == {"range": "tv", "colorspace": "bt709"}
    assert color_options(["bt470bg", "progressive"]) == {}  # its transfer is gamma28: not named by the banner


def test_decoder_runs_a_bounded_few_frames_ahead_of_a_slow_step_in_order(host, clip, tmp_path, monkeypatch):
    monkeypatch.setattr("stylefarm.video.source.ffmpeg.ReadAhead", Reader)
    Reader.instances.clear()
    Watch.seen.clear()
    run(plan_for(host, tmp_path, clip, "[{use: test_watch}]"))
    reader = Reader.instances[-1]
    assert [index for index, _, _ in Watch.seen] == list(range(FRAMES))
    assert {layout for _, _, layout in Watch.seen} == {"yuv420p"}
    ahead = [produced - index for index, produced, _ in Watch.seen]
    assert max(ahead) > 2  # the decoder did work while the step slept ...
    assert max(ahead) <= reader.depth + 2 and reader.peak <= reader.depth  # ... but never far ahead
    assert not reader.thread.is_alive()


def test_read_ahead_raises_the_threads_error_where_the_consumer_reads():
    values = iter([1, 2, 3])

    def produce():
        value = next(values, None)
        if value is None:
            raise ValueError("decoder pipe broke")
        return value

    reader = ffmpeg.ReadAhead(produce, 2)
    got = []
    with pytest.raises(ValueError, match="decoder pipe broke"):
        for value in reader:
            got.append(value)
    assert got == [1, 2, 3]
    reader.close()


def _encoder(tmp_path: Path, **spec) -> Encoder:
    return Encoder(EncodeSpec(64, 48, Fraction(24), "libx264", "yuv420p", {"preset": "ultrafast"}, **spec),
                   tmp_path / "out.mp4")


def test_encoder_dying_mid_stream_is_one_output_error_and_leaves_no_part_file(tmp_path):
    encoder = _encoder(tmp_path)
    frame = np.zeros((48, 64, 3), np.uint8)
    encoder.send(frame)
    encoder.pipe.proc.kill()
    deadline = time.monotonic() + 30
    with pytest.raises(OutputError) as failure:
        while time.monotonic() < deadline:  # the writer thread notices once its buffered frames hit the pipe
            encoder.send(frame)
    assert str(failure.value).startswith(f"cannot write video {tmp_path / 'out.mp4'}: ffmpeg killed by SIGKILL")
    assert "\n" not in str(failure.value)
    assert not encoder.writer.is_alive() and not list(tmp_path.iterdir())


def test_encoder_takes_yuv_frames_and_abort_stops_its_writer(tmp_path):
    y = np.full((48, 64), 120, np.uint8)
    uv = np.full((24, 32), 128, np.uint8)
    encoder = _encoder(tmp_path, input_pix_fmt="yuv420p")
    for _ in range(5):
        encoder.send(yuv.join(y, uv, uv))
    assert probe(encoder.finish()).frames == 5
    encoder = _encoder(tmp_path / "again", input_pix_fmt="yuv420p")
    encoder.send(yuv.join(y, uv, uv))
    encoder.abort()
    assert not encoder.writer.is_alive() and not list((tmp_path / "again").iterdir())


SLOW_PLUGIN = """
import os
import time
from stylefarm import Step, hookimpl

class Slow(Step):
    name = "acme_slow_video"
    uses_device = False
    pixel_types = ("uint8", "float32", "yuv420p")

    def process(self, batch):
        time.sleep(0.15)
        if batch[0].index == 8:
            open(os.environ["ACME_MARKER"], "w").close()
        return batch

@hookimpl
def stylefarm_register_steps():
    return [Slow]
"""


def test_sigterm_during_a_yuv_transcode_leaves_no_part_file(tmp_path):
    from conftest import STYLEFARM

    plugin = tmp_path / "plugin"
    info = plugin / "acme_slow_video-1.0.dist-info"
    info.mkdir(parents=True)
    (plugin / "acme_slow_video.py").write_text(SLOW_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-slow-video\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[stylefarm]\nacme_slow_video = acme_slow_video\n")
    clip = make_clip(tmp_path / "in.mp4", frames=48, size="160x120", rate="24")
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"inputs: [{{path: {clip}}}]\nsteps: [{{use: acme_slow_video}}]\n"
                  "output: {dir: out, images: false, video: {path: out.mp4}}\nexecution: {batch_size: 1}\n")
    marker = tmp_path / "frame8"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
           "ACME_MARKER": str(marker)}
    proc = subprocess.Popen([str(STYLEFARM), "run", str(wf), "--no-progress"], env=env, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # frames are being decoded ahead, computed and queued for the encoder
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-1000:]
    assert not list((tmp_path / "out").rglob("*.part")) and not (tmp_path / "out" / "out.mp4").exists()


class Model(Step):
    """A stand-in model step (`uses_device`): slow, notes when it computes."""

    name = "test_model"
    computing = threading.Event()
    torn_down = 0

    def process(self, batch: Batch) -> Batch:
        Model.computing.set()
        time.sleep(0.03 if batch[0].index % 2 else 0.01)
        Model.computing.clear()
        if any(item.meta.get("explode") for item in batch):
            raise Boom("chain exploded")
        return [item.with_image(item.image * 0.5) for item in batch]

    def teardown(self) -> None:
        Model.torn_down += 1


class Boom(BaseException):
    """Not an Exception: ChainRunner does not turn it into an item failure."""


def _items(n: int, log: list[tuple[int, bool]], explode: int = -1):
    for i in range(n):
        log.append((i, Model.computing.is_set()))
        yield Item(source="gen", index=i, image=np.full((4, 4, 3), 0.5, np.float32), meta={"explode": i == explode})


def _executor(batch_size: int = 2):
    from stylefarm.executors.local import LocalExecutor
    from stylefarm.workflow import ExecutionSpec

    return LocalExecutor(ExecutionSpec(batch_size=batch_size, device="cpu"))


def test_model_chain_computes_while_the_next_batch_is_read_in_order_and_bounded():
    from stylefarm.executors.base import StepCall
    from stylefarm.step import StepOptions

    pulled: list[tuple[int, bool]] = []
    ahead = []
    outcomes = []
    for outcome in _executor().map([StepCall("test_model", Model, StepOptions())], _items(20, pulled)):
        ahead.append(len(pulled) - len(outcomes))
        outcomes.append(outcome)
    assert [o.item.index for o in outcomes] == list(range(20))
    assert all(o.error is None and o.result.image[0, 0, 0] == 0.25 for o in outcomes)
    assert any(computing for _, computing in pulled)  # items were read while the model computed
    assert max(ahead) <= 3 * 2  # at most AHEAD batches in flight plus the one being read


def test_model_chain_error_is_raised_where_the_loop_reads_and_the_worker_ends():
    from stylefarm.executors.base import StepCall
    from stylefarm.step import StepOptions

    Model.torn_down = 0
    got = []
    with pytest.raises(Boom, match="chain exploded"):
        for outcome in _executor(1).map([StepCall("test_model", Model, StepOptions())], _items(10, [], explode=4)):
            got.append(outcome.item.index)
    assert got == [0, 1, 2, 3] and Model.torn_down == 1
    assert not [t for t in threading.enumerate() if t.name == "stylefarm-compute"]


def test_model_chain_stopped_early_stops_its_worker():
    from stylefarm.executors.base import StepCall
    from stylefarm.step import StepOptions

    Model.torn_down = 0
    stream = _executor(1).map([StepCall("test_model", Model, StepOptions())], _items(50, []))
    assert next(stream).item.index == 0
    stream.close()
    assert Model.torn_down == 1
    assert not [t for t in threading.enumerate() if t.name == "stylefarm-compute"]


@pytest.mark.skipif(not Path("/proc/sys/fs/pipe-max-size").is_file(), reason="Linux pipe sizes")
def test_frame_pipes_are_widened_both_ways():
    """Decoder and encoder pipes hold a 720p yuv420p frame in one go (F_SETPIPE_SZ), unless the
    system caps pipes lower; then they hold what the cap allows."""
    import fcntl

    want = min(ffmpeg.PIPE_BYTES, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
    for reading in (True, False):
        pipe = ffmpeg.Pipe([ffmpeg.ffmpeg_exe(), "-hide_banner", "-version"], reading=reading)
        fd = (pipe.proc.stdout if reading else pipe.proc.stdin).fileno()
        assert fcntl.fcntl(fd, 1032) >= want  # F_GETPIPE_SZ
        pipe.kill()
