"""Runs over part of a job, through the real CLI and ffmpeg: `--frames` is what the user asked
for (the video holds exactly those frames), a `--shard` task is a part of a job (it leaves the
video and the contact sheet to the final plain run, which makes them as a single run does), and
`stylefarm plan` names that final run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from farm_fixtures import output_hashes, stills_job, video_job
from video_fixtures import decode_codes, make_clip

from stylefarm.video.probe import probe
from stylefarm.video.sink import kept_ranges

PASS_THROUGH = """\
version: 1
inputs:
  - path: clip.mp4
    start_number: 1001
output:
  dir: out
  pattern: "{input.stem}.{frame:04d}.png"
  video: {path: "{input.stem}_styled.mp4", preset: veryfast, crf: 0}
execution:
  device: cpu
"""


@pytest.fixture
def pass_through(tmp_path) -> Path:
    """A 24-frame clip with audio whose frame k shows code k, and a workflow that keeps the codes."""
    make_clip(tmp_path / "clip.mp4", frames=24, audio=True)
    (tmp_path / "wf.yaml").write_text(PASS_THROUGH)
    return tmp_path / "wf.yaml"


def report_of(out: Path, name: str) -> dict:
    return json.loads((out / ".stylefarm" / name).read_text())


@pytest.mark.video
def test_run_frames_writes_a_video_of_just_those_frames_with_the_audio_under_them(cli, pass_through):
    result = cli("run", str(pass_through), "--frames", "1003-1012", "--no-progress")
    assert result.returncode == 0, result.stderr
    video = pass_through.parent / "out" / "clip_styled.mp4"
    info = probe(video)
    assert info.frames == 10 and decode_codes(video) == list(range(2, 12))
    assert info.audio_codec == "aac" and abs(info.duration - 10 / info.fps) < 0.05  # trimmed, not the clip's 1 s
    report = report_of(video.parent, "report.frames-1003-1012.json")
    assert report["status"] == "ok" and report["videos"][0]["frames"] == 10
    assert report["selection"]["videos"]["clip_styled.mp4"].startswith("frames 1003-1012 of 1001-1024")
    assert "clip_styled.mp4: frames 1003-1012 of 1001-1024" in result.stderr


@pytest.mark.video
def test_run_frames_with_gaps_closes_them_up_and_leaves_the_audio_out(cli, pass_through):
    result = cli("run", str(pass_through), "--frames", "1003-1005,1010-1011,1030-1040", "--no-progress")
    assert result.returncode == 0, result.stderr
    video = pass_through.parent / "out" / "clip_styled.mp4"
    assert decode_codes(video) == [2, 3, 4, 9, 10]
    assert probe(video).audio_codec is None and "no audio: the --frames selection has gaps" in result.stderr


@pytest.mark.video
def test_frames_then_a_plain_run_completes_the_whole_video(cli, pass_through):
    assert cli("run", str(pass_through), "--frames", "1001-1008", "--no-progress").returncode == 0
    result = cli("run", str(pass_through), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "done 16, skipped 8" in result.stdout
    assert decode_codes(pass_through.parent / "out" / "clip_styled.mp4") == list(range(24))


def test_kept_ranges_merge_overlaps_clip_to_the_video_and_leave_a_whole_selection_alone():
    assert kept_ranges(0, 24, 1001, ((1005, 1012), (1003, 1008), (990, 1001))) == [(0, 0), (2, 11)]
    assert kept_ranges(0, 24, 1001, ((1020, 1100),)) == [(19, 23)]
    assert kept_ranges(0, 24, 1001, ((1001, 1012), (1013, 1024))) is None  # every frame: a plain run's video
    assert kept_ranges(0, 24, 1001, None) is None


def run_plan(cli, wf: Path, chunks: int, *extra: str) -> dict:
    planned = cli("plan", str(wf), "--chunks", str(chunks), *extra)
    assert planned.returncode == 0, planned.stderr
    return json.loads(planned.stdout)


@pytest.mark.video
@pytest.mark.parametrize("job", ["video", "stills"])
def test_shards_then_the_final_run_match_a_single_run(cli, tmp_path, job):
    make = video_job if job == "video" else stills_job
    wf = make(tmp_path / "shot")
    plan = run_plan(cli, wf, 3)
    out = tmp_path / "shot" / "out"
    aggregates = {"clip_styled.mp4", "contact_sheet.png"} if job == "video" else {"contact_sheet.png"}
    for task in plan["tasks"]:
        ran = cli(*task["argv"][1:])
        assert ran.returncode == 0, ran.stderr
        assert "left to the final run without --shard" in ran.stderr
        assert not aggregates & set(output_hashes(out)), "a shard wrote a partial aggregate"
        assert report_of(out, f"report.shard-{task['task']}-of-3.json")["status"] == "ok"
    final = cli(*plan["final"]["argv"][1:])
    assert final.returncode == 0, final.stderr
    farm = output_hashes(out)
    assert aggregates <= set(farm)
    single = cli("run", str(wf), "--output", str(tmp_path / "single"), "--no-progress")
    assert single.returncode == 0, single.stderr
    assert farm == output_hashes(tmp_path / "single")


@pytest.mark.video
def test_shards_of_a_frame_range_and_their_final_run_keep_to_it(cli, pass_through):
    plan = run_plan(cli, pass_through, 2, "--frames", "1005-1014")
    assert [t["items"] for t in plan["tasks"]] == [5, 5]
    for task in plan["tasks"]:
        assert cli(*task["argv"][1:]).returncode == 0
    assert plan["final"]["argv"][-3:] == ["--frames", "1005-1014", "--no-progress"]
    final = cli(*plan["final"]["argv"][1:])
    assert final.returncode == 0, final.stderr
    assert decode_codes(pass_through.parent / "out" / "clip_styled.mp4") == list(range(4, 14))


def test_plan_caps_chunks_at_the_item_count_and_names_the_final_run(cli, tmp_path):
    wf = stills_job(tmp_path / "job", count=4)
    plan = run_plan(cli, wf, 10)
    assert plan["chunks"] == 4 and [t["shard"] for t in plan["tasks"]] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(t["items"] == 1 for t in plan["tasks"])
    final = plan["final"]
    assert final["makes"] == ["output.sheet"] and "--shard" not in final["argv"]
    assert final["argv"][1:3] == ["run", str(wf.resolve())]


def test_plan_without_aggregates_has_no_final_run(cli, tmp_path):
    wf = stills_job(tmp_path / "job", count=2)
    wf.write_text(wf.read_text().replace("  sheet: {thumb: 32}\n", ""))
    assert run_plan(cli, wf, 2)["final"] is None


@pytest.mark.video
def test_a_shard_of_a_video_only_workflow_is_refused_in_one_line_and_plan_hands_frames_over(cli, pass_through):
    pass_through.write_text(PASS_THROUGH.replace('  pattern: "{input.stem}.{frame:04d}.png"\n', "  images: false\n"))
    refused = cli("run", str(pass_through), "--shard", "1/2", "--no-progress")
    assert refused.returncode == 2
    assert "--shard 1/2: output.video needs the whole job" in refused.stderr.strip().splitlines()[-1]
    plan = run_plan(cli, pass_through, 2)
    for task in plan["tasks"]:
        ran = cli(*task["argv"][1:])
        assert ran.returncode == 0, ran.stderr
    final = cli(*plan["final"]["argv"][1:])
    assert final.returncode == 0 and "done 0, skipped 24" in final.stdout
    assert decode_codes(pass_through.parent / "out" / "clip_styled.mp4") == list(range(24))
