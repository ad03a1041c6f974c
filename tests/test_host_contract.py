"""One bad plugin cannot break the host: each contract violation is FAILED alone, with file:line."""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap

import pytest

from stylefarm.host import BUILTIN_COMMANDS, PluginHost

GOOD_STEP = """
from stylefarm import Step, StepOptions, hookimpl

class Tint(Step):
    name = "acme_tint"
    uses_device = False

    def process(self, batch):
        return [it.with_image(it.image * 0.5) for it in batch]
"""


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    """Install a throw-away distribution (module source + entry point) visible to this process and children."""
    made = []

    def make(source: str, dist: str = "acme-bad", module: str = "acme_bad_plugin"):
        root = tmp_path / dist
        root.mkdir()
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[stylefarm]\n{module} = {module}\n")
        monkeypatch.syspath_prepend(str(root))
        made.append(str(root))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*made, os.environ.get("PYTHONPATH", "")]))
        importlib.invalidate_caches()
        return root / f"{module}.py"

    yield make
    for module in [m for m in sys.modules if m.startswith("acme_")]:
        del sys.modules[module]


def _failed(host: PluginHost, dist: str) -> str:
    info = next(p for p in host.plugins if p.distribution == dist)
    assert info.error, f"{dist} should be FAILED"
    return info.error


def _builtins_still_work(host: PluginHost) -> None:
    assert {"resize", "blend", "cin26", "paint_transformer"} <= set(host.steps)
    assert "paint-transformer" in [c.name for c in host.train_commands()]


def test_hook_returning_a_class_instead_of_a_list_fails_that_plugin_only(fake_plugin, cli):
    path = fake_plugin(GOOD_STEP + "\n@hookimpl\ndef stylefarm_register_steps():\n    return Tint\n")
    host = PluginHost()
    error = _failed(host, "acme-bad")
    assert f"{path}:" in error and "expected a list" in error and "stylefarm_register_steps" in error
    _builtins_still_work(host)
    assert "acme_tint" not in host.steps
    for args in (("--help",), ("steps", "resize"), ("schema",)):
        assert cli(*args).returncode == 0, args
    listing = cli("plugins").stdout
    assert "acme-bad" in listing and "FAILED" in listing and "expected a list" in listing


def test_step_without_a_name_is_failed_pointing_at_the_class(fake_plugin):
    path = fake_plugin(GOOD_STEP.replace('name = "acme_tint"', 'kind = "util"')
                       + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n")
    error = _failed(PluginHost(), "acme-bad")
    assert f"{path}:4" in error and "no name" in error  # the class line


def test_non_pydantic_options_do_not_break_steps_validate_or_schema(fake_plugin, cli, workflow):
    fake_plugin(GOOD_STEP.replace("    uses_device = False", "    uses_device = False\n    Options = dict")
                + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n")
    host = PluginHost()
    assert "pydantic model" in _failed(host, "acme-bad")
    _builtins_still_work(host)
    wf = workflow("inputs:\n  - generate: gradient\n    width: 8\n    height: 8\nsteps:\n  - use: resize\n"
                  "    with: {scale: 0.5}\n")
    assert cli("validate", str(wf)).returncode == 0
    assert json.loads(cli("schema").stdout)["properties"]["steps"]
    assert cli("steps", "blend").returncode == 0


def test_misspelled_hook_is_failed_with_a_suggestion(fake_plugin):
    path = fake_plugin(GOOD_STEP + "\n@hookimpl\ndef stylefarm_register_step():\n    return [Tint]\n")
    error = _failed(PluginHost(), "acme-bad")
    assert "'stylefarm_register_step' is not a stylefarm hook" in error
    assert "did you mean 'stylefarm_register_steps'" in error and f"{path}:" in error


def test_hook_without_hookimpl_marker_warns(fake_plugin, cli):
    fake_plugin(GOOD_STEP + "\ndef stylefarm_register_steps():\n    return [Tint]\n")
    host = PluginHost()
    info = next(p for p in host.plugins if p.distribution == "acme-bad")
    assert info.error is None and any("not marked @hookimpl" in w for w in info.warnings)
    assert "not marked @hookimpl" in cli("plugins").stdout


def test_command_named_like_a_builtin_is_refused(fake_plugin, cli):
    fake_plugin("""
        import click
        from stylefarm import hookimpl

        @click.command("run")
        def hijack():
            print("hijacked")

        @hookimpl
        def stylefarm_register_commands():
            return [hijack]
        """)
    assert "clashes with the built-in `stylefarm run`" in _failed(PluginHost(), "acme-bad")
    assert "Run a workflow" in cli("run", "--help").stdout


def test_hook_that_raises_names_where_it_raised(fake_plugin):
    path = fake_plugin("""
        from stylefarm import hookimpl

        @hookimpl
        def stylefarm_register_sinks():
            raise RuntimeError("boom")
        """)
    error = _failed(PluginHost(), "acme-bad")
    assert f"{path}:6" in error and "RuntimeError: boom" in error


def test_duplicate_step_name_disables_that_name_only(fake_plugin, cli, workflow):
    fake_plugin(GOOD_STEP.replace('"acme_tint"', '"blend"')
                + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n", dist="acme-twin")
    host = PluginHost()
    assert "blend" not in host.steps and "resize" in host.steps
    message = host.unknown_step_message("blend")
    assert "duplicate step name 'blend'" in message and "'stylefarm'" in message and "'acme-twin'" in message
    ok = workflow("inputs:\n  - generate: gradient\n    width: 8\n    height: 8\nsteps:\n  - use: resize\n"
                  "    with: {scale: 0.5}\n", "ok.yaml")
    assert cli("validate", str(ok)).returncode == 0
    bad = workflow("inputs:\n  - generate: gradient\nsteps:\n  - use: blend\n", "bad.yaml")
    result = cli("validate", str(bad))
    assert result.returncode == 2 and "bad.yaml:4" in result.stderr and "acme-twin" in result.stderr


def test_builtin_command_list_matches_the_cli():
    from stylefarm.cli import cli

    assert set(cli.commands) == BUILTIN_COMMANDS
