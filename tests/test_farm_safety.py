"""Farm-grade safety: hostile patterns and YAML refused, other people's files kept, one run per root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from stylefarm.api import run_workflow

WF = "inputs: [{generate: noise, count: 2, width: 8, height: 6}]\noutput: {dir: out}\n"


def test_pattern_reading_the_environment_is_refused(cli, workflow, monkeypatch):
    monkeypatch.setenv("SECRET", "hunter2")
    wf = workflow(WF.replace("output: {dir: out}", 'output: {dir: out, pattern: '
                                                   '"{input.__init__.__globals__[os].environ[SECRET]}.png"}'))
    result = cli("validate", str(wf))
    assert result.returncode == 2 and "hunter2" not in result.stderr + result.stdout
    assert "wf.yaml:2: output.pattern:" in result.stderr and "is not allowed" in result.stderr


@pytest.mark.parametrize("pattern", ["{frame!r}.png", "{input.stem:>300}.png", "{index.real}.png"])
def test_pattern_conversions_specs_and_attributes_are_refused(cli, workflow, pattern):
    result = cli("validate", str(workflow(WF.replace("{dir: out}", f'{{dir: out, pattern: "{pattern}"}}'))))
    assert result.returncode == 2 and "not allowed" in result.stderr


def test_alias_bomb_is_refused_quickly(cli, workflow):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    wf = workflow("\n".join(lines) + "\ninputs: *a8\n")
    result = cli("validate", str(wf))  # measured, not expanded: ~10**9 nodes would take many GB
    assert result.returncode == 2 and "refused" in result.stderr
    import re

    assert int(re.search(r"expands to (\d+) YAML nodes from (\d+)", result.stderr)[1]) > 9**9


def test_duplicate_keys_name_both_lines(cli, workflow):
    wf = workflow("inputs: [{generate: noise}]\nsteps:\n  - use: resize\nsteps:\n  - use: blend\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2 and "wf.yaml:4: duplicate key 'steps' (also on line 2)" in result.stderr


@pytest.mark.parametrize("depth", [80, 5000])
def test_deep_nesting_is_a_file_line_error(cli, workflow, depth):
    result = cli("validate", str(workflow("inputs: " + "[" * depth + "]" * depth + "\n")))
    assert result.returncode == 2 and "wf.yaml:1:" in result.stderr
    assert any(text in result.stderr for text in ("nesting deeper than 64 levels", "maximum nesting depth",
                                                  "nesting too deep"))


def hold_lock(root, task="run", temp: str | None = None) -> subprocess.Popen:
    """Another stylefarm run on `root`: holds its lock (and writes a temp file) until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from stylefarm.runlock import RunLock, temp_name
        lock = RunLock(Path({str(root)!r}), {task!r}); lock.acquire()
        if {temp!r}:
            (Path({str(root)!r}) / temp_name(Path({temp!r}))).write_text("half a video")
        print("ready", flush=True); time.sleep(120)
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_second_run_on_one_root_fails_naming_the_holder_then_takes_a_stale_lock(cli, workflow, tmp_path):
    wf = workflow(WF)
    holder = hold_lock(tmp_path / "out", "shard-1-of-2", temp="v.mp4")
    try:
        result = cli("run", str(wf), "--shard", "1/2")
        assert result.returncode == 1
        assert "is in use by another stylefarm run" in result.stderr and f"pid {holder.pid}" in result.stderr
        live_temp = next((tmp_path / "out").glob(".stylefarm-*.v.mp4.*.part"))
        shard = cli("run", str(wf), "--shard", "2/2")  # the other shard of the job shares the root
        assert shard.returncode == 0, shard.stderr
        assert live_temp.exists(), "a live run's temp file must survive another run's start-up"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    result = cli("run", str(wf))  # the kernel dropped the dead holder's lock: taken over
    assert result.returncode == 0, result.stderr
    assert not live_temp.exists(), "the dead run's temp file is cleaned up"


