"""The import name is `stylefarm`: users' own `pipeline/` and `plugins/` folders shadow nothing,
the repository folders are never a second copy, and wheels and editable installs agree."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile

import pytest
from conftest import REPO, STYLEFARM


def python(code: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_public_api_is_importable_from_stylefarm():
    from stylefarm import Item, OneOrList, Step, StepOptions, hookimpl, load_weights  # noqa: F401
    from stylefarm.step import Step as StepClass

    assert Step is StepClass


def test_users_own_pipeline_and_plugins_folders_do_not_shadow_stylefarm(tmp_path):
    for name in ("pipeline", "plugins"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"MINE = {name!r}\n")
    listing = subprocess.run([str(STYLEFARM), "plugins"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "FAILED" not in listing.stdout, listing.stdout
    assert "step cin26" in listing.stdout and "step resize" in listing.stdout
    mixed = python("import pipeline, plugins; from stylefarm.api import run_workflow; import stylefarm.plugins.utils; "
                   "print(pipeline.MINE, plugins.MINE, stylefarm.plugins.utils.__name__)", tmp_path, {"PYTHONPATH": ""})
    assert mixed.stdout.split() == ["pipeline", "plugins", "stylefarm.plugins.utils"], mixed.stderr


def test_repository_folders_cannot_be_imported_as_a_second_copy():
    result = python("import pipeline", REPO)
    assert result.returncode != 0 and "import `stylefarm`" in result.stderr
    result = python("import plugins", REPO)
    assert result.returncode != 0 and "import `stylefarm.plugins`" in result.stderr
    same = python("import stylefarm.step, stylefarm.plugins.adain.step as a; print(a.Step is stylefarm.step.Step)",
                  REPO)
    assert same.stdout.strip() == "True", same.stderr


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in (("pipeline", "stylefarm"), ("plugins", "stylefarm.plugins")):
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == listed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("stylefarm-*.whl")
    return path


def test_wheel_holds_the_stylefarm_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "stylefarm/__init__.py" in names and "stylefarm/plugins/adain/step.py" in names
    assert "stylefarm/plugins/paint_transformer/weights/paint_transformer_sf.pt" in names
    assert not any(n.startswith(("pipeline/", "plugins/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "adain = stylefarm.plugins.adain" in text and "stylefarm = stylefarm.cli:main" in text


def test_installed_wheel_runs_its_own_copy(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import stylefarm, stylefarm.plugins.paint_transformer as p; from stylefarm.host import PluginHost; "
            f"h = PluginHost(); print(stylefarm.__file__.startswith({str(site)!r}), "
            f"p.__file__.startswith({str(site)!r}), sorted(i.name for i in h.plugins if i.error))")
    result = python(code, tmp_path, {"PYTHONPATH": str(site)})
    assert result.stdout.strip().split(None, 2) == ["True", "True", "[]"], result.stderr[-2000:]


def test_plugins_never_import_each_other():
    """Shared helpers live in private modules (`stylefarm.plugins._*`), not in a sibling plugin."""
    import re

    offenders = []
    for folder in sorted(p for p in (REPO / "plugins").iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in folder.rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                match = re.match(r"\s*(?:from|import)\s+stylefarm\.plugins\.([a-z]\w*)", line)
                if match and match[1] != folder.name:
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, offenders
