"""AdaIN: parity with the official implementation (shared fixture), weights errors, options, ops.

The fixture (../shared/reference/adain, see its README) holds random weights under the
official key names plus inputs/outputs of pytorch-AdaIN's `net.py`/`function.py`/`style_transfer`.
Tests marked "RANDOM-WEIGHT TEST MODE" check plumbing on real photos, not stylization quality.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stylefarm.errors import WeightsError
from stylefarm.plugins._vgg import VGGEncoder, from_torchvision, vgg_layers
from stylefarm.plugins.adain import model, ops
from stylefarm.plugins.adain.step import AdaINOptions, AdaINStep

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared"))
FIXTURE = SHARED / "reference" / "adain" / "fixture.pt"
TOL = 1e-4


@pytest.fixture(scope="module")
def fixture() -> dict:
    if not FIXTURE.is_file():
        pytest.skip(f"AdaIN parity fixture not found at {FIXTURE} (set STYLEFARM_SHARED to ../shared)")
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def nets(fixture):
    enc, dec = model.encoder().eval(), model.Decoder().eval()
    enc.load_official(fixture["state_dict"]["vgg"])
    dec.load_state_dict(fixture["state_dict"]["decoder"])
    return enc, dec


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def test_features_and_statistics_match_official(fixture, nets):
    enc, _ = nets
    inp, out = fixture["inputs"], fixture["outputs"]
    with torch.inference_mode():
        c, s = enc(inp["content"])[0], enc(inp["style"])[0]
        assert max_err(c, out["content_relu4_1"]) <= TOL
        assert max_err(s, out["style_relu4_1"]) <= TOL
        assert max_err(ops.adain(c, s), out["adain_feat"]) <= TOL
        for name, got in zip(("content_mean", "content_std"), ops.calc_mean_std(c)):
            assert max_err(got, out[name]) <= TOL
        for name, got in zip(("style_mean", "style_std"), ops.calc_mean_std(s)):
            assert max_err(got, out[name]) <= TOL


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_stylized_output_matches_official_for_alpha(fixture, nets, alpha):
    enc, dec = nets
    inp = fixture["inputs"]
    with torch.inference_mode():
        c, s = enc(inp["content"])[0], enc(inp["style"])[0]
        got = dec(ops.blend(ops.adain(c, s), c, alpha))
    assert max_err(got, fixture["outputs"][f"stylized_alpha{alpha}"]) <= TOL


def test_style_interpolation_matches_official(fixture, nets):
    enc, dec = nets
    inp = fixture["inputs"]
    with torch.inference_mode():
        c = enc(inp["content"])[0]
        pair = enc(inp["style_pair_for_interpolation"])[0]
        stats = [ops.calc_mean_std(pair[i:i + 1]) for i in range(2)]
        weights = ops.normalize_weights([1, 3], 2)
        got = dec(ops.blend(ops.mix_styles(c, stats, weights), c, 1.0))
    assert weights == inp["interpolation_weights"].tolist()
    assert max_err(got, fixture["outputs"]["stylized_interp_w0.25_0.75_alpha1.0"]) <= TOL


def save_float_tiff(path: Path, chw: torch.Tensor) -> str:
    import tifffile

    tifffile.imwrite(path, chw.permute(1, 2, 0).numpy().astype(np.float32))
    return str(path)


def test_step_reproduces_official_outputs_through_files(fixture, tmp_path):
    """The whole step (style read + stats in setup, batch, decode) on float TIFF inputs."""
    inp, out = fixture["inputs"], fixture["outputs"]
    style = save_float_tiff(tmp_path / "style.tif", inp["style"][0])
    pair = [save_float_tiff(tmp_path / f"s{i}.tif", inp["style_pair_for_interpolation"][i]) for i in range(2)]
    content = inp["content"][0].permute(1, 2, 0).numpy()
    single = AdaINStep(AdaINOptions(style=style, weights=str(FIXTURE), content_size=0, style_size=0, alpha=0.5))
    mixed = AdaINStep(AdaINOptions(style=pair, style_weights=[1, 3], weights=str(FIXTURE),
                                   content_size=0, style_size=0))
    for step, key in ((single, "stylized_alpha0.5"), (mixed, "stylized_interp_w0.25_0.75_alpha1.0")):
        step.setup("cpu")
        got = step.stylize([content])[0]
        want = out[key][0].clamp(0, 1).permute(1, 2, 0).numpy()  # the clamp of save_image
        assert np.abs(got - want).max() <= TOL


def test_wrong_keys_raise_one_line_weights_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"vgg": {"features.weird": torch.zeros(2)}, "decoder": {"0.weight": torch.zeros(1)}}, bad)
    with pytest.raises(WeightsError) as err:
        AdaINStep(AdaINOptions(style="unused.jpg", weights=str(bad))).setup("cpu")
    assert "\n" not in str(err.value) and "VGG-19" in str(err.value)


def test_decoder_with_wrong_keys_names_the_file(tmp_path, fixture):
    dec = tmp_path / "decoder.pth"
    torch.save({"1.weight": torch.zeros(1)}, dec)
    vgg = tmp_path / "vgg.pth"
    torch.save(fixture["state_dict"]["vgg"], vgg)
    with pytest.raises(WeightsError, match="decoder.pth") as err:
        AdaINStep(AdaINOptions(style="unused.jpg", weights={"vgg": str(vgg), "decoder": str(dec)})).setup("cpu")
    assert "\n" not in str(err.value)


def test_corrupt_or_missing_weights_say_what_to_do(tmp_path):
    corrupt = tmp_path / "decoder.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        AdaINStep(AdaINOptions(style="x.jpg", weights={"decoder": str(corrupt), "vgg": str(corrupt)})).setup("cpu")
    with pytest.raises(WeightsError, match="stylefarm weights add adain/") as err:
        AdaINStep(AdaINOptions(style="x.jpg")).setup("cpu")  # empty test cache, nothing downloaded
    said = str(err.value)  # both files at once: the decoder was told only after the VGG was fetched
    assert "weights add adain/vgg " in said and "; and weights 'adain/decoder' " in said and "\n" not in said
    with pytest.raises(WeightsError, match="unknown weights role"):
        AdaINStep(AdaINOptions(style="x.jpg", weights={"G": str(corrupt)})).setup("cpu")


@pytest.mark.parametrize("bad, message", [
    ({"style": "s.jpg", "alpha": 1.5}, "alpha"),
    ({"style": ["a.jpg", "b.jpg"], "style_weights": [1.0]}, "style_weights"),
    ({"style": ["a.jpg", "b.jpg"], "style_weights": [0, 0]}, "positive sum"),
    ({"style": ["a.jpg", "b.jpg"], "mask": ["m.png"]}, "one per style"),
    ({"style": ["a.jpg", "b.jpg"], "mask": ["m.png", "n.png"], "style_weights": [1, 1]}, "exclude"),
    ({"style": ["a.jpg", "b.jpg"], "preserve_color": True}, "luminance"),
    ({"style": "s.jpg", "content_size": -1}, "content_size"),
    ({"style": "s.jpg", "alhpa": 1}, "alhpa"),
    ({"style": []}, "at least one"),
])
def test_invalid_options_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        AdaINOptions(**bad)


def test_single_style_string_and_defaults_mirror_official():
    opts = AdaINOptions(style="s.jpg")
    assert opts.style == ["s.jpg"]
    official = (1.0, 512, 512, False, False)
    assert (opts.alpha, opts.content_size, opts.style_size, opts.crop, opts.preserve_color) == official


def test_masked_adain_gives_each_region_its_style_statistics():
    torch.manual_seed(0)
    content = torch.randn(1, 4, 6, 8)
    stats = [(torch.full((1, 4, 1, 1), 5.0), torch.full((1, 4, 1, 1), 2.0)),
             (torch.full((1, 4, 1, 1), -3.0), torch.full((1, 4, 1, 1), 0.5))]
    left = torch.zeros(6, 8, dtype=torch.bool)
    left[:, :4] = True
    out = ops.masked_adain(content, stats, torch.stack([left, ~left]))
    mean_l, std_l = ops.calc_mean_std(out[:, :, left].unsqueeze(-1))
    mean_r, std_r = ops.calc_mean_std(out[:, :, ~left].unsqueeze(-1))
    assert torch.allclose(mean_l, stats[0][0], atol=1e-4) and torch.allclose(std_l, stats[0][1], atol=1e-3)
    assert torch.allclose(mean_r, stats[1][0], atol=1e-4) and torch.allclose(std_r, stats[1][1], atol=1e-3)
    whole = ops.masked_adain(content, stats[:1], torch.ones(1, 6, 8, dtype=torch.bool))
    assert torch.allclose(whole, ops.adain_from_stats(content, *stats[0]), atol=1e-5)


def test_coral_moves_colour_statistics_to_the_target():
    torch.manual_seed(0)
    source = torch.rand(3, 25, 25)  # same pixel count: the official covariance is a sum, not a mean
    target = torch.rand(3, 25, 25) * torch.tensor([0.2, 0.9, 0.5]).view(3, 1, 1) + 0.1
    moved = ops.coral(source, target).reshape(3, -1)
    flat = target.reshape(3, -1)
    assert torch.allclose(moved.mean(1), flat.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(moved), torch.cov(flat), rtol=2e-2, atol=1e-4)


def test_luminance_preservation_keeps_content_chroma():
    rng = np.random.default_rng(0)
    stylized, content = rng.uniform(0.2, 0.8, (8, 8, 3)).astype(np.float32), np.full((8, 8, 3), 0.5, np.float32)
    out = ops.keep_luminance_only(stylized, content)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    assert np.allclose(out @ luma, stylized @ luma, atol=1e-5)
    assert np.allclose(out.std(axis=2), 0, atol=1e-5)  # grey content -> grey result


def test_official_resize_short_side_and_centre_crop():
    image = np.zeros((300, 400, 3), np.float32)
    assert ops.official_resize(image, 150, False).shape == (150, 200, 3)
    assert ops.official_resize(image, 150, True).shape == (150, 150, 3)
    assert ops.official_resize(image, 0, False).shape == (300, 400, 3)


def test_torchvision_vgg19_checkpoint_maps_to_encoder_keys():
    torch.manual_seed(0)
    convs = [m for m in vgg_layers(53) if isinstance(m, torch.nn.Conv2d)][1:]  # 16 3x3 convs
    tv_index = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    state = {}
    for i, conv in zip(tv_index, convs):
        state[f"features.{i}.weight"] = torch.randn(conv.weight.shape)
        state[f"features.{i}.bias"] = torch.randn(conv.bias.shape)
    state["classifier.0.weight"] = torch.zeros(1)
    ours = VGGEncoder(("relu5_1",))
    ours.load_official(state)
    x = torch.rand(1, 3, 4, 4)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(ours.layers[0](x), expected, atol=1e-6)
    assert torch.equal(ours.layers[2].weight, state["features.0.weight"])
    assert torch.equal(ours.layers[42].weight, state["features.28.weight"])  # conv5_1
    assert len(from_torchvision(state)) == 34


def test_step_on_real_photo_random_weights(content_images, style_images):
    """RANDOM-WEIGHT TEST MODE: real photo + painting, checks sizes/range/metadata only."""
    from stylefarm.images import read_image
    from stylefarm.item import Item

    step = AdaINStep(AdaINOptions(style=[str(style_images[0]), str(style_images[1])], style_weights=[1, 1],
                                  content_size=64, style_size=64, random_weights=True))
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        step.setup("cpu")
    image = read_image(content_images[0])[0]
    items = [Item(source=str(content_images[0]), index=i, image=image) for i in range(2)]
    out = step.process(items)
    h, w = image.shape[:2]
    assert out[0].image.shape[:2] == ((64, int(64 * w / h)) if h <= w else (int(64 * h / w), 64))
    assert np.array_equal(out[0].image, out[1].image)  # deterministic within a batch
    assert out[0].image.dtype == np.float32 and 0 <= out[0].image.min() and out[0].image.max() <= 1
    assert out[0].image.std() > 0.01
    assert out[0].meta["adain"]["random_weights"] is True


def test_big_frames_go_through_in_passes_of_bounded_pixels(content_images, style_images, monkeypatch):
    """A batch of big frames runs in smaller passes (caches); the outputs are those of one pass."""
    from stylefarm.images import read_image, resize
    from stylefarm.item import Item
    from stylefarm.plugins import _vgg

    step = AdaINStep(AdaINOptions(style=str(style_images[0]), content_size=0, style_size=64, random_weights=True))
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        step.setup("cpu")
    frames = [resize(read_image(p)[0], 48, 40) for p in (content_images * 3)[:3]]
    items = [Item(source="f", index=i, image=f) for i, f in enumerate(frames)]
    passes = []
    original = step.stylize
    monkeypatch.setattr(step, "stylize", lambda images: passes.append(len(images)) or original(images))
    together = step.process(items)
    monkeypatch.setattr(_vgg, "VGG_PIXELS_PER_PASS", 2 * 48 * 40)
    split = step.process(items)
    assert passes == [3, 2, 1]
    for a, b in zip(together, split):
        np.testing.assert_allclose(a.image, b.image, atol=1e-4)  # oneDNN picks per batch size


def test_spatial_masks_on_real_photo_random_weights(tmp_path, content_images, style_images):
    """RANDOM-WEIGHT TEST MODE: two styles split by a mask; each half follows its own style."""
    import cv2

    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    cv2.imwrite(str(tmp_path / "left.png"), mask)
    cv2.imwrite(str(tmp_path / "right.png"), 255 - mask)
    step = AdaINStep(AdaINOptions(style=[str(p) for p in style_images[:2]], content_size=64, style_size=64,
                                  crop=True, mask=[str(tmp_path / "left.png"), str(tmp_path / "right.png")],
                                  random_weights=True))
    with pytest.warns(UserWarning):
        step.setup("cpu")
    from stylefarm.images import read_image

    out = step.stylize([ops.official_resize(read_image(content_images[0])[0], 64, True)])[0]
    assert out.shape == (64, 64, 3) and np.isfinite(out).all()
