"""`stylefarm report` of segment-mode jobs counts frames, as of frame-mode ones: a segment's
manifest line (its piece of the video) stands for the frames it covers, and per-frame lines of
the same frames count once. Real runs: Dask LocalCluster (threads) and the local executor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import _test_steps
import numpy as np
import pytest
import yaml
from video_fixtures import make_clip

from stylefarm.errors import EXIT_OK, EXIT_PARTIAL
from stylefarm.host import PluginHost
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.workflow import read_yaml_file

pytestmark = pytest.mark.video
FRAMES = 40  # five segments of 8 frames


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=FRAMES, size="64x48", audio=False)


def run_job(host, tmp: Path, inputs: list, output: dict, steps=(), **execution) -> tuple[int, Path]:
    """One real run of a workflow; returns its exit code and output root."""
    data = {"version": 1, "inputs": inputs, "steps": [{"use": "resize", "with": {"scale": 0.5}}, *steps],
            "output": {"dir": "out", "images": False, "video": {"path": "{input.stem}_styled.mp4"}, **output},
            "execution": {"device": "cpu", "batch_size": 4, "unit": "segment", "segment_frames": 8, **execution}}
    (tmp / "wf.yaml").write_text(yaml.safe_dump(data))
    runner = Run(build_plan(read_yaml_file(tmp / "wf.yaml"), tmp, host=host), progress=False)
    runner.execute()
    return runner.exit_code, tmp / "out"


def report(cli, out: Path, tmp: Path) -> tuple[str, dict, tuple[str, dict[str, int]]]:
    """The summary's headline, the --json report and the --html page's status and counts."""
    text = cli("report", str(out))
    page = tmp / "job.html"
    job = cli("report", str(out), "--json", "--html", str(page))
    assert text.returncode == job.returncode == 0, text.stderr + job.stderr
    html = page.read_text()
    counts = {k: int(v) for k, v in re.findall(r"<span>(\w+): <b>(\d+)</b></span>", html)}
    return text.stdout.splitlines()[0], json.loads(job.stdout), (re.search(r'class="status (\w+)"', html)[1], counts)


@pytest.fixture
def dask_threads(monkeypatch):
    monkeypatch.setenv("STYLEFARM_DASK_PROCESSES", "0")  # a LocalCluster of threads: cheap, real scheduling


@pytest.mark.dask
@pytest.mark.parametrize("frames", [False, True], ids=["video-only", "video-and-frames"])
def test_finished_dask_segment_job_reads_ok_in_frames(host, clip, cli, tmp_path, dask_threads, frames):
    output = {"frames": {"pattern": "f/{frame:04d}.png"}} if frames else {}
    code, out = run_job(host, tmp_path, [{"path": str(clip)}], output, backend="dask", actors=2)
    assert code == EXIT_OK
    lines = (out / ".stylefarm" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 5 + FRAMES * frames  # one line per segment (and per frame file)
    headline, job, page = report(cli, out, tmp_path)
    assert f"ok; {FRAMES} items recorded" in headline and f"done {FRAMES} of {FRAMES}, failed 0" in headline
    assert job["status"] == "ok" and job["counts"] == {"items": FRAMES, "done": FRAMES, "failed": 0}
    assert page == ("ok", job["counts"])


def test_partly_finished_segment_job_counts_the_frames_of_finished_segments(host, clip, cli, tmp_path, monkeypatch):
    poison = {"use": "test_poison", "with": {"indexes": [20], "unless_env": "HEALED"}}
    monkeypatch.delenv("HEALED", raising=False)
    code, out = run_job(host, tmp_path, [{"path": str(clip)}], {}, [poison])
    assert code == EXIT_PARTIAL  # frame 20 failed: segment 16-23 and the video are not made
    headline, job, page = report(cli, out, tmp_path)
    assert job["status"] == "partial" and job["counts"] == {"items": FRAMES, "done": FRAMES - 8, "failed": 1}
    assert f"done {FRAMES - 8} of {FRAMES}, failed 1" in headline and page == ("partial", job["counts"])
    monkeypatch.setenv("HEALED", "1")
    assert run_job(host, tmp_path, [{"path": str(clip)}], {}, [poison])[0] == EXIT_OK  # redoes that segment
    _, job, page = report(cli, out, tmp_path)
    assert job["status"] == "ok" and job["counts"] == {"items": FRAMES, "done": FRAMES, "failed": 0}
    assert page == ("ok", job["counts"])


def test_segments_of_image_files_count_their_files(host, cli, tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(5)
    (tmp_path / "stills").mkdir()
    for i in range(17):  # segments of 8 and 9 files (a 1-file tail joins the one before)
        iio.imwrite(tmp_path / "stills" / f"s{i:02d}.png", (rng.random((24, 32, 3)) * 255).astype(np.uint8))
    for images in (False, True):
        code, out = run_job(host, tmp_path, [{"dir": "stills"}], {"images": images, "video": {"path": "all.mp4"}})
        assert code == EXIT_OK
        _, job, page = report(cli, out, tmp_path)
        assert job["status"] == "ok" and job["counts"] == {"items": 17, "done": 17, "failed": 0}, images
        assert page == ("ok", job["counts"])


def test_frame_mode_job_with_a_failed_frame_counts_frames_not_the_unmade_video(host, clip, cli, tmp_path):
    """The control: the same job in frame mode; the video it could not make is a failure of the
    run, not one more item of the job."""
    poison = {"use": "test_poison", "with": {"indexes": [20]}}
    code, out = run_job(host, tmp_path, [{"path": str(clip)}], {"images": True, "pattern": "{frame:04d}.png"},
                        [poison], unit="frame")
    assert code == EXIT_PARTIAL
    headline, job, page = report(cli, out, tmp_path)
    assert [f["item"] for f in job["failures"]] == [f"{clip}#20", "output.video"]
    assert job["status"] == "partial" and job["counts"] == {"items": FRAMES, "done": FRAMES - 1, "failed": 1}
    assert f"done {FRAMES - 1} of {FRAMES}, failed 1" in headline and page == ("partial", job["counts"])
