"""Segment mode on real clusters: a Ray head plus two worker nodes on this machine, and Dask
with two worker processes. Segments must run on different nodes, a node removed mid-run must
not change the output (identical to the local segment-mode run), and a worker that cannot see
the files must be caught by the storage probe (a real one: the worker runs in a mount namespace
where the output folder is an empty tmpfs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import _test_steps
import pytest
import yaml
from _ray_fixture import TESTS, multi_node_cluster, tests_on_pythonpath
from video_fixtures import decode_codes, make_clip

from stylefarm.errors import EXIT_OK, ClusterError
from stylefarm.host import PluginHost
from stylefarm.manifest import STATE_DIR
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.workflow import read_yaml_file

FRAMES = 64


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(extra_plugins=[(_test_steps, "stylefarm-tests")])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=FRAMES, audio=True)


def make_plan(host, tmp: Path, clip: Path, out: str, slow: float = 0.0, extra=(), **execution):
    steps = [{"use": "resize", "with": {"scale": 0.5}}, *extra, {"use": "blend", "with": {"amount": 0.5}}]
    if slow:
        steps.insert(1, {"use": "test_sleep", "with": {"seconds": slow, "indexes": list(range(FRAMES))}})
    data = {"version": 1, "inputs": [{"path": str(clip)}], "steps": steps,
            "output": {"dir": out, "pattern": "{input.stem}.{frame:04d}.png",
                       "video": {"path": "{input.stem}_styled.mp4"}},
            "execution": {"device": "cpu", "batch_size": 4, "unit": "segment", "segment_frames": 16,
                          "actors": 2, **execution}}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(data))
    return build_plan(read_yaml_file(path), tmp, host=host)


def outputs(root: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(root.glob("*.png"))}
    files["video"] = (root / "clip_styled.mp4").read_bytes()
    return files


@pytest.fixture(scope="module")
def local(host, clip, tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("local")
    runner = Run(make_plan(host, tmp, clip, "out", backend="local"), progress=False)
    runner.execute()
    assert runner.exit_code == EXIT_OK
    assert decode_codes(tmp / "out" / "clip_styled.mp4") == list(range(FRAMES))
    return outputs(tmp / "out")


# --- Ray: head + two worker nodes ---------------------------------------------------------


@pytest.fixture(scope="module")
def ray_nodes():
    """A head without CPUs (the driver's node) and two 2-CPU worker nodes."""
    pytest.importorskip("ray")
    with multi_node_cluster({"num_cpus": 2}, {"num_cpus": 2}) as cluster_and_workers:
        yield cluster_and_workers


@pytest.mark.ray
def test_ray_segments_run_on_two_nodes_and_match_the_local_run(host, clip, local, ray_nodes, tmp_path):
    cluster, workers = ray_nodes
    runner = Run(make_plan(host, tmp_path, clip, "out", backend="ray", address=cluster.address), progress=False)
    report = runner.execute()
    assert runner.exit_code == EXIT_OK and report["unit"] == "segment"
    worker_nodes = {n.node_id for n in workers}
    used = {s["node"] for s in report["segments"]}
    assert used == worker_nodes, (used, worker_nodes)  # both worker nodes, never the CPU-less head
    assert outputs(tmp_path / "out") == local


@pytest.mark.ray
def test_ray_node_removed_mid_run_still_completes_identically(host, clip, local, ray_nodes, tmp_path):
    cluster, workers = ray_nodes
    plan = make_plan(host, tmp_path, clip, "out", slow=0.25, backend="ray", address=cluster.address)
    runner = Run(plan, progress=False)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(runner.execute()))
    thread.start()
    manifest = tmp_path / "out" / STATE_DIR / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and '"segment:' not in (manifest.read_text() if manifest.exists() else ""):
        time.sleep(0.05)  # the first segment is done: both nodes are busy with the next ones
    cluster.remove_node(workers[1])
    thread.join(timeout=300)
    assert not thread.is_alive() and runner.exit_code == EXIT_OK, result.get("failures")
    died = [row for row in result["workers"].values() if row.get("died")]
    assert died and died[0]["node_id"] == workers[1].node_id
    assert max(s["attempts"] for s in result["segments"]) == 2  # the lost segment ran again elsewhere
    assert outputs(tmp_path / "out") == local
    assert not list((tmp_path / "out").rglob("*.part"))


# --- Dask: two worker processes ------------------------------------------------------------


@pytest.mark.dask
def test_dask_worker_killed_mid_segment_is_retried_and_output_matches(host, clip, local, tmp_path, monkeypatch):
    tests_on_pythonpath()
    monkeypatch.setenv("STYLEFARM_DASK_PROCESSES", "1")
    kill = {"use": "test_exit", "with": {"index": 20, "marker": str(tmp_path / "killed-once")}}
    runner = Run(make_plan(host, tmp_path, clip, "out", extra=[kill], backend="dask"), progress=False)
    report = runner.execute()
    assert (tmp_path / "killed-once").exists(), "the step never killed its worker"
    assert runner.exit_code == EXIT_OK
    died = [name for name, row in report["workers"].items() if row.get("died")]
    assert len(died) == 1 and died[0] not in {s["worker"] for s in report["segments"]}  # retried elsewhere
    assert max(s["attempts"] for s in report["segments"]) == 2
    assert outputs(tmp_path / "out") == local
    assert not list((tmp_path / "out").rglob("*.part"))


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null || "
                            "mount -t tmpfs none /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def blind_worker(tmp_path):
    """A Dask scheduler and one worker that sees an empty tmpfs where the output folder is."""
    if not _unshare_works():
        pytest.skip("needs unprivileged user+mount namespaces (unshare -rm) to hide a folder from a worker")
    (tmp_path / "out").mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(scheduler_file)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker_cmd = (f"mount -t tmpfs none {tmp_path / 'out'} && exec {sys.executable} -m distributed.cli.dask_worker "
                  f"--scheduler-file {scheduler_file} --nthreads 1 --no-nanny --no-dashboard")
    deadline = time.monotonic() + 30
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = subprocess.Popen(["unshare", "-rm", "sh", "-c", worker_cmd], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
        client.wait_for_workers(1, timeout=60)
    yield str(scheduler_file)
    for proc in (worker, scheduler):
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.dask
def test_worker_without_the_output_folder_is_caught_by_the_probe(host, clip, blind_worker, tmp_path):
    plan = make_plan(host, tmp_path, clip, "out", backend="dask", address=blind_worker)
    with pytest.raises(ClusterError) as caught:
        Run(plan, progress=False).execute()
    message = str(caught.value)
    assert "cannot see the output directory" in message and "execution.unit: frame" in message
    assert "\n" not in message
    auto = make_plan(host, tmp_path, clip, "out", backend="dask", address=blind_worker, unit="auto")
    runner = Run(auto, progress=False)
    report = runner.execute()  # auto: frames go through the driver instead
    assert runner.exit_code == EXIT_OK and report["unit"] == "frame"
    assert decode_codes(tmp_path / "out" / "clip_styled.mp4") == list(range(FRAMES))
