"""One local Ray cluster per pytest session (Ray start-up costs seconds; never start it per test).

Import the fixture into a test module: `from _ray_fixture import ray_cluster  # noqa: F401`.
tests/ goes on PYTHONPATH before the cluster starts, so workers can import test step modules
(executors ship step classes by reference). A cluster started earlier by someone else is reused.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="session")
def ray_cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tests_on_pythonpath()
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    start_session_cluster(ray)
    yield ray
    ray.shutdown()


def tests_on_pythonpath() -> None:
    """Workers import the test steps by reference (they are shipped by name): tests/ first on
    PYTHONPATH, which worker processes started from now on inherit."""
    paths = [TESTS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def start_session_cluster(ray) -> None:
    """The session's one-node cluster (also restarted by modules that need a multi-node one)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=200 * 1024**2)


@contextlib.contextmanager
def multi_node_cluster(*nodes: dict) -> Iterator[tuple]:
    """A head without CPUs (or GPUs: the driver's node) plus one node per `ray.cluster_utils`
    `add_node` keyword dict, 80 MB of object store each, joined by this process. A session
    cluster started by other modules is stopped first and started again after."""
    import ray
    from ray.cluster_utils import Cluster

    had_session = ray.is_initialized()
    if had_session:
        ray.shutdown()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tests_on_pythonpath()
    store = 80 * 1024**2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "object_store_memory": store,
                                                            "include_dashboard": False})
    added = [cluster.add_node(object_store_memory=store, **args) for args in nodes]
    ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        yield cluster, added
    finally:
        ray.shutdown()
        cluster.shutdown()
        if had_session:
            start_session_cluster(ray)
