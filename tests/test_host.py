"""Plugin discovery: entry points, broken plugins, duplicate names, third-party packages."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stylefarm.hookspecs import hookimpl
from stylefarm.host import PluginHost
from stylefarm.step import Step

REPO = Path(__file__).resolve().parent.parent


class _Twin(Step):
    name = "resize"

    def process(self, batch):
        return batch


class _TwinPlugin:
    @hookimpl
    def stylefarm_register_steps(self):
        return [_Twin]


def test_builtins_are_discovered_through_entry_points():
    host = PluginHost()
    assert {"resize", "color_transfer", "blend"} <= set(host.steps)
    assert host.steps["resize"].plugin.distribution == "stylefarm"
    assert {"images", "generate"} <= set(host.sources) and {"images", "sheet"} <= set(host.sinks)


def test_duplicate_step_names_name_both_distributions():
    host = PluginHost(extra_plugins=[(_TwinPlugin(), "acme-styles"), (_TwinPlugin(), "acme-other")])
    assert host.steps["resize"].obj is not _Twin  # the built-in's name stays the built-in's
    twins = [p for p in host.plugins if p.distribution in ("acme-styles", "acme-other")]
    assert all(any("rename it" in w for w in p.warnings) for p in twins)


@pytest.fixture
def broken_distribution(tmp_path, monkeypatch):
    """A fake installed distribution whose entry point cannot be imported."""
    info = tmp_path / "acme_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[stylefarm]\nacme = acme_missing_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def test_broken_plugin_is_reported_and_does_not_take_down_others(broken_distribution):
    host = PluginHost()
    broken = [p for p in host.plugins if p.distribution == "acme-broken"]
    assert broken and "acme_missing_module_xyz" in broken[0].error
    assert "resize" in host.steps
    message = host.unknown_step_message("acme_style")
    assert "acme-broken" in message and "failed to load" in message


def test_plugins_command_shows_broken_plugin_with_cause(cli, broken_distribution):
    import os

    env_path = os.pathsep.join([str(broken_distribution), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-m", "stylefarm", "plugins"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": env_path})
    assert result.returncode == 0
    assert "acme-broken" in result.stdout and "FAILED" in result.stdout


def test_third_party_plugin_is_listed_and_runs(cli, example_plugin, tmp_path):
    listing = cli("plugins", "--json")
    rows = json.loads(listing.stdout)
    row = next(r for r in rows if r["distribution"] == "stylefarm-posterize")
    assert row["steps"][0]["name"] == "posterize" and row["error"] is None
    assert "levels" in cli("steps", "posterize").stdout
    wf = tmp_path / "wf.yaml"
    wf.write_text("version: 1\ninputs:\n  - generate: gradient\n    width: 40\n    height: 30\n"
                  "steps:\n  - use: posterize\n    with: {levels: 3}\noutput:\n  dir: out\n")
    result = cli("run", str(wf))
    assert result.returncode == 0, result.stderr
    from stylefarm.images import read_image

    img, _, _ = read_image(tmp_path / "out" / "gradient.0000.png")
    assert set(np_unique(img)) <= {0.0, 0.5, 1.0}  # 8-bit PNG: 128/255 rounds to 0.5 at 2 decimals


def np_unique(img):
    import numpy as np

    return np.unique(np.round(img, 2)).tolist()


def test_version_and_help_have_examples(cli):
    assert cli("--version").stdout.startswith("stylefarm, version")
    for command in ("run", "validate", "plugins", "steps", "schema", "weights"):
        result = cli(command, "--help")
        assert result.returncode == 0 and "Example" in result.stdout, command


def test_discovery_and_help_do_not_import_torch():
    """`stylefarm --help` and `plugins` must stay fast: plugins import torch only in setup()."""
    code = ("import sys; from stylefarm.host import get_host; get_host(); import stylefarm.cli; "
            "print(sorted(m for m in ('torch', 'ray', 'distributed', 'onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_example_plugin_passes_its_own_kit_based_tests(example_plugin):
    """The template's tests use stylefarm.testing and its pytest fixtures (entry point pytest11)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                             str(example_plugin), str(example_plugin / "tests")],
                            capture_output=True, text=True, timeout=300, cwd=example_plugin)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "4 passed" in result.stdout
