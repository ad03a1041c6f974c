"""One local Ray cluster per pytest session (Ray start-up costs seconds; never start it per test).

Import the fixture into a test module: `from _ray_fixture import ray_cluster  # noqa: F401`.
tests/ goes on PYTHONPATH before the cluster starts, so workers can import test step modules
(executors ship step classes by reference). A cluster started earlier by someone else is reused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="session")
def ray_cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    paths = [TESTS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    start_session_cluster(ray)
    yield ray
    ray.shutdown()


def start_session_cluster(ray) -> None:
    """The session's one-node cluster (also restarted by modules that need a multi-node one)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=200 * 1024**2)
