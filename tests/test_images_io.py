"""Image sources and sinks: formats, bit depth, alpha, directories, naming, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from stylefarm.api import run_workflow
from stylefarm.images import atomic_write_bytes, encode_image, read_image


def write(path, rgb, alpha=None, depth=8):
    atomic_write_bytes(path, encode_image(path.suffix, rgb, alpha, depth))


@pytest.mark.parametrize("suffix,depth,tol", [(".png", 8, 1 / 255), (".png", 16, 1 / 65535),
                                              (".tif", 16, 1 / 65535), (".tif", 32, 1e-7)])
def test_roundtrip_keeps_bit_depth(tmp_path, suffix, depth, tol):
    rgb = np.random.default_rng(0).random((17, 23, 3)).astype(np.float32)
    write(tmp_path / f"x{suffix}", rgb, depth=depth)
    back, alpha, got_depth = read_image(tmp_path / f"x{suffix}")
    assert got_depth == depth and alpha is None
    assert np.abs(back - rgb).max() <= tol


def test_alpha_is_read_and_written(tmp_path):
    rng = np.random.default_rng(1)
    rgb, alpha = rng.random((10, 12, 3)).astype(np.float32), rng.random((10, 12)).astype(np.float32)
    write(tmp_path / "a.png", rgb, alpha, 16)
    back, back_alpha, _ = read_image(tmp_path / "a.png")
    assert back_alpha is not None and np.abs(back_alpha - alpha).max() < 1e-4


def test_grayscale_becomes_rgb(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "g.jpg", (np.arange(64).reshape(8, 8) * 4).astype(np.uint8))
    rgb, _, depth = read_image(tmp_path / "g.jpg")
    assert rgb.shape == (8, 8, 3) and depth == 8


def _tree(tmp_path):
    rng = np.random.default_rng(2)
    for rel in ("shots/a.png", "shots/sub/b.png", "shots/sub/deeper/c.tif"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, rng.random((8, 8, 3)).astype(np.float32), rng.random((8, 8)).astype(np.float32), 16)


def _run(tmp_path, inputs, output):
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"version: 1\ninputs:\n{inputs}\nsteps: []\noutput:\n{output}\n")
    return run_workflow(wf)


def test_recursive_dir_keeps_subfolders_and_16bit_alpha(tmp_path):
    _tree(tmp_path)
    report = _run(tmp_path, "  - dir: shots\n    recursive: true",
                  "  dir: out\n  pattern: '{input.rel}/{input.stem}.png'")
    assert report["counts"]["done"] == 3
    _, alpha, depth = read_image(tmp_path / "out" / "sub" / "deeper" / "c.png")
    assert depth == 16 and alpha is not None


def test_non_recursive_dir_and_alpha_drop(tmp_path):
    _tree(tmp_path)
    report = _run(tmp_path, "  - dir: shots\n    alpha: drop", "  dir: out\n  bit_depth: 8")
    assert report["counts"]["done"] == 1
    _, alpha, depth = read_image(tmp_path / "out" / "a.png")
    assert alpha is None and depth == 8


def test_glob_and_per_input_dirs_with_step_name(tmp_path):
    _tree(tmp_path)
    report = _run(tmp_path, "  - glob: 'shots/**/*.png'\n    recursive: true",
                  "  dir: 'out/{input.stem}'\n  pattern: '{input.stem}_{step}.jpg'")
    assert report["counts"]["done"] == 2
    assert (tmp_path / "out" / "b" / "b_copy.jpg").is_file()


def test_atomic_write_leaves_no_partial_file_on_failure(tmp_path, monkeypatch):
    import os

    target = tmp_path / "final.png"
    target.write_bytes(b"previous")

    def boom(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new data")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["final.png"]


def test_auto_depth_keeps_what_the_format_holds_and_says_once_what_it_cannot(tmp_path, caplog):
    """bit_depth: auto writes a float input's PNG with 16 bits (it was 8), and a 16-bit input's
    JPEGs with 8, said once a run rather than once a file."""
    rng = np.random.default_rng(3)
    (tmp_path / "plates").mkdir()
    for name in ("a", "b", "c"):
        write(tmp_path / "plates" / f"{name}.png", rng.random((8, 8, 3)).astype(np.float32), depth=16)
    write(tmp_path / "f.tif", rng.random((8, 8, 3)).astype(np.float32), depth=32)
    with caplog.at_level("WARNING", logger="stylefarm"):
        _run(tmp_path, "  - dir: plates", "  dir: jpg\n  pattern: '{input.stem}.jpg'")
    said = [r.getMessage() for r in caplog.records if "holds 8 bits" in r.getMessage()]
    assert len(said) == 1 and "16-bit pixels are written with 8 (name .tif files" in said[0]
    assert read_image(tmp_path / "jpg" / "c.jpg")[2] == 8
    _run(tmp_path, "  - path: f.tif", "  dir: png")
    assert read_image(tmp_path / "png" / "f.png")[2] == 16
