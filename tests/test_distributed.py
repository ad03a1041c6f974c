"""Ray and Dask executors on real local clusters, and render-farm sharding.

Outputs must be byte-identical to the local executor's, also when a worker process dies
mid-run; poisoned items are reported (exit code 3) while the rest completes; shards partition
the job. Test steps live in tests/_test_steps.py so that worker processes can import them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import _test_steps
import imageio.v3 as iio
import numpy as np
import pytest
import yaml
from _ray_fixture import TESTS, ray_cluster  # noqa: F401
from click.testing import CliRunner

from stylefarm.errors import EXIT_OK, EXIT_PARTIAL
from stylefarm.executors import make_executor
from stylefarm.executors.base import StepCall
from stylefarm.host import PluginHost
from stylefarm.item import Item
from stylefarm.plan import Plan, build_plan
from stylefarm.runner import Run
from stylefarm.shard import Shard, make_filter, parse_frames, shard_sizes
from stylefarm.step import Step
from stylefarm.workflow import ExecutionSpec, read_yaml_file

N_ITEMS = 12


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ref") / "reference.png"
    rng = np.random.default_rng(7)
    iio.imwrite(path, (rng.random((16, 16, 3)) * 255).astype(np.uint8))
    return str(path)


def chain_steps(reference: str, extra: list[dict] | None = None) -> list[dict]:
    return [{"use": "resize", "with": {"scale": 0.5}}, *(extra or []),
            {"use": "color_transfer", "with": {"reference": reference, "strength": 0.7}}]


def make_plan(host, tmp: Path, out: str, steps: list[dict], **execution) -> Plan:
    data = {"version": 1, "inputs": [{"generate": "noise", "count": N_ITEMS, "width": 40, "height": 30}],
            "steps": steps, "output": {"dir": out},
            "execution": {"device": "cpu", "batch_size": 3, "actors": 2, **execution}}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(data))
    return build_plan(read_yaml_file(path), tmp, host=host)


def run_plan(plan: Plan) -> tuple[Run, dict]:
    run = Run(plan, progress=False)
    return run, run.execute()


def outputs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.png"))}


@pytest.fixture(scope="module")
def local_outputs(host, reference, tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("local")
    run, _ = run_plan(make_plan(host, tmp, "local", chain_steps(reference)))
    assert run.exit_code == EXIT_OK
    return outputs(tmp / "local")


def assert_same_as_local(root: Path, local: dict[str, bytes], missing: set[str] = frozenset()) -> None:
    got = outputs(root)
    assert set(got) == set(local) - missing
    assert all(got[name] == local[name] for name in got)


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_outputs_identical_to_local_executor(host, reference, local_outputs, tmp_path):
    run, report = run_plan(make_plan(host, tmp_path, "out", chain_steps(reference), backend="ray"))
    assert run.exit_code == EXIT_OK
    assert_same_as_local(tmp_path / "out", local_outputs)
    rows = [r for r in report["workers"].values() if r.get("items")]
    assert sum(r["items"] for r in rows) == N_ITEMS and all(r["items_per_s"] > 0 for r in rows)


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_replaces_actor_killed_mid_run_and_outputs_stay_identical(
        host, reference, local_outputs, tmp_path):
    kill = {"use": "test_exit", "with": {"index": 7, "marker": str(tmp_path / "killed-once")}}
    run, report = run_plan(make_plan(host, tmp_path, "out", chain_steps(reference, [kill]), backend="ray"))
    assert (tmp_path / "killed-once").exists(), "the step never killed its actor"
    assert run.exit_code == EXIT_OK
    assert_same_as_local(tmp_path / "out", local_outputs)
    dead = [name for name, row in report["workers"].items() if row.get("died")]
    assert len(dead) == 1 and report["workers"][dead[0]]["lost_batches"] == 1


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_item_that_always_kills_its_actor_is_isolated_and_reported(
        host, reference, local_outputs, tmp_path):
    kill = {"use": "test_exit", "with": {"index": 4}}
    plan = make_plan(host, tmp_path, "out", chain_steps(reference, [kill]), backend="ray", retries=1)
    run, report = run_plan(plan)
    assert run.exit_code == EXIT_PARTIAL
    assert [f["item"] for f in report["failures"]] == ["noise#4"]
    assert "worker died" in report["failures"][0]["error"]
    assert_same_as_local(tmp_path / "out", local_outputs, missing={"noise.0004.png"})


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_poisoned_item_reported_rest_complete(host, reference, local_outputs, tmp_path):
    poison = {"use": "test_poison", "with": {"indexes": [5]}}
    run, report = run_plan(make_plan(host, tmp_path, "out", chain_steps(reference, [poison]), backend="ray"))
    assert run.exit_code == EXIT_PARTIAL
    assert [(f["item"], f["error"]) for f in report["failures"]] == [
        ("noise#5", "step 'test_poison': ValueError: item 5 is poisoned")]
    assert_same_as_local(tmp_path / "out", local_outputs, missing={"noise.0005.png"})


def counting_items(n: int, pulled: list[int]):
    for i in range(n):
        pulled.append(i)
        yield Item(source="gen", index=i, frame=i, image=np.full((4, 4, 3), i / 100, np.float32))


def check_order_and_backpressure(backend: str) -> None:
    spec = ExecutionSpec(backend=backend, device="cpu", batch_size=2, actors=2, max_in_flight=2)
    slow = StepCall("test_sleep", _test_steps.Sleep, _test_steps.Sleep.Options(seconds=0.6, indexes=[0]))
    executor = make_executor(spec)
    pulled: list[int] = []
    ahead, order = 0, []
    try:
        for outcome in executor.map([slow], counting_items(60, pulled)):
            order.append(outcome.item.index)
            ahead = max(ahead, len(pulled) - len(order))
            assert round(float(outcome.result.image[0, 0, 0]) * 100) == outcome.item.index
    finally:
        executor.close()
    assert order == list(range(60))
    assert ahead <= (4 * 2 + 1) * 2  # reorder window of 4 x max_in_flight batches (+ the one being read)


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_output_in_input_order_with_bounded_look_ahead():
    check_order_and_backpressure("ray")


@pytest.mark.dask
def test_dask_output_in_input_order_with_bounded_look_ahead(monkeypatch):
    monkeypatch.setenv("STYLEFARM_DASK_PROCESSES", "0")
    check_order_and_backpressure("dask")


def check_temporal_routing(backend: str) -> None:
    """Frames of one source reach one step instance, in order, and batches never mix sources."""
    spec = ExecutionSpec(backend=backend, actors=2, batch_size=3, device="cpu", max_in_flight=4)
    sources = {"a.mp4": 7, "b.mp4": 5, "c.mp4": 8}  # odd lengths: batches of 3 would straddle sources

    def frames():
        for source, count in sources.items():
            for i in range(count):
                yield Item(source, i, frame=i, image=np.full((4, 4, 3), i / 10, np.float32))

    executor = make_executor(spec)
    try:
        outcomes = list(executor.map([StepCall("test_frame_log", _test_steps.FrameLog, Step.Options())], frames()))
    finally:
        executor.close()
    seen: dict[str, set[str]] = {}
    for outcome in outcomes:
        meta = outcome.result.meta
        seen.setdefault(outcome.item.source, set()).add(meta["instance"])
        assert meta["previous"] == (outcome.item.index - 1 if outcome.item.index else None), outcome.item.key
    assert [o.item.key for o in outcomes] == [f"{s}#{i}" for s, n in sources.items() for i in range(n)]
    assert all(len(instances) == 1 for instances in seen.values()), seen
    assert len(set().union(*seen.values())) == 2, "sources are spread over both workers"


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_ray_temporal_step_keeps_each_source_on_one_actor_in_order():
    check_temporal_routing("ray")


@pytest.mark.dask
def test_dask_temporal_step_keeps_each_source_on_one_worker_in_order(monkeypatch):
    monkeypatch.setenv("STYLEFARM_DASK_PROCESSES", "0")
    check_temporal_routing("dask")


@pytest.mark.dask
def test_dask_outputs_identical_and_poisoned_item_reported(monkeypatch, host, reference, local_outputs, tmp_path):
    monkeypatch.setenv("STYLEFARM_DASK_PROCESSES", "0")
    poison = {"use": "test_poison", "with": {"indexes": [2]}}
    run, report = run_plan(make_plan(host, tmp_path, "out", chain_steps(reference, [poison]), backend="dask"))
    assert run.exit_code == EXIT_PARTIAL
    assert [f["item"] for f in report["failures"]] == ["noise#2"]
    assert_same_as_local(tmp_path / "out", local_outputs, missing={"noise.0002.png"})
    assert sum(r["items"] for r in report["workers"].values()) == N_ITEMS


@pytest.mark.dask
def test_dask_worker_process_killed_mid_run_outputs_stay_identical(
        monkeypatch, host, reference, local_outputs, tmp_path):
    monkeypatch.setenv("STYLEFARM_DASK_PROCESSES", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    kill = {"use": "test_exit", "with": {"index": 7, "marker": str(tmp_path / "killed-once")}}
    run, report = run_plan(make_plan(host, tmp_path, "out", chain_steps(reference, [kill]), backend="dask"))
    assert (tmp_path / "killed-once").exists(), "the step never killed its worker"
    assert run.exit_code == EXIT_OK
    assert_same_as_local(tmp_path / "out", local_outputs)
    assert sum(r["lost_batches"] for r in report["workers"].values()) >= 1
    assert any(r["died"] is True for r in report["workers"].values())  # not `died: null`


@pytest.mark.parametrize("backend", ["ray", "dask"])
def test_unreachable_cluster_address_fails_within_the_timeout(cli, workflow, backend):
    import socket

    with socket.socket() as sock:  # a free local port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"127.0.0.1:{port}" if backend == "ray" else f"tcp://127.0.0.1:{port}"
    wf = workflow("inputs: [{generate: noise}]\nexecution: {connect_timeout: 3}\n")
    result = cli("run", str(wf), "--backend", backend, "--address", address, timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"cannot reach the {'Ray cluster' if backend == 'ray' else 'Dask scheduler'} at {address}" in result.stderr

@pytest.mark.parametrize("total", [10, None], ids=["contiguous", "round-robin"])
def test_shards_partition_the_job(total):
    keys = [f"gen#{i}" for i in range(10)]
    for count in (1, 3, 4, 10):
        taken = []
        for index in range(1, count + 1):
            keep = make_filter(Shard(index, count), total=total)
            taken.append([k for i, k in enumerate(keys) if keep(0, Item("gen", i, frame=i))])
        assert sorted(k for part in taken for k in part) == sorted(keys)
        if total:
            assert [len(part) for part in taken] == shard_sizes(total, count)
            assert [k for part in taken for k in part] == keys  # contiguous, in order


def test_frames_option_keeps_only_those_frames():
    keep = make_filter(frames=parse_frames("3-5,8"))
    assert [i for i in range(10) if keep(0, Item("gen", i, frame=i))] == [3, 4, 5, 8]
    assert not keep(0, Item("still.png", 0))


def test_plan_tasks_run_as_shards_cover_the_whole_job_once(tmp_path):
    from stylefarm.cli import cli

    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"version": 1, "inputs": [{"generate": "gradient", "count": 10,
                                                            "width": 16, "height": 12}],
                                  "steps": [{"use": "resize", "with": {"scale": 0.5}}], "output": {"dir": "out"}}))
    runner = CliRunner()
    planned = runner.invoke(cli, ["plan", str(wf), "--chunks", "3", "--set", "execution.batch_size=2"])
    assert planned.exit_code == 0, planned.output
    tasks = json.loads(planned.output)["tasks"]
    assert [t["items"] for t in tasks] == [3, 3, 4]
    per_task = []
    for task in tasks:
        assert task["argv"][:2] == ["stylefarm", "run"]
        result = runner.invoke(cli, task["argv"][1:])
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / "out/.stylefarm" / f"report.shard-{task['task']}-of-3.json").read_text())
        per_task.append({Path(p).name for p in report["outputs"]})
    assert all(not (a & b) for i, a in enumerate(per_task) for b in per_task[i + 1:])
    assert set().union(*per_task) == {f"gradient.{i:04d}.png" for i in range(10)}


def test_bad_shard_is_a_one_line_usage_error(tmp_path):
    from stylefarm.cli import main

    wf = tmp_path / "wf.yaml"
    wf.write_text(yaml.safe_dump({"version": 1, "inputs": [{"generate": "gradient", "count": 2}]}))
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(wf), "--shard", "0/3"])
    assert exit_info.value.code == 2


def test_a_dask_run_logs_its_own_lines_not_the_clusters(cli, workflow):
    """distributed's ~15 INFO start-up/shutdown lines (and worker heartbeat tracebacks on
    SIGTERM) filled farm logs; at the default level only warnings of Dask get through."""
    wf = workflow("inputs: [{generate: noise, count: 3, width: 8, height: 8}]\nsteps: [{use: resize, with: "
                  "{scale: 0.5}}]\nexecution: {backend: dask, actors: 1}\n")
    result = cli("run", str(wf), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "distributed." not in result.stderr and "done 3" in result.stdout + result.stderr
    verbose = cli("--log-level", "debug", "run", str(wf), "--no-progress", "--force")
    assert "distributed." in verbose.stderr  # still there when asked for
