"""`compile: auto`, the shared compile cache, `stylefarm warmup` and the torch thread default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefarm.executors.base import ChainRunner, StepCall, busy_now, default_threads
from stylefarm.item import Item
from stylefarm.plugins import _compile
from stylefarm.plugins._compile import Compiled, fingerprint, frames_left, maybe_compile, shape_key
from stylefarm.step import Step, StepOptions

REPO = Path(__file__).resolve().parent.parent


class Tiny(torch.nn.Module):
    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.table = {"relu": scale}  # a plain attribute, like magenta's int8 table

    def forward(self, x, s):
        return torch.relu(self.conv(x)) * s.sum()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STYLEFARM_COMPILE_DIR", str(tmp_path / "compile"))
    monkeypatch.delenv("STYLEFARM_COMPILE_AHEAD", raising=False)
    return tmp_path / "compile"


def _wrapped(monkeypatch, mode="auto", cold_s: float = 60.0) -> tuple[Compiled, list[str]]:
    """A Compiled whose compile and load only record that they were asked for (no real compile)."""
    torch.manual_seed(0)
    forward = Compiled(Tiny().eval(), "tiny", mode, speedup=2.0)
    asked: list[str] = []
    monkeypatch.setattr(forward, "_compile", lambda key, args, package, row: asked.append("compile") or None)
    monkeypatch.setattr(forward, "_load", lambda key, package, row: asked.append("load") or None)
    monkeypatch.setattr(forward, "cold_estimate", lambda: cold_s)
    return forward, asked


ARGS = (torch.rand(1, 3, 8, 8), torch.ones(1, 2))


def test_auto_stays_eager_for_a_handful_of_stills(cache, monkeypatch):
    forward, asked = _wrapped(monkeypatch)
    for _ in range(5):
        forward(*ARGS)
    assert asked == []
    (row,) = forward.info["sizes"].values()
    assert row["decision"] == "eager" and row["cache"] == "cold" and "eager_call_s" in row


def test_auto_compiles_after_one_eager_frame_when_the_video_has_many_left(cache, monkeypatch):
    forward, asked = _wrapped(monkeypatch, cold_s=1e-3)
    forward.remaining = 10_000
    forward(*ARGS)
    assert asked == []  # the first frame runs eagerly: its time prices the saving
    forward(*ARGS)
    assert asked == ["compile"]


def test_auto_weighs_frames_left_times_saving_against_the_compile(cache, monkeypatch):
    forward, _ = _wrapped(monkeypatch, cold_s=10.0)
    key = shape_key(ARGS)
    forward.seen[key], forward.eager_s[key] = 1, 1.0  # saving 0.5 s per frame at speedup 2
    for remaining, expected in [(19, False), (21, True), (None, False)]:
        forward.remaining = remaining
        assert forward.worth_it(key) is expected, remaining
    forward.seen[key] = 21  # stills: as many more as seen so far
    assert forward.worth_it(key)


def test_auto_loads_a_cached_package_at_once(cache, monkeypatch):
    forward, asked = _wrapped(monkeypatch)
    package = forward.package(shape_key(ARGS))
    package.parent.mkdir(parents=True)
    package.write_bytes(b"stand-in")
    forward(*ARGS)
    assert asked == ["load"]


def test_compile_ahead_env_makes_auto_compile_the_first_frame(cache, monkeypatch):
    forward, asked = _wrapped(monkeypatch)
    monkeypatch.setenv("STYLEFARM_COMPILE_AHEAD", "1")
    forward(*ARGS)
    assert asked == ["compile"]


def test_compile_false_is_the_module_itself_and_true_compiles_at_once(cache, monkeypatch):
    net = Tiny()
    assert maybe_compile(net, False, "tiny") is net and maybe_compile(net, "false", "tiny") is net
    forward, asked = _wrapped(monkeypatch, mode=True)
    forward(*ARGS)
    assert asked == ["compile"]
    with pytest.raises(ValueError, match="not auto, true or false"):
        maybe_compile(net, "sometimes", "tiny")


def test_frames_left_comes_from_the_video_count():
    video = {"video": {"first": 100, "count": 50}}
    assert frames_left([Item("v.mp4", 109, meta=video)]) == 40
    assert frames_left([Item("v.mp4", 149, meta=video)]) == 0
    assert frames_left([Item("a.png", 0)]) is None


def test_package_key_follows_weights_plain_attributes_shape_and_threads(cache):
    torch.manual_seed(0)
    a = Tiny()
    b = Tiny()
    b.load_state_dict(a.state_dict())
    assert fingerprint(a) == fingerprint(b)
    b.table["relu"] = 2.0
    assert fingerprint(a) != fingerprint(b)
    with torch.no_grad():
        b.table["relu"] = 1.0
        b.conv.bias.add_(1e-3)
    assert fingerprint(a) != fingerprint(b)
    wrapped = Compiled(a, "tiny")
    small, big = wrapped.package("1x3x8x8,1x2"), wrapped.package("1x3x16x16,1x2")
    assert small != big and small.parent == cache / "aoti"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if before > 1 else 2)
        assert wrapped.package("1x3x8x8,1x2") != small  # generated code bakes in the thread count
    finally:
        torch.set_num_threads(before)


def test_inductor_caches_go_to_the_compile_dir(cache, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert _compile.use_compile_cache() == cache
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(cache / "inductor")


class _InfoOptions(StepOptions):
    pass


class _WithInfo(Step):
    name = "test_with_info"
    kind = "util"
    uses_device = False  # leaves torch's threads alone
    Options = _InfoOptions

    def setup(self, device):
        super().setup(device)
        self.compile_info = {"mode": "auto", "sizes": {"1x3x4x4": {"decision": "eager"}}}

    def process(self, batch):
        return [it.with_image(it.load().image) for it in batch]


def test_step_timings_carry_the_steps_compile_info():
    runner = ChainRunner([StepCall("styl", _WithInfo, _InfoOptions())], device="cpu")
    runner.setup()
    runner.run_batch([Item("a.png", 0, image=np.zeros((4, 4, 3), np.float32))])
    timing = runner.timings_dict()["styl"]
    assert timing["items"] == 1 and timing["compile"]["sizes"]["1x3x4x4"]["decision"] == "eager"


def test_thread_default_is_the_free_cores_else_the_launchers_share(monkeypatch):
    monkeypatch.delenv("STYLEFARM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr("psutil.cpu_count", lambda logical=True: 4)
    # (1-minute load average, CPUs busy in a sample now, threads): the lower of the two counts,
    # so a job that ended a moment ago (load still high, CPUs idle now) costs no threads
    for load, now, expected in [(0.0, 3.0, 4), (0.4, 3.0, 4), (1.6, 2.0, 2), (3.8, 4.0, 1), (9.0, 9.0, 1),
                                (3.8, 0.1, 4), (2.0, 1.1, 3), (2.0, None, 2)]:
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        monkeypatch.setattr("stylefarm.executors.base.busy_now", lambda now=now: now)
        assert default_threads() == expected, (load, now)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # Ray / Dask gave this worker its share
    assert default_threads() is None
    monkeypatch.setenv("STYLEFARM_THREADS", "3")
    assert default_threads() == 3


def test_busy_now_sees_a_process_spinning_on_a_core():
    import time

    assert busy_now(0.1) >= 0.0
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_now(0.5) >= 0.6  # another job holding a core (this process's own threads never count)
    finally:
        spin.kill()
        spin.wait()


class _OnDevice(_WithInfo):
    uses_device = True


def test_chain_runner_applies_the_default_unless_threads_are_set(monkeypatch):
    monkeypatch.setenv("STYLEFARM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ChainRunner([StepCall("styl", _OnDevice, _InfoOptions())], device="cpu").setup()
        assert torch.get_num_threads() == 1
        ChainRunner([StepCall("styl", _OnDevice, _InfoOptions())], device="cpu", threads=2).setup()
        assert torch.get_num_threads() == 2  # execution.threads wins
    finally:
        torch.set_num_threads(before)


def _png(path: Path, width: int, height: int) -> None:
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def test_warmup_help_has_an_example(cli):
    result = cli("warmup", "--help")
    assert result.returncode == 0 and "stylefarm warmup shots.yaml" in result.stdout


def test_warmup_of_a_workflow_without_compile_steps_says_so(cli, workflow, tmp_path):
    _png(tmp_path / "a.png", 8, 8)
    wf = workflow("version: 1\ninputs: [{path: a.png}]\nsteps: [{use: resize, with: {width: 4}}]\n"
                  "output: {dir: out}\n")
    result = cli("warmup", str(wf))
    assert result.returncode != 0
    assert "no step of this workflow has a `compile` option" in result.stderr


COUNT_COMPILES = """
import json, sys, torch
from torch._dynamo.utils import counters
from stylefarm.api import load_workflow
from stylefarm.runner import Run
run = Run(load_workflow(sys.argv[1], []), force=True, progress=False)
report = run.execute()
print(json.dumps({"compile": report["steps"]["cin26"]["compile"], "inductor": dict(counters["inductor"])}))
"""


@pytest.mark.slow
def test_warmup_fills_the_cache_and_the_next_process_only_loads(cli, workflow, tmp_path, monkeypatch):
    """One real compile (~30-60 s here): warmup writes the package into the compile dir; a later
    `run` process loads it for the first frame, and torch's counters show no inductor compile."""
    monkeypatch.setenv("STYLEFARM_COMPILE_DIR", str(tmp_path / "compile"))
    monkeypatch.setenv("STYLEFARM_THREADS", "1")
    # an earlier in-process compile (another test) set inductor's dir in this process's environment
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    _png(tmp_path / "a.png", 64, 48)
    wf = workflow("version: 1\ninputs: [{path: a.png}]\nsteps: [{use: cin26, with: {style: 7}}]\n"
                  "output: {dir: out}\n")
    result = cli("warmup", str(wf))
    assert result.returncode == 0, result.stderr
    assert "cin26 1x3x48x64,1x26: compiled in" in result.stdout
    assert list((tmp_path / "compile" / "aoti").glob("cin26-*.pt2"))
    assert any((tmp_path / "compile" / "inductor").iterdir())  # inductor's own caches live beside ours
    out = subprocess.run([sys.executable, "-c", COUNT_COMPILES, str(wf)], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    (row,) = data["compile"]["sizes"].values()
    assert row["decision"] == "compiled" and row["cache"] == "warm" and row["after_frames"] == 0
    assert not data["inductor"], f"the warm process compiled: {data['inductor']}"
    assert "already cached" in cli("warmup", str(wf)).stdout


def test_package_key_covers_the_source_of_base_classes():
    """cin26's forward is in a base class in another file: editing that file must change the key."""
    from stylefarm.plugins._compile import _source_files
    from stylefarm.plugins.cin26.model import CIN26Net

    names = {path.name for path in _source_files(CIN26Net())}
    assert {"model.py", "_cin.py"} <= names
    assert not any("torch" in path.parts for path in _source_files(CIN26Net()))
