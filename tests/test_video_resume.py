"""Video resume after a failed frame: recorded frames reach the video sink in input order."""

from __future__ import annotations

import _test_steps
import pytest
import yaml
from video_fixtures import decode_codes, make_clip

from stylefarm.errors import EXIT_OK, EXIT_PARTIAL
from stylefarm.host import PluginHost
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.workflow import read_yaml_file

FRAMES = 300  # more than the video sink's 256-frame reorder window


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "long.mp4", frames=FRAMES, size="64x48", audio=False)


@pytest.mark.video
@pytest.mark.parametrize("failed", [0, 150, FRAMES - 1])
def test_video_resume_after_failed_frame_rebuilds_every_frame_in_order(long_clip, tmp_path, failed, monkeypatch):
    host = PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])
    monkeypatch.delenv("STYLEFARM_TEST_HEALED", raising=False)
    data = {"inputs": [{"path": str(long_clip)}],
            "steps": [{"use": "test_poison", "with": {"indexes": [failed], "unless_env": "STYLEFARM_TEST_HEALED"}}],
            "output": {"dir": "out", "pattern": "{input.stem}.{frame:04d}.png",
                       "video": {"path": "v.mp4", "preset": "ultrafast"}},
            "execution": {"batch_size": 8}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(data))

    def run() -> Run:
        run = Run(build_plan(read_yaml_file(path), tmp_path, host=host), progress=False)
        run.execute()
        return run

    first = run()
    assert first.exit_code == EXIT_PARTIAL  # the video cannot be finished: one more failure, not a fatal error
    assert [f["item"] for f in first.report.failures] == [f"{long_clip}#{failed}", "output.video"]
    monkeypatch.setenv("STYLEFARM_TEST_HEALED", "1")
    second = run()
    assert second.exit_code == EXIT_OK, second.report.failures
    assert second.report.data["counts"] == {"done": 1, "skipped": FRAMES - 1, "failed": 0}
    assert decode_codes(tmp_path / "out" / "v.mp4") == [i % 256 for i in range(FRAMES)]


@pytest.mark.video
def test_a_video_held_back_by_a_failed_frame_names_it_by_frame_number(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=12, size="64x48", audio=False)
    host = PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])
    data = {"inputs": [{"path": str(clip), "start_number": 1001}],
            "steps": [{"use": "test_poison", "with": {"indexes": [4]}}],
            "output": {"dir": "out", "images": False, "video": {"path": "v.mp4", "preset": "ultrafast"}}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(data))
    run = Run(build_plan(read_yaml_file(path), tmp_path, host=host), progress=False)
    run.execute()
    video = next(f["error"] for f in run.report.failures if f["item"] == "output.video")
    assert "frame 1005 never arrived; received 4 of 12 frames" in video, video
