"""Every shipped workflow validates, and the classical one runs from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_shipped_workflow_validates(cli, path):
    result = cli("validate", str(path))
    assert result.returncode == 0, result.stderr


def test_relative_paths_resolve_against_the_workflow_file(cli, tmp_path):
    result = cli("run", str(REPO / "workflows" / "classic.yaml"), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*_blend.png")) == [
        "astronaut_blend.png", "chelsea_blend.png", "coffee_blend.png", "rocket_blend.png"]
    assert (tmp_path / "out" / "contact_sheet.png").is_file()
