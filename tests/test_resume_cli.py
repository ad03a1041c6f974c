"""Resume through the real CLI: one folder is one recipe however it is named, --dry-run decides as
the run does, and a re-delivered input (picture or video) is redone and said."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import STYLEFARM

from stylefarm.images import encode_image, read_image
from stylefarm.recipe import digest

WF = """\
version: 1
inputs:
  - dir: media
    recursive: true
steps:
  - use: resize
    with: {scale: 0.5}
  - use: blend
    with: {amount: 0.7}
output:
  dir: ../out/classic
  pattern: "{input.stem}_{step}.png"
"""


def picture(path: Path, value: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(value * 100))
    path.write_bytes(encode_image(".png", (rng.random((16, 24, 3)) * value).astype(np.float32), None, 8, 95))


@pytest.fixture
def job(tmp_path) -> Path:
    """wf/classic.yaml with three pictures (one in a sub-folder); outputs go to out/classic."""
    for name, value in [("astronaut.png", 0.3), ("m3/coffee.png", 0.6), ("rocket.png", 0.9)]:
        picture(tmp_path / "wf" / "media" / name, value)
    path = tmp_path / "wf" / "classic.yaml"
    path.write_text(WF)
    return path


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / ".stylefarm" / "manifest.jsonl").read_text().splitlines()]


def rewrite_manifest(out: Path, change) -> None:
    lines = [change(entry) for entry in manifest_lines(out)]
    (out / ".stylefarm" / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))


def redeliver(path: Path, value: float) -> None:
    """New content, and an mtime surely not the old one (coarse clocks on some file systems)."""
    before = path.stat().st_mtime_ns
    picture(path, value)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_same_output_folder_named_two_ways_redoes_nothing(cli, job, tmp_path):
    out = tmp_path / "out" / "classic"
    assert "done 3, skipped 0" in cli("run", str(job), "--no-progress").stdout
    for how in (["-o", str(out)], [], ["-o", "../out/classic"]):
        result = cli("run", str(job), "--no-progress", *how, cwd=job.parent)
        assert result.returncode == 0, result.stderr
        assert "done 0, skipped 3" in result.stdout and "redone" not in result.stdout, (how, result.stdout)


def test_manifest_that_recorded_the_output_folder_costs_no_redo(cli, job, tmp_path):
    """Older stylefarm put `output.dir` (as written) into the recipe and its hash."""
    out = tmp_path / "out" / "classic"
    cli("run", str(job), "--no-progress")
    (recipe_file,) = (out / ".stylefarm" / "recipes").glob("*.json")
    old = json.loads(recipe_file.read_text())
    old["output"]["dir"] = "../out/classic"
    old_hash = digest(old)
    (out / ".stylefarm" / "recipes" / f"{old_hash}.json").write_text(json.dumps(old))
    rewrite_manifest(out, lambda e: {k: v for k, v in {**e, "recipe": old_hash}.items() if k != "inputs"})
    same = cli("run", str(job), "--no-progress", "-o", str(out))
    assert "done 0, skipped 3" in same.stdout and "redone" not in same.stdout, same.stdout
    changed = cli("run", str(job), "--no-progress", "--set", "steps.1.with.amount=0.2", "-o", str(out))
    assert "redone 3 because the recipe changed: 1 step changed: blend.amount\n" in changed.stdout


def test_dry_run_says_what_the_run_will_redo_and_why(cli, job):
    cli("run", str(job), "--no-progress")
    change = ("--set", "steps.1.with.amount=0.1")
    dry = cli("run", str(job), "--dry-run", *change)
    assert dry.returncode == 0, dry.stderr
    assert "already finished (resume skips them): 0" in dry.stdout
    assert "to do: 3 (3 of them redone, why below)" in dry.stdout
    line = "redone 3 because the recipe changed: 1 step changed: blend.amount"
    assert line in dry.stdout
    assert line in cli("run", str(job), "--no-progress", *change).stdout
    assert "already finished (resume skips them): 3" in cli("run", str(job), "--dry-run", *change).stdout


def test_dry_run_of_a_shard_counts_only_its_items(cli, job):
    first = cli("run", str(job), "--dry-run", "--shard", "1/2")
    assert first.returncode == 0, first.stderr
    assert "items: 1 selected (2 left to other tasks)" in first.stdout and "to do: 1" in first.stdout
    assert "done 1, skipped 0" in cli("run", str(job), "--no-progress", "--shard", "1/2").stdout
    assert "already finished (resume skips them): 1" in cli("run", str(job), "--dry-run", "--shard", "1/2").stdout
    other = cli("run", str(job), "--dry-run", "--shard", "2/2").stdout
    assert "items: 2 selected (1 left to other tasks)" in other and "already finished (resume skips them): 0" in other
    assert "to do: 2" in other


def test_redelivered_picture_is_redone_and_said(cli, job, tmp_path):
    out = tmp_path / "out" / "classic"
    cli("run", str(job), "--no-progress")
    before, _, _ = read_image(out / "coffee_blend.png")
    redeliver(job.parent / "media" / "m3" / "coffee.png", 0.1)
    line = "redone 1 because its input changed: coffee.png"
    dry = cli("run", str(job), "--dry-run").stdout
    assert line in dry and "already finished (resume skips them): 2" in dry, dry
    again = cli("run", str(job), "--no-progress")
    assert "done 1, skipped 2" in again.stdout and line in again.stdout, again.stdout
    after, _, _ = read_image(out / "coffee_blend.png")
    assert np.abs(after - before).mean() > 0.05  # the new plate's result, not the stale one
    assert "done 0, skipped 3" in cli("run", str(job), "--no-progress").stdout


def test_manifest_without_input_stats_is_trusted(cli, job, tmp_path):
    """Lines of an older stylefarm have no input stats: no redo for them, whatever the inputs."""
    out = tmp_path / "out" / "classic"
    cli("run", str(job), "--no-progress")
    assert all("inputs" in entry for entry in manifest_lines(out))
    rewrite_manifest(out, lambda e: {k: v for k, v in e.items() if k != "inputs"})
    redeliver(job.parent / "media" / "rocket.png", 0.2)
    assert "done 0, skipped 3" in cli("run", str(job), "--no-progress").stdout


def test_farm_shards_writing_one_manifest_each_record_their_inputs(job, tmp_path):
    tasks = [subprocess.Popen([str(STYLEFARM), "run", str(job), "--no-progress", "--shard", f"{i}/2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    assert [task.wait(timeout=300) for task in tasks] == [0, 0]
    entries = manifest_lines(tmp_path / "out" / "classic")
    assert len(entries) == 3 and all(len(e["inputs"]) == 1 for e in entries)
    redeliver(job.parent / "media" / "astronaut.png", 0.4)
    result = subprocess.run([str(STYLEFARM), "run", str(job), "--no-progress"], capture_output=True, text=True)
    assert "done 1, skipped 2" in result.stdout and "its input changed: astronaut.png" in result.stdout


@pytest.mark.video
def test_redelivered_video_redoes_its_frames_only(cli, tmp_path):
    from video_fixtures import make_clip

    media = tmp_path / "media"
    media.mkdir()
    make_clip(media / "a.mp4", frames=4, size="32x24", audio=False)
    make_clip(media / "b.mp4", frames=4, size="32x24", audio=False)
    wf = tmp_path / "wf.yaml"
    wf.write_text("version: 1\ninputs: [{path: media/a.mp4}, {path: media/b.mp4}]\n"
                  "output: {dir: out, frames: {pattern: '{input.stem}.{frame:04d}.png'}}\n")
    assert "done 8, skipped 0" in cli("run", str(wf), "--no-progress").stdout
    before = (media / "b.mp4").stat().st_mtime_ns
    make_clip(media / "b.mp4", frames=4, size="40x30", audio=False)
    os.utime(media / "b.mp4", ns=(before + 2_000_000_000, before + 2_000_000_000))
    line = "redone 4 because their input changed: b.mp4"
    assert line in cli("run", str(wf), "--dry-run").stdout
    again = cli("run", str(wf), "--no-progress")
    assert "done 4, skipped 4" in again.stdout and line in again.stdout, again.stdout + again.stderr
    image, _, _ = read_image(tmp_path / "out" / "b.0000.png")
    assert image.shape[:2] == (30, 40)
