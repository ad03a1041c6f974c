"""Segment mode (`execution.unit: segment`) in one process: the reference the cluster runs
(tests/test_segments_cluster.py) must match, resume by segment, faults, warm-up, stills, the
storage probe and how `auto` chooses."""

from __future__ import annotations

import json
from pathlib import Path

import _test_steps
import numpy as np
import pytest
import yaml
from video_fixtures import decode_codes, make_clip

from stylefarm.errors import EXIT_OK, EXIT_PARTIAL, WorkflowError
from stylefarm.host import PluginHost
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.segment_run import segment_unit, video_ranges
from stylefarm.segment_work import probe_marker, probe_storage
from stylefarm.shard import make_filter
from stylefarm.video.probe import probe
from stylefarm.workflow import read_yaml_file

FRAMES = 50


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=FRAMES)


def plan_for(host, tmp: Path, clip: Path, out: str, extra_steps=(), unit="segment", output=None, **execution):
    data = {"version": 1, "inputs": [{"path": str(clip)}],
            "steps": [{"use": "resize", "with": {"scale": 0.5}}, *extra_steps,
                      {"use": "blend", "with": {"amount": 0.5}}],
            "output": {"dir": out, "pattern": "{input.stem}.{frame:04d}.png",
                       "video": {"path": "{input.stem}_styled.mp4"}, **(output or {})},
            "execution": {"device": "cpu", "batch_size": 4, "unit": unit, "segment_frames": 16, **execution}}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(data))
    return build_plan(read_yaml_file(path), tmp, host=host)


def run(plan, **kwargs) -> tuple[Run, dict]:
    runner = Run(plan, progress=False, **kwargs)
    return runner, runner.execute()


def pngs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.png"))}


