"""Weights manager and `stylefarm weights`: lookup order, offline message, hashes, corrupt files."""

from __future__ import annotations

import re

import pytest
import torch

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
    ("adain/decoder", b"\xff\xd8\xff\xe0\x00\x10JFIF", "it is not a PyTorch checkpoint"),
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
