"""Weights manager and `stylefarm weights`: lookup order, offline message, hashes, corrupt files."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import pytest
import torch
from plugin_fixtures import bad_packaged_site, env_with, fake_distribution, host_with

from stylefarm import weights as wm
from stylefarm.errors import WeightsError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_file_names_file_url_and_add_command(cli, cache):
    result = cli("weights", "path", "adain/decoder")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "decoder.pth" in line and "stylefarm weights add adain/decoder" in line and str(cache) in line


def test_add_copies_into_cache_and_list_shows_it(cli, cache, tmp_path):
    src = tmp_path / "decoder.pth"
    torch.save({"1.weight": torch.zeros(1)}, src)
    added = cli("weights", "add", "adain/decoder", str(src))
    assert added.returncode == 0, added.stderr
    assert cli("weights", "path", "adain/decoder").stdout.strip().startswith(str(cache))
    listing = cli("weights", "list").stdout
    assert "adain/decoder" in listing and "MISSING" in listing  # vgg still missing


def test_wrong_hash_is_refused(cli, cache, tmp_path):
    bogus = tmp_path / "latest_net_A2K.pth"
    torch.save({"x": torch.ones(2)}, bogus)
    result = cli("weights", "add", "stya2k/A2K", str(bogus))
    assert result.returncode == 1 and "wrong sha256" in result.stderr
    assert not cache.exists() or not any(cache.rglob("*.pth"))


def test_explicit_path_wins_and_corrupt_file_is_one_line_error(cache, tmp_path):
    corrupt = tmp_path / "decoder.pth"
    corrupt.write_bytes(b"\x80\x02 definitely not a checkpoint")
    assert wm.resolve("adain/decoder", corrupt) == corrupt
    with pytest.raises(WeightsError, match="cannot load weights") as err:
        wm.load_state_dict(corrupt, "adain/decoder")
    assert "\n" not in str(err.value)


def test_pickled_code_is_not_executed(cache, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError, match="cannot load weights"):
        wm.load_state_dict(path)


def test_unknown_weights_name_lists_known(cache):
    with pytest.raises(WeightsError, match="known: .*adain/decoder"):
        wm.resolve("nope/model")


@pytest.mark.parametrize("name, content, reason", [
    ("paint_transformer/official", b"\n<!DOCTYPE html><html><title>Sign in</title>", "it is a web page \\(HTML\\)"),
    ("adain/decoder", b"\xff\xd8\xff\xe0\x00\x10JFIF", r"it is a picture \(JPEG\), not a weights file"),
    ("paint_transformer/brush_horizontal", b"GIF89a", "it is not a PNG image"),
    ("adain/decoder", b"", "it is empty"),
])
def test_add_refuses_a_file_of_the_wrong_kind_before_copying(cli, cache, tmp_path, name, content, reason):
    """A download that saved a sign-in page, or the wrong file, is said at `weights add`, not
    when a model later fails to load (no sha256 is declared for these, so nothing else looks)."""
    src = tmp_path / "download.bin"
    src.write_bytes(content)
    result = cli("weights", "add", name, str(src))
    assert result.returncode == 1 and "\n" not in result.stderr.strip()
    assert re.search(rf"download.bin cannot be {name} \(.*\): {reason}.*; the file is ", result.stderr), result.stderr
    assert not cache.exists() or not any(cache.rglob("*"))


def test_loading_a_saved_web_page_says_so(cache, tmp_path):
    page = tmp_path / "decoder.pth"
    page.write_bytes(b"<html><body>Quota exceeded</body></html>")
    with pytest.raises(WeightsError, match=r"cannot load weights .*decoder.pth \(file\): it is a web page"):
        wm.load_state_dict(page)


@pytest.mark.parametrize("packaged, why", [
    ("acme_styles/weights/p.pt", "has no ':'"),
    ("acme-styles:weights/p.pt", "'acme-styles', which is not an importable package name"),
    (":weights/p.pt", "'', which is not an importable package name"),
    ("acme_styles:", "has no file path after ':'"),
    ("acme_styles:weights/", "has no file path after ':'"),
    ("acme_styles:weights\\p.pt", "separate folders with '/'"),
    ("acme_styles:/abs/p.pt", "leaves the package"),
    ("acme_styles:../p.pt", "leaves the package"),
])
def test_a_malformed_packaged_is_refused_where_the_plugin_builds_the_record(packaged, why):
    with pytest.raises(ValueError) as err:
        wm.WeightFile(name="acme/net", filename="p.pt", packaged=packaged)
    assert str(err.value).startswith(f"WeightFile 'acme/net': packaged={packaged!r} ") and why in str(err.value)


def test_a_plugin_building_a_malformed_packaged_is_failed_alone(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "acme-form", "acme_form = acme_form", """
from stylefarm import hookimpl
from stylefarm.weights import WeightFile

@hookimpl
def stylefarm_register_weights():
    return [WeightFile(name="acme_form/net", filename="p.pt", packaged="acme_form/weights/p.pt")]
