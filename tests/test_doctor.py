"""`stylefarm doctor` on a broken install: a plugin that fails to import and a missing weights
file are both named, each with its fix; a healthy part of the install still reads ok."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylefarm.doctor import ENCODER_LICENCES, check_ffmpeg, render


def fake_distribution(root: Path, name: str, entry: str, module: str | None = None) -> None:
    """An installed distribution (dist-info on sys.path) whose `stylefarm` entry point is `entry`."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stylefarm]\n{entry}\n")
    if module:
        (root / f"{entry.split('=')[1].strip()}.py").write_text(module)


MODELS = '''
from stylefarm import hookimpl
from stylefarm.weights import WeightFile


@hookimpl
def stylefarm_register_weights():
    return [WeightFile(name="acme/net", filename="acme_net.pth", url="https://example.invalid/acme_net.pth"),
            WeightFile(name="acme/bad", filename="acme_bad.pth", sha256="{sha}")]
'''


@pytest.fixture
def broken_install(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    fake_distribution(site, "acme-broken", "acme = acme_missing_module_xyz")
    fake_distribution(site, "acme-models", "acme_models = acme_models_plugin",
                      MODELS.replace("{sha}", hashlib.sha256(b"the real weights").hexdigest()))
    (cache / "acme__bad").mkdir(parents=True)
    (cache / "acme__bad" / "acme_bad.pth").write_bytes(b"a truncated download")
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "STYLEFARM_WEIGHTS_DIR": str(cache)}


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylefarm", "--log-level", "error", "doctor", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_doctor_names_the_broken_plugin_and_the_missing_weights_with_fixes(broken_install):
    result = doctor(broken_install)
    assert result.returncode == 1, result.stdout + result.stderr  # a failed check fails the command
    lines = result.stdout.splitlines()
    broken = next(i for i, line in enumerate(lines) if line.startswith("fail  plugin acme"))
    assert "acme-broken" in lines[broken] and "acme_missing_module_xyz" in lines[broken]
    assert "pip install -U acme-broken" in lines[broken + 1]
    missing = next(i for i, line in enumerate(lines) if "weights acme/net" in line)
    assert lines[missing].startswith("warn") and "acme_net.pth not found" in lines[missing]
    assert "stylefarm weights add acme/net /path/to/acme_net.pth" in lines[missing + 1]
    corrupt = next(line for line in lines if "weights acme/bad" in line)
    assert corrupt.startswith("fail") and "wrong sha256" in corrupt
    assert any(line.startswith("ok    ffmpeg") for line in lines)
    assert any(line.startswith("ok    weights cache") for line in lines)


def test_doctor_checks_as_json_have_level_and_fix(broken_install, monkeypatch):
    import importlib

    from stylefarm.doctor import check_backends, check_plugins, check_weights
    from stylefarm.host import PluginHost

    monkeypatch.syspath_prepend(broken_install["PYTHONPATH"].split(os.pathsep)[0])  # the fake site folder
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", broken_install["STYLEFARM_WEIGHTS_DIR"])
    importlib.invalidate_caches()
    host = PluginHost()
    monkeypatch.setattr("stylefarm.host._HOST", host)  # the weights manager resolves through the process's host
    checks = [c.as_dict() for c in check_plugins(host) + check_weights(host) + check_backends()]
    by_name = {c["name"]: c for c in json.loads(json.dumps(checks))}
    assert by_name["plugin acme"]["level"] == "fail" and "acme_missing_module_xyz" in by_name["plugin acme"]["message"]
    assert by_name["weights acme/net"]["fix"] == "stylefarm weights add acme/net /path/to/acme_net.pth"
    assert by_name["weights acme/bad"]["level"] == "fail"
    assert {c["level"] for c in checks} <= {"ok", "warn", "fail"}
    assert by_name["ray"]["level"] in ("ok", "warn") and by_name["dask"]["level"] in ("ok", "warn")


@pytest.mark.video
def test_encoder_licences_say_gpl_and_which_lgpl_bsd_codecs_exist():
    checks = {c.name: c for c in check_ffmpeg()}
    encoders = checks["encoders"].message
    gpl, free = encoders.split("; LGPL/BSD: ")
    for name, licence in ENCODER_LICENCES.items():
        if f"{name} (" in encoders:
            assert (f" {name} (" in f" {gpl}") == (licence == "GPL")
    assert "libx264 (GPL)" in gpl or "libx264" in checks
    assert free != "none"  # the bundled ffmpeg has native LGPL encoders at least (aac, ffv1, png)


def test_unwritable_cache_is_a_fail_with_the_variable_to_set(tmp_path, monkeypatch):
    from stylefarm.doctor import check_dirs

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(blocker / "weights"))
    checks = check_dirs()
    assert checks[0].level == "fail" and "STYLEFARM_WEIGHTS_DIR" in checks[0].fix
    assert "fail" in render(checks).splitlines()[0]
