"""pytest fixtures for plugin authors, loaded automatically where stylefarm is installed
(entry point `pytest11`). They build on `stylefarm.testing`:

- `stylefarm_weights`: an empty, private weights cache for one test (never the user's);
- `stylefarm_workflow`: run a workflow from a YAML string in the test's tmp_path, returns the report;
- `stylefarm_frames`: six frames of a panning texture (known motion) for video steps.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def stylefarm_weights(tmp_path):
    from .testing import isolated_weights

    with isolated_weights(tmp_path / "stylefarm-weights") as directory:
        yield directory


@pytest.fixture
def stylefarm_workflow(tmp_path):
    from .testing import run_workflow_text

    def run(text: str, force: bool = False) -> dict:
        return run_workflow_text(text, tmp_path, force=force)

    return run


@pytest.fixture
def stylefarm_frames():
    from .testing import make_frames

    return make_frames(6)
