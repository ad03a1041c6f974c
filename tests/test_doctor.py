"""`stylefarm doctor` on a broken install: a plugin that fails to import and a missing weights
file are both named, each with its fix; a healthy part of the install still reads ok."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_fixtures import bad_packaged_site, env_with, fake_distribution, host_with

from stylefarm.doctor import ENCODER_LICENCES, check_ffmpeg, check_weights, render

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


def test_doctor_fails_a_weight_whose_packaged_package_is_wrong_and_checks_the_rest(tmp_path):
    """A typo in one plugin's `packaged=` used to end doctor with a bare ModuleNotFoundError."""
    env = env_with(bad_packaged_site(tmp_path / "site"), STYLEFARM_WEIGHTS_DIR=str(tmp_path / "cache"))
    result = doctor(env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ModuleNotFoundError" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    typo = next(i for i, line in enumerate(lines) if "weights acmew_net/packaged" in line)
    assert lines[typo].startswith("fail") and "plugin acme_w (acme-w 1.0)" in lines[typo]
    assert "packaged='acme_stlyes:weights/p.pt'" in lines[typo] and "no module acme_stlyes" in lines[typo]
    assert "stylefarm weights add acmew_net/packaged /path/to/p.pt" in lines[typo + 1]
    module = next(line for line in lines if "weights acmew_net/module" in line)
    assert module.startswith("fail") and "acme_w is a module, not a package" in module
    assert any(line.startswith("warn  weights acmew_net/plain") for line in lines)  # the next record still checked
    assert any(line.startswith("ok    weights cache") for line in lines)  # and the checks after the weights


def test_a_cached_copy_hides_no_broken_packaged_from_doctor(tmp_path, monkeypatch):
    """This node has the file in its cache, but a node without it would fail: a warning, not ok."""
    cache = tmp_path / "cache"
    (cache / "acmew_net__packaged").mkdir(parents=True)
    (cache / "acmew_net__packaged" / "p.pt").write_bytes(b"PK\x03\x04 cached")
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(cache))
    host = host_with(monkeypatch, bad_packaged_site(tmp_path / "site"))
    shipped = [c for c in check_weights(host) if "no module acme_stlyes" in c.message]
    assert [(c.level, c.name) for c in shipped] == [("warn", "weights acmew_net/packaged")], shipped
    assert f"{cache / 'acmew_net__packaged' / 'p.pt'} present" in shipped[0].message


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


def test_doctor_counts_files_without_a_declared_sha256_as_present_not_verified(broken_install):
    cache = Path(broken_install["STYLEFARM_WEIGHTS_DIR"])
    (cache / "acme__net").mkdir(parents=True)
    (cache / "acme__net" / "acme_net.pth").write_bytes(b"weights nobody declared a hash for")
    lines = doctor(broken_install).stdout.splitlines()
    unverified = [line for line in lines if "no sha256 declared" in line]
    assert any("weights acme/net" in line for line in unverified)
    summary = next(line for line in lines if line.startswith("ok    weights ") and " present, " in line)
    match = re.search(r"(\d+) of \d+ present, (\d+) of them verified against a declared sha256", summary)
    assert match and int(match[1]) - int(match[2]) == len(unverified), summary