def parts(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.part")]


@pytest.fixture(scope="module")
def frame_mode(host, clip, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("frame")
    runner, _ = run(plan_for(host, tmp, clip, "out", unit="frame"))
    assert runner.exit_code == EXIT_OK
    return tmp / "out"


def test_segment_mode_writes_what_frame_mode_writes(host, clip, frame_mode, tmp_path):
    runner, report = run(plan_for(host, tmp_path, clip, "out"))
    assert runner.exit_code == EXIT_OK and report["unit"] == "segment"
    assert [(s["first"], s["last"], s["status"]) for s in report["segments"]] == [
        (0, 15, "done"), (16, 31, "done"), (32, 49, "done")]  # the 2-frame tail joined the last one
    assert pngs(tmp_path / "out") == pngs(frame_mode)
    video, source = probe(tmp_path / "out" / "clip_styled.mp4"), probe(clip)
    assert (video.frames, video.fps, video.audio_codec) == (FRAMES, source.fps, "aac")
    assert decode_codes(tmp_path / "out" / "clip_styled.mp4") == list(range(FRAMES))
    assert abs(video.duration - source.duration) < 0.05
    assert not parts(tmp_path / "out")


def test_rerun_skips_finished_segments_and_redoes_only_a_missing_one(host, clip, tmp_path):
    plan = plan_for(host, tmp_path, clip, "out")
    run(plan)
    joined = (tmp_path / "out" / "clip_styled.mp4").read_bytes()
    _, again = run(plan_for(host, tmp_path, clip, "out"))
    assert again["counts"] == {"done": 0, "skipped": FRAMES, "failed": 0}
    assert {s["status"] for s in again["segments"]} == {"skipped"}
    (tmp_path / "out" / "clip.0020.png").unlink()  # one frame of the middle segment is gone
    _, third = run(plan_for(host, tmp_path, clip, "out"))
    assert [s["status"] for s in third["segments"]] == ["skipped", "done", "skipped"]
    assert third["counts"] == {"done": 16, "skipped": 34, "failed": 0}
    assert (tmp_path / "out" / "clip_styled.mp4").read_bytes() == joined


def test_poisoned_frame_fails_alone_and_its_segment_is_redone_whole(host, clip, frame_mode, tmp_path, monkeypatch):
    poison = {"use": "test_poison", "with": {"indexes": [20], "unless_env": "SEGMENT_HEALED"}}
    monkeypatch.delenv("SEGMENT_HEALED", raising=False)
    runner, report = run(plan_for(host, tmp_path, clip, "out", [poison]))
    assert runner.exit_code == EXIT_PARTIAL
    items = [f["item"] for f in report["failures"]]
    assert items == [f"{clip}#20", "output.video"], items
    assert "segment(s) clip.mp4 frames 16-31 did not finish" in report["failures"][1]["error"]
    assert set(pngs(tmp_path / "out")) == set(pngs(frame_mode)) - {"clip.0020.png"}
    assert not (tmp_path / "out" / "clip_styled.mp4").exists()
    assert not parts(tmp_path / "out")
    segs = sorted(p.name for p in (tmp_path / "out" / ".stylefarm" / "segments").rglob("*.mp4"))
    assert segs == ["00000000-00000015.mp4", "00000032-00000049.mp4"]  # no partial segment file
    monkeypatch.setenv("SEGMENT_HEALED", "1")
    runner, report = run(plan_for(host, tmp_path, clip, "out", [poison]))
    assert runner.exit_code == EXIT_OK
    assert [s["status"] for s in report["segments"]] == ["skipped", "done", "skipped"]
    assert report["counts"]["done"] == 16  # the whole segment again, from its first frame
    assert pngs(tmp_path / "out") == pngs(frame_mode)
    assert decode_codes(tmp_path / "out" / "clip_styled.mp4") == list(range(FRAMES))


def test_temporal_segment_warms_up_on_the_frames_before_it_like_a_farm_shard(host, clip, tmp_path):
    steps = [{"use": "blend", "id": "smooth", "with": {"amount": 0.9}, "temporal": {"mode": "ema", "strength": 0.6}}]
    runner, report = run(plan_for(host, tmp_path, clip, "seg", steps))
    assert runner.exit_code == EXIT_OK
    warm = [s["warmup"] for s in report["segments"]]
    assert warm[0] == 0 and warm[1] == warm[2] > 0
    assert len(pngs(tmp_path / "seg")) == FRAMES  # warm-up frames are never written
    shard_plan = plan_for(host, tmp_path, clip, "shard", steps, unit="frame", output={"video": False})
    run(shard_plan, item_filter=make_filter(frames=[(16, 31)]))
    shard = pngs(tmp_path / "shard")
    assert len(shard) == 16
    assert all(shard[name] == (tmp_path / "seg" / name).read_bytes() for name in shard)


def test_stills_segments_are_lists_of_files(host, tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(3)
    (tmp_path / "stills").mkdir()
    for i in range(5):
        iio.imwrite(tmp_path / "stills" / f"s{i}.png", (rng.random((24, 32, 3)) * 255).astype(np.uint8))
    outs = {}
    for unit in ("frame", "segment"):
        data = {"version": 1, "inputs": [{"dir": "stills"}], "steps": [{"use": "blend", "with": {"amount": 0.3}}],
                "output": {"dir": f"out-{unit}"}, "execution": {"unit": unit, "segment_frames": 2, "device": "cpu"}}
        (tmp_path / f"{unit}.yaml").write_text(yaml.safe_dump(data))
        runner, report = run(build_plan(read_yaml_file(tmp_path / f"{unit}.yaml"), tmp_path, host=host))
        assert runner.exit_code == EXIT_OK
        outs[unit] = pngs(tmp_path / f"out-{unit}")
    assert len(report["segments"]) == 3 and report["segments"][0]["segment"] == "s0.png .. s1.png (2 files)"
    assert outs["segment"] == outs["frame"] and len(outs["frame"]) == 5


def test_segment_unit_with_a_farm_selection_is_refused(host, clip, tmp_path):
    plan = plan_for(host, tmp_path, clip, "out")
    with pytest.raises(WorkflowError, match="farm tasks are segments already"):
        segment_unit(plan, make_filter(frames=[(0, 9)]))


def test_auto_picks_segments_only_for_long_videos_on_a_cluster(host, clip, tmp_path):
    assert segment_unit(plan_for(host, tmp_path, clip, "a", unit="auto"), None) == "frame"  # local backend
    assert segment_unit(plan_for(host, tmp_path, clip, "b", unit="auto", backend="ray"), None) == "segment"
    assert segment_unit(plan_for(host, tmp_path, clip, "c", unit="auto", backend="dask", segment_frames=25),
                        None) == "frame"  # 2 segments: not worth it
    ray_plan = plan_for(host, tmp_path, clip, "d", unit="auto", backend="ray")
    assert segment_unit(ray_plan, make_filter(frames=[(0, 9)])) == "frame"


def test_short_tail_joins_the_segment_before():
    assert video_ranges(0, 49, 16) == [(0, 15), (16, 31), (32, 49)]
    assert video_ranges(10, 57, 16) == [(10, 25), (26, 41), (42, 57)]
    assert video_ranges(0, 4, 16) == [(0, 4)]
    assert video_ranges(0, 8, 4) == [(0, 3), (4, 8)]


def test_probe_names_what_a_worker_cannot_reach(tmp_path):
    root, token = tmp_path / "out", "abc123"
    clip = tmp_path / "in.mp4"
    clip.write_bytes(b"x")
    missing = probe_storage([str(tmp_path / "gone.mp4")], str(root), token)
    assert missing["problem"].startswith(f"cannot read input {tmp_path / 'gone.mp4'}")
    assert "cannot see the output directory" in probe_storage([str(clip)], str(root), token)["problem"]
    marker = probe_marker(root, token)
    marker.parent.mkdir(parents=True)
    marker.write_text("another run's token")
    assert "sees another" in probe_storage([str(clip)], str(root), token)["problem"]
    marker.write_text(token)
    answer = probe_storage([str(clip)], str(root), token)
    assert answer["problem"] is None and Path(answer["wrote"]).read_text() == token


def test_report_lists_segments_with_worker_and_cpu(host, clip, tmp_path):
    run(plan_for(host, tmp_path, clip, "out"))
    report = json.loads((tmp_path / "out" / ".stylefarm" / "report.json").read_text())
    assert all(s["worker"] == "local" and s["cpu_seconds"] > 0 for s in report["segments"])
    assert report["workers"]["local"]["segments"] == 3


def test_generated_frames_are_made_on_the_worker_per_segment(tmp_path):
    """A generator source (StyleNAT walk): items carry seeds, the worker makes the pixels."""
    tiny = {"size": 16, "style_dim": 32, "n_mlp": 2, "mlp_ratio": 1, "kernels": [[3], [3], [3]],
            "dilations": [[1], [1], [1, 2]]}
    outs = {}
    for unit in ("frame", "segment"):
        data = {"version": 1, "inputs": [{"generate": "stylenat", "random_weights": True, "config": tiny,
                                          "walk": {"keyframes": [1, 2], "frames": 5}, "fps": 12}],
                "output": {"dir": unit, "pattern": "{input.stem}.{frame:04d}.png"},
                "execution": {"device": "cpu", "unit": unit, "segment_frames": 2}}
        (tmp_path / f"{unit}.yaml").write_text(yaml.safe_dump(data))
        with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
            runner, report = run(build_plan(read_yaml_file(tmp_path / f"{unit}.yaml"), tmp_path))
        assert runner.exit_code == EXIT_OK
        outs[unit] = pngs(tmp_path / unit)
    assert [(s["first"], s["last"]) for s in report["segments"]] == [(0, 1), (2, 3), (4, 5)]
    assert outs["segment"] == outs["frame"] and len(outs["frame"]) == 6


def test_dry_run_and_unit_flag_say_which_unit(clip, tmp_path, cli):
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"version: 1\ninputs: [{{path: {clip}}}]\noutput: {{dir: out, video: {{path: v.mp4}}}}\n"
                  "execution: {backend: ray, segment_frames: 16}\n")
    auto = cli("run", str(wf), "--dry-run")
    assert auto.returncode == 0 and "unit: segment of 16 frames" in auto.stdout and "if the workers see" in auto.stdout
    forced = cli("run", str(wf), "--dry-run", "--unit", "frame")
    assert "unit: frame [execution.unit=frame]" in forced.stdout
