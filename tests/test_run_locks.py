"""Runs that would write the same items never share an output root at once: a whole run excludes
every farm task and the other way round; other shards and disjoint frame ranges run side by side."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from conftest import STYLEFARM
from test_farm_safety import hold_lock, slow_plugin_env, wait_for_outputs

from stylefarm.runlock import WHOLE, covers, disjoint, task_selection

WF = "inputs: [{generate: gradient, count: 10, width: 8, height: 6}]\nsteps: [{use: resize, with: {scale: 0.5}}]\n" \
     "output: {dir: out}\n"


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_whole_run_is_refused_while_a_shard_holds_the_root_then_takes_its_dead_lock(cli, workflow, tmp_path):
    wf = workflow(WF)
    holder = hold_lock(tmp_path / "out", "shard-1-of-2")
    try:
        result = cli("run", str(wf), "--force")
        assert result.returncode == 1, result.stdout
        line = result.stderr.strip()
        assert "\n" not in line and f"pid {holder.pid} on host " in line and "running --shard 1/2 since " in line
        assert "wait for it to finish" in line and "writes every item" in line
        assert not list((tmp_path / "out").glob("gradient.*.png"))
        assert not (tmp_path / "out" / ".stylefarm" / "report.json").exists()
    finally:
        _kill(holder)
    result = cli("run", str(wf), "--force")  # the holder died: its lock is free
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("gradient.*.png"))) == 10


@pytest.mark.parametrize("task, refused, allowed", [
    ("run", [("--shard", "2/2"), ("--frames", "0-3")], []),
    ("shard-1-of-2", [("--shard", "1/3"), ("--frames", "0-9", "--shard", "2/2")], [("--shard", "2/2")]),
    ("frames-0-4", [("--frames", "3-6"), ("--shard", "2/2")], [("--frames", "5-9")]),
    ("frames-0-9.shard-1-of-2", [("--shard", "2/2"), ("--frames", "0-4")], [("--frames", "0-9", "--shard", "2/2")])])
def test_while_a_task_runs_only_tasks_with_other_items_start_beside_it(cli, workflow, tmp_path, task, refused,
                                                                       allowed):
    wf, out = workflow(WF), tmp_path / "out"
    holder = hold_lock(out, task)
    try:
        for args in refused:
            result = cli("run", str(wf), *args)
            assert result.returncode == 1 and f"pid {holder.pid}" in result.stderr, (args, result.stderr)
            assert "is in use by another stylefarm run" in result.stderr and not list(out.glob("gradient.*.png"))
        for args in allowed:
            result = cli("run", str(wf), *args)
            assert result.returncode == 0, (args, result.stderr)
            assert len(list(out.glob("gradient.*.png"))) == 5
    finally:
        _kill(holder)


def test_whole_run_is_refused_beside_a_real_shard_run_and_report_shows_it_running(tmp_path):
    env = slow_plugin_env(tmp_path, seconds=0.3)
    shard = subprocess.Popen([str(STYLEFARM), "run", "wf.yaml", "--shard", "1/2", "--no-progress"], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_outputs(tmp_path / "out", 1, shard)
        whole = subprocess.run([str(STYLEFARM), "run", "wf.yaml", "--force"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
        report = subprocess.run([str(STYLEFARM), "report", "out"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
    finally:
        _kill(shard)
    assert whole.returncode == 1 and f"pid {shard.pid}" in whole.stderr and "--shard 1/2" in whole.stderr
    assert report.returncode == 0, report.stderr
    headline, *rows = report.stdout.splitlines()
    assert ": running; " in headline and any("shard-1-of-2" in r and f"pid {shard.pid} on host" in r for r in rows)


@pytest.mark.parametrize("a, b, apart", [
    ("shard-1-of-2", "shard-2-of-2", True), ("shard-1-of-2", "shard-1-of-3", False), ("run", "shard-2-of-2", False),
    ("frames-1-10", "frames-11-20", True), ("frames-1-10", "frames-10-20", False), ("frames-1-10", "run", False),
    ("frames-1-3_7", "frames-4-6_8", True), ("frames-1-10.shard-1-of-2", "shard-2-of-2", False),
    ("frames-1-10.shard-1-of-2", "frames-1-10.shard-2-of-2", True), ("future-task", "frames-1-2", False)])
def test_tasks_are_apart_only_when_they_can_never_write_one_item(a, b, apart):
    assert disjoint(task_selection(a), task_selection(b)) is apart
    assert disjoint(task_selection(b), task_selection(a)) is apart


@pytest.mark.parametrize("pieces, target, covered", [
    (["run"], "shard-1-of-2", True), (["shard-1-of-2", "shard-2-of-2"], "run", True),
    (["shard-2-of-2"], "run", False), (["frames-1-5", "frames-6-9"], "frames-2-8.shard-1-of-3", True),
    (["frames-1-5"], "frames-1-9", False),
    (["frames-1-10.shard-1-of-2", "frames-1-10.shard-2-of-2"], "frames-3-4", True),
    (["frames-1-1000000"], "run", False)])  # frame ranges never hold stills
def test_later_runs_cover_a_task_only_when_they_hold_all_its_items(pieces, target, covered):
    assert covers([task_selection(p) for p in pieces], task_selection(target)) is covered
    assert task_selection("run") == task_selection("main") == WHOLE