def test_foreign_part_files_beside_and_inside_the_root_survive(workflow, tmp_path):
    out = tmp_path / "out"
    foreign = [tmp_path / "upload.bin.part", out / ".other-tool.part", out / "sub" / ".x.part"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not ours")
    report = run_workflow(workflow(WF))
    assert report["counts"]["done"] == 2
    assert all(p.exists() for p in foreign)


def _stills(folder, names=("a.png", "b.png")):
    import numpy as np

    from stylefarm.images import encode_image

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(encode_image(".png", np.full((6, 8, 3), 0.2 + 0.3 * i, np.float32), None, 8, 95))
    return folder


def test_output_that_would_overwrite_its_input_is_refused(cli, workflow, tmp_path):
    _stills(tmp_path / "shots")
    before = (tmp_path / "shots" / "a.png").read_bytes()
    wf = workflow("inputs: [{dir: shots}]\nsteps: [{use: resize, with: {scale: 0.5}}]\noutput: {dir: shots}\n")
    for args in (("validate", str(wf)), ("run", str(wf), "--force")):
        result = cli(*args)
        assert result.returncode == 2 and "would be overwritten by its own output" in result.stderr
    assert (tmp_path / "shots" / "a.png").read_bytes() == before


def test_output_folder_inside_the_input_folder_never_feeds_on_itself(workflow, tmp_path):
    _stills(tmp_path / "shots")
    wf = workflow("inputs: [{dir: shots, recursive: true}]\nsteps: [{use: resize, with: {scale: 0.5}}]\n"
                  "output: {dir: shots, pattern: '{input.stem}_small.png'}\n")
    for _ in range(3):
        report = run_workflow(wf, force=True)
        assert report["counts"]["done"] == 2
    assert sorted(p.name for p in (tmp_path / "shots").glob("*.png")) == ["a.png", "a_small.png", "b.png",
                                                                         "b_small.png"]


@pytest.mark.video
def test_video_output_over_the_input_video_is_refused(cli, workflow, tmp_path):
    import shutil

    from conftest import REPO

    shutil.copy(REPO / "workflows" / "media" / "testsrc.mp4", tmp_path / "clip.mp4")
    wf = workflow("inputs: [{path: clip.mp4}]\noutput: {dir: ., images: false, video: {path: '{input.stem}.mp4'}}\n")
    result = cli("validate", str(wf))
    assert result.returncode == 2 and "output.video.path" in result.stderr and "its own output video" in result.stderr


SLOW_PLUGIN = """
import os, time
from stylefarm import Step, hookimpl

class Slow(Step):
    name = "acme_slow"
    uses_device = False

    def process(self, batch):
        time.sleep(float(os.environ.get("ACME_SLOW_S", "0.4")))
        return [it.with_image(it.image * 0.5) for it in batch]

@hookimpl
def stylefarm_register_steps():
    return [Slow]
"""
SLOW_WF = ("inputs: [{generate: noise, count: 30, width: 8, height: 6}]\nsteps: [{use: acme_slow}]\n"
           "output: {dir: out}\nexecution: {batch_size: 1}\n")


def slow_plugin_env(tmp_path, seconds: float = 0.4) -> dict[str, str]:
    """The environment of a run that sees the `acme_slow` step (ACME_SLOW_S seconds per item),
    installed as a real distribution on PYTHONPATH; writes `SLOW_WF` as tmp_path/wf.yaml."""
    plugin = tmp_path / "plugin"
    info = plugin / "acme_slow-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (plugin / "acme_slow.py").write_text(SLOW_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-slow\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[stylefarm]\nacme_slow = acme_slow\n")
    (tmp_path / "wf.yaml").write_text(SLOW_WF)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
            "ACME_SLOW_S": str(seconds)}


def wait_for_outputs(out, count: int, proc: subprocess.Popen, pattern: str = "noise.*.png") -> None:
    """Until a running job has written `count` outputs (it holds its lock by then)."""
    deadline = time.monotonic() + 60
    while len(list(out.glob(pattern))) < count and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert len(list(out.glob(pattern))) >= count and proc.poll() is None, "the slow run ended too early"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly_reports_cancelled_and_a_rerun_resumes(tmp_path, signum, code):
    from conftest import STYLEFARM

    env = slow_plugin_env(tmp_path)
    wf = tmp_path / "wf.yaml"
    proc = subprocess.Popen([str(STYLEFARM), "run", str(wf), "--no-progress"], env=env, stderr=subprocess.PIPE,
                            text=True)
    out = tmp_path / "out"
    wait_for_outputs(out, 3, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-1000:]
    assert f"cancelled by {signal.Signals(signum).name}" in stderr
    import json

    report = json.loads((out / ".stylefarm" / "report.json").read_text())
    assert report["status"] == "cancelled" and report["signal"] == signal.Signals(signum).name
    done = report["counts"]["done"]
    assert 3 <= done < 30 and len(list(out.glob("noise.*.png"))) == done
    assert not list(out.rglob("*.part"))
    rerun = subprocess.run([str(STYLEFARM), "run", str(wf), "--no-progress"], env={**env, "ACME_SLOW_S": "0"},
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and f"skipped {done}," in rerun.stdout


def test_output_option_is_relative_to_the_shell_directory(tmp_path):
    from conftest import STYLEFARM

    (tmp_path / "wf").mkdir()
    (tmp_path / "shell").mkdir()
    (tmp_path / "wf" / "wf.yaml").write_text(WF)
    result = subprocess.run([str(STYLEFARM), "run", str(tmp_path / "wf" / "wf.yaml"), "-o", "here"],
                            cwd=tmp_path / "shell", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "shell" / "here").glob("noise.*.png"))) == 2 and not (tmp_path / "wf" / "here").exists()


@pytest.mark.video
def test_frame_range_past_the_end_warns_with_the_real_length(cli, workflow):
    from conftest import REPO

    clip = REPO / "workflows" / "media" / "testsrc.mp4"
    wf = workflow(f"inputs: [{{path: {clip}}}]\noutput: {{dir: out}}\n")
    result = cli("run", str(wf), "--frames", "5000-6000")
    assert result.returncode == 0
    assert "--frames 5000-6000 selects nothing: the inputs have frames 0-" in result.stderr


def test_force_reruns_do_not_pile_up_the_manifest(workflow, tmp_path):
    wf = workflow(WF)
    for _ in range(3):
        run_workflow(wf, force=True)
    lines = (tmp_path / "out" / ".stylefarm" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_weights_added_without_a_declared_checksum_say_so(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path / "cache"))
    src = tmp_path / "decoder.pth"
    src.write_bytes(b"PK\x03\x04 a zip archive as torch.save writes, of any content")  # passes the kind check
    added = cli("weights", "add", "adain/decoder", str(src))
    assert added.returncode == 0 and "UNVERIFIED" in added.stderr and "no sha256 is declared" in added.stderr
    assert "UNVERIFIED" in cli("weights", "verify", "adain/decoder").stdout


def test_signal_inside_an_items_bookkeeping_waits_for_its_end():
    """Files written, manifest line and report count of one item are never split by a signal."""
    from stylefarm.errors import Cancelled, cancel_on_signals, uninterrupted

    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    cancel_on_signals()
    steps = []
    try:
        with pytest.raises(Cancelled), uninterrupted():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            steps.append("finished the section")
        assert steps == ["finished the section"]
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
