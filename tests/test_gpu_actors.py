"""`gpus_per_actor` on real clusters that declare GPUs this machine does not have
(docs/distributed.md, "GPUs"): GPUs as Ray's and Dask's bookkeeping only; what runs on a real
GPU is docs/gpu.md's device check.

Ray: fractional `gpus_per_actor` packs actors two to a GPU, each actor's report row names the
GPU Ray gave it, an actor holding a GPU it cannot use is warned about, an actor given none runs
`device: auto` on the CPU, and a request no node can hold fails in one line. Dask: a request no
worker's GPU resource can hold fails in one line instead of waiting forever.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
import yaml
from _ray_fixture import multi_node_cluster

from stylefarm.errors import EXIT_FATAL, EXIT_OK, ClusterError
from stylefarm.executors.ray_executor import actor_device, gpu_warnings
from stylefarm.plan import build_plan
from stylefarm.runner import Run
from stylefarm.workflow import read_yaml_file


@pytest.fixture(scope="module")
def gpu_nodes():
    """A node with 2 CPUs and 2 GPUs and one with 2 CPUs and 1 GPU: 3 GPUs in all, at most 2 on one node."""
    pytest.importorskip("ray")
    with multi_node_cluster({"num_cpus": 2, "num_gpus": 2}, {"num_cpus": 2, "num_gpus": 1}) as cluster_and_nodes:
        yield cluster_and_nodes


def workflow(tmp: Path, **execution) -> Path:
    data = {"version": 1, "inputs": [{"generate": "noise", "count": 8, "width": 40, "height": 30}],
            "steps": [{"use": "resize", "with": {"scale": 0.5}}], "output": {"dir": "out"},
            "execution": {"backend": "ray", "device": "auto", "batch_size": 2, **execution}}
    path = tmp / "wf.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp: Path, **execution) -> tuple[Run, dict]:
    runner = Run(build_plan(read_yaml_file(workflow(tmp, **execution)), tmp), progress=False)
    return runner, runner.execute()


@pytest.mark.ray
def test_half_a_gpu_each_packs_two_actors_onto_a_gpu_and_the_report_says_which(gpu_nodes, tmp_path, caplog):
    cluster, nodes = gpu_nodes
    with caplog.at_level(logging.WARNING, logger="stylefarm.executor.ray"):
        runner, report = run(tmp_path, actors=4, gpus_per_actor=0.5, cpus_per_actor=1)
    assert runner.exit_code == EXIT_OK
    rows = report["workers"]
    assert len(rows) == 4 and all(len(r["gpus"]) == 1 for r in rows.values()), rows
    # 2 CPUs a node: two actors on each node, and Ray packs each pair onto one of its node's GPUs
    assert sorted(Counter((r["node_id"], r["gpus"][0]) for r in rows.values()).values()) == [2, 2]
    assert {r["node_id"] for r in rows.values()} == {n.node_id for n in nodes}
    assert sum(r.get("items", 0) for r in rows.values()) == 8
    # this machine's torch sees no CUDA (and resize needs no device): each reservation idles, said once an actor
    held = [m for m in caplog.messages if "holds Ray GPU" in m and "runs on cpu" in m]
    assert len(held) == 4, caplog.messages
    page = (tmp_path / "out" / ".stylefarm" / "report.html").read_text()
    assert page.count("<td>cpu (Ray GPU ") == 4


@pytest.mark.ray
def test_an_actor_given_no_gpu_runs_device_auto_on_the_cpu(gpu_nodes, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="stylefarm.executor.ray"):
        runner, report = run(tmp_path, actors=2, gpus_per_actor=0)
    assert runner.exit_code == EXIT_OK
    assert [r["gpus"] for r in report["workers"].values()] == [[], []]
    assert all(r["device"] == "cpu" for r in report["workers"].values())
    assert not [m for m in caplog.messages if "holds Ray GPU" in m]
    # Ray leaves CUDA_VISIBLE_DEVICES alone without num_gpus: `auto` must not mean "GPU 0 of the node"
    assert actor_device("auto", []) == "cpu"
    assert actor_device("auto", ["1"]) == "auto" and actor_device("cuda", []) == "cuda"


@pytest.mark.ray
def test_an_actor_that_fits_the_cluster_but_no_node_fails_in_one_line(gpu_nodes, cli, tmp_path):
    """3 GPUs in the cluster, at most 2 on a node: an actor asking for 3 would wait forever."""
    cluster, _ = gpu_nodes
    result = cli("run", str(workflow(tmp_path, actors=1, gpus_per_actor=3, address=cluster.address)), timeout=120)
    assert result.returncode == EXIT_FATAL, result.stderr
    lines = [line for line in result.stderr.splitlines() if "GPU" in line]
    assert len(lines) == 1, result.stderr
    assert "no node of the Ray cluster (3 node(s), at most 2 CPU and 2 GPU on one) can hold one actor asking " \
           "for 1 CPU and 3 GPU" in lines[0] and "gpus_per_actor" in lines[0]


def test_gpu_warnings_name_only_actors_that_hold_a_gpu_on_the_cpu():
    workers = {"a": {"gpus": ["0"], "device": "cuda"}, "b": {"gpus": ["1"], "device": "cpu"},
               "c": {"gpus": [], "device": "cpu"}, "d": {}}
    assert [line.split()[0] for line in gpu_warnings(workers)] == ["b"]


@pytest.fixture
def dask_cluster():
    """Two in-process Dask workers on TCP (so the CLI in another process can join); each test
    says which resources they declare."""
    distributed = pytest.importorskip("distributed")
    clusters = []

    def start(resources: dict | None):
        clusters.append(distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                                 host="127.0.0.1", dashboard_address=None, resources=resources))
        return clusters[-1].scheduler_address

    yield start
    for cluster in clusters:
        cluster.close()


@pytest.mark.dask
def test_dask_task_asking_more_gpu_than_any_worker_declares_fails_instead_of_waiting(dask_cluster, cli, tmp_path):
    address = dask_cluster(None)  # workers without a GPU resource
    result = cli("run", str(workflow(tmp_path, backend="dask", address=address, gpus_per_actor=1)), timeout=120)
    assert result.returncode == EXIT_FATAL, result.stderr
    lines = [line for line in result.stderr.splitlines() if "GPU" in line]
    assert len(lines) == 1 and "2 worker(s), GPU resource at most 0" in lines[0], result.stderr
    assert "--resources GPU=1" in lines[0] and "gpus_per_actor" in lines[0]


@pytest.mark.dask
def test_dask_half_a_gpu_runs_on_workers_declaring_one(dask_cluster, tmp_path):
    address = dask_cluster({"GPU": 1})
    runner, report = run(tmp_path, backend="dask", address=address, gpus_per_actor=0.5)
    assert runner.exit_code == EXIT_OK
    assert sum(r.get("items", 0) for r in report["workers"].values()) == 8
    (tmp_path / "more").mkdir()
    with pytest.raises(ClusterError, match="GPU resource at most 1\\) can run a task asking for 2 GPU"):
        run(tmp_path / "more", backend="dask", address=address, gpus_per_actor=2)
