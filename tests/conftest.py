"""Shared fixtures: the ../shared test media, a CLI runner with real exit codes, workflow files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))
STYLEFARM = Path(sys.executable).parent / "stylefarm"


@pytest.fixture(scope="session", autouse=True)
def _weights_cache(tmp_path_factory):
    """Tests never touch the user's cache; converted weights live for one session."""
    if "STYLEFARM_WEIGHTS_DIR" not in os.environ:
        os.environ["STYLEFARM_WEIGHTS_DIR"] = str(tmp_path_factory.mktemp("weights-cache"))
    if "STYLEFARM_COMPILE_DIR" not in os.environ:  # compiled networks too (`compile: auto` loads them)
        os.environ["STYLEFARM_COMPILE_DIR"] = str(tmp_path_factory.mktemp("compile-cache"))
    if "STYLEFARM_CACHE_DIR" not in os.environ:  # and what was learnt from ffmpeg (its facts, probes)
        os.environ["STYLEFARM_CACHE_DIR"] = str(tmp_path_factory.mktemp("facts-cache"))
    yield


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "media" / "images").is_dir():
        pytest.skip(f"test media not found at {SHARED} (set STYLEFARM_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def content_images(shared) -> list[Path]:
    return sorted((shared / "media" / "images" / "content").glob("*.jpg"))


@pytest.fixture(scope="session")
def style_images(shared) -> list[Path]:
    return sorted((shared / "media" / "images" / "style").glob("*.jpg"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed `stylefarm` console script (real exit codes, real stderr)."""
    return subprocess.run([str(STYLEFARM), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


@pytest.fixture(scope="session")
def example_plugin() -> Path:
    """pip-install the example third-party plugin (examples/stylefarm-posterize) into this
    environment, offline and without deps, so its steps are discovered like any plugin's."""
    import importlib

    example = REPO / "examples" / "stylefarm-posterize"
    probe = subprocess.run([sys.executable, "-m", "pip", "show", "stylefarm-posterize"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        str(example)], check=True, timeout=300)
        importlib.invalidate_caches()
    return example


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def workflow(tmp_path):
    """Write a workflow file into tmp_path and return its path."""

    def write(text: str, name: str = "wf.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one thread is faster than two fighting on a busy 2-core CI box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
