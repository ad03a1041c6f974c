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
    assert "must subclass stylefarm.step.StepOptions" in _failed(host, "acme-bad")
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


def test_a_step_named_like_a_builtin_leaves_the_builtin_and_is_told_to_rename(fake_plugin, cli, workflow):
    """Installing a plugin never breaks the workflows that used a built-in step (it disabled both)."""
    fake_plugin(GOOD_STEP.replace('"acme_tint"', '"blend"')
                + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n", dist="acme-twin")
    host = PluginHost()
    assert host.steps["blend"].plugin.distribution == "stylefarm"
    twin = next(p for p in host.plugins if p.distribution == "acme-twin")
    assert twin.error is None and "step:blend" not in twin.provides
    assert any("step 'blend' of 'acme-twin'" in w and "built-in step of that name; rename it" in w
               for w in twin.warnings)
    wf = workflow("inputs:\n  - generate: gradient\n    width: 8\n    height: 8\nsteps:\n  - use: blend\n", "b.yaml")
    assert cli("validate", str(wf)).returncode == 0
    assert "rename it" in cli("plugins").stdout


def test_a_step_name_two_third_party_plugins_register_is_disabled_naming_both(fake_plugin, cli, workflow):
    for dist, module in (("acme-one", "acme_one"), ("acme-two", "acme_two")):
        fake_plugin(GOOD_STEP + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n",
                    dist=dist, module=module)
    host = PluginHost()
    assert "acme_tint" not in host.steps and "resize" in host.steps
    message = host.unknown_step_message("acme_tint")
    assert "duplicate step name 'acme_tint'" in message and "'acme-one'" in message and "'acme-two'" in message
    bad = workflow("inputs:\n  - generate: gradient\nsteps:\n  - use: acme_tint\n", "bad.yaml")
    result = cli("validate", str(bad))
    assert result.returncode == 2 and "bad.yaml:4" in result.stderr and "acme-two" in result.stderr


def test_a_source_and_sink_keyed_like_builtins_leave_the_builtins_working(fake_plugin, cli, workflow, tmp_path):
    """`glob:` inputs and `sheet:` outputs kept meaning the built-ins' (both were disabled, and
    plain workflows failed with 'unknown field' naming no plugin)."""
    fake_plugin("""
        from stylefarm import hookimpl
        from stylefarm.sinks import Sink
        from stylefarm.sources import Source

        class MyGlob(Source):
            key = "glob"

        class MySheet(Sink):
            key = "sheet"

        @hookimpl
        def stylefarm_register_sources():
            return [MyGlob]

        @hookimpl
        def stylefarm_register_sinks():
            return [MySheet]
        """, dist="acmeio", module="acme_io")  # sorts before the built-ins' entry points
    host = PluginHost()
    assert host.sinks["sheet"].plugin.distribution == "stylefarm"  # a key the built-in sink has
    # `glob:` is not a source key but an option of the built-in images source, which (at equal
    # priority) is asked before the plugin's source
    import numpy as np

    from stylefarm.images import atomic_write_bytes, encode_image

    atomic_write_bytes(tmp_path / "a.png", encode_image(".png", np.full((8, 8, 3), 0.5, np.float32), None, 8))
    wf = workflow('inputs: [{glob: "a.png"}]\noutput: {dir: out, sheet: {thumb: 8}}\n')
    result = cli("run", str(wf), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "contact_sheet.png").exists()


def test_a_hook_with_arguments_fails_that_plugin_only_pointing_at_it(fake_plugin, cli):
    """pluggy refuses the registration: it stopped every command, `--help` included, with a
    message naming neither the file nor the reason."""
    path = fake_plugin(GOOD_STEP + "\n@hookimpl\ndef stylefarm_register_steps(host):\n    return [Tint]\n")
    error = _failed(PluginHost(), "acme-bad")
    assert f"{path}:11" in error and "stylefarm_register_steps" in error and "'host'" in error
    assert "take no arguments" in error
    for args in (("--help",), ("steps", "resize")):
        assert cli(*args).returncode == 0, args
    assert "FAILED" in cli("plugins").stdout


def test_a_plugin_with_a_syntax_error_points_at_its_own_line(fake_plugin):
    path = fake_plugin("from stylefarm import hookimpl\n\ndef broken(:\n    pass\n")
    error = _failed(PluginHost(), "acme-bad")
    assert error.startswith(f"{path}:3: ") and "SyntaxError" in error


@pytest.mark.parametrize("options, message", [
    ("from pydantic import BaseModel\n\nclass Plain(BaseModel):\n    amount: float = 0.5\n",
     "Options must subclass stylefarm.step.StepOptions (misspelt options are then errors)"),
    ("from stylefarm import StepOptions\n\nclass Plain(StepOptions):\n    amount: 'UndefinedThing' = None\n",
     "Options is not fully defined"),
])
def test_options_that_would_let_typos_through_or_fail_at_first_use_are_refused(fake_plugin, options, message):
    path = fake_plugin(options + GOOD_STEP.replace("    uses_device = False", "    uses_device = False\n"
                                                   "    Options = Plain")
                       + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n")
    error = _failed(PluginHost(), "acme-bad")
    assert message in error and f"{path}:3" in error  # the Options class


@pytest.mark.parametrize("types", ['("unit8", "float32")', '("yuv420p", "float32")', '("uint8",)', '"float32"'])
def test_pixel_types_the_host_cannot_feed_are_refused_at_discovery(fake_plugin, types):
    """A misspelt type was never fed (silently float only); yuv420p without uint8 was offered the
    decoder's frames and every result refused."""
    declared = f"    uses_device = False\n    pixel_types = {types}"
    path = fake_plugin(GOOD_STEP.replace("    uses_device = False", declared)
                       + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n")
    error = _failed(PluginHost(), "acme-bad")
    assert f"{path}:4" in error and "has pixel_types" in error and "uint8 wherever yuv420p is" in error


@pytest.mark.parametrize("body, said", [
    ("    def setup(self):\n        pass\n", "failed in setup at {path}:10: TypeError: "),  # the method
    ("    def __init__(self):\n        pass\n", "failed in __init__ at {path}:10: TypeError: "),
    ("    def setup(self, device):\n        open('/nonexistent/x.pt')\n",  # the line that raised
     "failed in setup at {path}:11: FileNotFoundError: "),
])
def test_a_step_that_cannot_start_is_named_with_the_place_in_its_code(fake_plugin, cli, workflow, body, said):
    path = fake_plugin(GOOD_STEP + body + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n")
    wf = workflow("inputs:\n  - generate: gradient\n    width: 8\n    height: 8\nsteps:\n  - use: acme_tint\n")
    result = cli("run", str(wf), "--no-progress")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert f"step 'acme_tint' (acme_bad_plugin.Tint) {said.format(path=path)}" in line, result.stderr
    assert "Traceback" not in result.stderr


def test_builtin_command_list_matches_the_cli():
    from stylefarm.cli import cli

    assert set(cli.commands) == BUILTIN_COMMANDS


def test_a_step_without_a_docstring_is_warned_pointing_at_the_class(fake_plugin, cli):
    path = fake_plugin(GOOD_STEP + "\n@hookimpl\ndef stylefarm_register_steps():\n    return [Tint]\n")
    info = next(p for p in PluginHost().plugins if p.distribution == "acme-bad")
    assert info.error is None
    assert any(w.startswith(f"{path}:4: step 'acme_tint' has no docstring") for w in info.warnings)
    assert "has no docstring" in cli("plugins").stdout


def test_options_the_schema_cannot_export_are_left_out_naming_the_plugin_and_class(fake_plugin, cli):
    path = fake_plugin("""
        from typing import Callable
        from stylefarm import Step, StepOptions, hookimpl

        class Opaque(StepOptions):
            fn: Callable[[int], int] = abs

        class Odd(Step):
            '''A step whose options hold a function.'''
            name = "acme_odd"
            Options = Opaque

            def process(self, batch):
                return batch

        @hookimpl
        def stylefarm_register_steps():
            return [Odd]
        """)
    result = cli("schema")
    assert result.returncode == 0 and json.loads(result.stdout)["properties"]["steps"]
    assert f"schema: step acme_odd of acme-bad left out ({path}:5, acme_bad_plugin.Opaque): " in result.stderr