""")
    host = host_with(monkeypatch, tmp_path)
    info = next(p for p in host.plugins if p.distribution == "acme-form")
    assert "WeightFile 'acme_form/net': packaged='acme_form/weights/p.pt' has no ':'" in (info.error or "")
    assert info.error.startswith(f"{tmp_path / 'acme_form.py'}:7: ")  # the plugin's line, not weights.py's
    assert "acme_form/net" not in host.weights and "paint_transformer/model" in host.weights


def test_a_bad_packaged_weight_is_its_own_row_and_the_others_still_list(tmp_path, cache):
    """A typo in one plugin's `packaged=` ended `weights list` after one row with a bare
    ModuleNotFoundError; a module named as the package, with a TypeError."""
    result = subprocess.run([sys.executable, "-m", "stylefarm", "weights", "list"], capture_output=True, text=True,
                            env=env_with(bad_packaged_site(tmp_path / "site")), timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert {"acmew_net/packaged", "acmew_net/module", "acmew_net/plain", "adain/decoder", "stylenat/ffhq256"} \
        <= set(rows)
    assert rows["paint_transformer/model"].rstrip().endswith("paint_transformer_sf.pt")  # the shipped copy
    assert "PROBLEM: " in rows["acmew_net/packaged"] and "no module acme_stlyes" in rows["acmew_net/packaged"]
    assert "acme_w is a module, not a package" in rows["acmew_net/module"]


@pytest.mark.parametrize("name, packaged, cause", [
    ("acmew_net/packaged", "acme_stlyes:weights/p.pt", "no module acme_stlyes"),
    ("acmew_net/module", "acme_w:weights/m.pt", "acme_w is a module, not a package"),
])
def test_a_bad_packaged_weight_says_weight_plugin_value_and_cause(tmp_path, cache, monkeypatch, name, packaged, cause):
    host_with(monkeypatch, bad_packaged_site(tmp_path / "site"))
    row = wm.where_found(name)
    assert row.startswith(f"PROBLEM: weights {name!r} (from plugin acme_w (acme-w 1.0)): packaged={packaged!r} "
                          f"cannot be read: {cause}; "), row
    with pytest.raises(wm.PackagedWeightsError) as err:  # what a step's setup gets at run time
        wm.load_weights(name)
    message = str(err.value)
    assert "\n" not in message and f"PROBLEM: {message}" == row
    assert f"`stylefarm weights add {name} /path/to/" in message
    again = pickle.loads(pickle.dumps(err.value))  # as a Ray or Dask worker sends it back
    assert (str(again), again.problem, again.fix) == (message, err.value.problem, err.value.fix)
    assert wm.where_found("acmew_net/plain") == "MISSING" and wm.where_found("paint_transformer/model").endswith(".pt")


def test_a_cached_copy_is_used_whatever_packaged_says(tmp_path, cache, monkeypatch):
    host_with(monkeypatch, bad_packaged_site(tmp_path / "site"))
    copy = wm.cached_path(wm.lookup("acmew_net/packaged"))
    copy.parent.mkdir(parents=True)
    torch.save({"w": torch.ones(1)}, copy)
    state, path = wm.load_weights("acmew_net/packaged")
    assert path == copy and torch.equal(state["w"], torch.ones(1))


def test_validate_says_which_weights_this_machine_lacks(cli, cache, workflow, tmp_path):
    """The workflow is right (exit 0: farm nodes may hold the files), but a run here would stop at
    set-up: validate said a bare ok before."""
    import numpy as np

    from stylefarm.images import encode_image

    (tmp_path / "s.png").write_bytes(encode_image(".png", np.zeros((8, 8, 3), np.float32), None, 8))
    steps = "  - use: adain\n    with: {style: s.png}\n  - use: cut\n    with: {model: cut/demo}\n"
    wf = workflow(f"inputs: [{{generate: gradient, width: 16, height: 16}}]\nsteps:\n{steps}")
    result = cli("validate", str(wf))
    assert result.returncode == 0, result.stderr
    assert "2 weights file(s) missing on this machine" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: step 'adain': ")]
    assert len(warnings) == 2 and "stylefarm weights add adain/vgg" in warnings[0]
    assert "cut/demo" not in result.stderr  # shipped in the package
    given = wf.read_text().replace("{style: s.png}", "{style: s.png, weights: {vgg: s.png}}")
    wf.write_text(given)
    result = cli("validate", str(wf))
    assert "1 weights file(s) missing" in result.stdout and "adain/vgg" not in result.stderr


def test_a_picture_given_as_weights_is_said_in_one_line(tmp_path):
    """torch printed its page of weights_only advice for `weights: coffee.jpg`."""
    import shutil

    from conftest import REPO

    for name in ("coffee.jpg", "net.pt"):
        shutil.copy(REPO / "workflows" / "media" / "coffee.jpg", tmp_path / name)
        with pytest.raises(WeightsError, match=r"it is a picture \(JPEG\), not a weights file$"):
            wm.load_state_dict(tmp_path / name, check_hash=False)
