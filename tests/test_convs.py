"""`_convs` rewrites and `ConvStack`: VGG and feed-forward nets without pad and upsample copies, same maths.

The rewrites (plugins/_vgg.py) only fire on large maps, so these tests use frames big enough
for both and check that they did fire: a test of the plain path would pass trivially.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stylefarm.plugins import _convs
from stylefarm.plugins._convs import BORDER_FIX_MIN_PIXELS, FOLD_MIN_PIXELS, reflect_conv, upsample_reflect_conv
from stylefarm.plugins._vgg import VGGEncoder, randomize_convs, run_layers
from stylefarm.plugins.adain import model

CL = torch.channels_last


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape
    return float((got - want).abs().max() / want.abs().max())


def conv(cin: int, cout: int, bias: bool = True, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    layer = nn.Conv2d(cin, cout, 3, bias=bias)
    with torch.no_grad():
        layer.weight.normal_(0, (2 / (cin * 9)) ** 0.5)
    return layer


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (17, 11)])
def test_folded_upsampling_conv_matches_upsample_pad_conv(layout, shape):
    torch.manual_seed(1)
    x = torch.randn(2, 8, *shape).contiguous(memory_format=layout)
    for layer in (conv(8, 5), conv(8, 5, bias=False)):
        layer = layer.to(memory_format=layout)
        want = layer(nn.ReflectionPad2d(1)(nn.Upsample(scale_factor=2)(x)))
        with torch.no_grad():
            want64 = nn.functional.conv2d(
                nn.functional.pad(nn.functional.interpolate(x.double(), scale_factor=2), (1, 1, 1, 1),
                                  mode="reflect"), layer.weight.double(),
                None if layer.bias is None else layer.bias.double())
        got = upsample_reflect_conv(x, layer.weight, layer.bias)
        assert got.is_contiguous(memory_format=layout)
        assert rel_err(got.double(), want64) <= 1e-6  # as close to float64 as the plain path is
        assert rel_err(got, want) <= 1e-5


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
@pytest.mark.parametrize("kernel, shape", [(3, (2, 2)), (3, (2, 9)), (3, (13, 6)), (9, (9, 9)), (9, (11, 30))])
def test_border_fixed_conv_matches_reflection_padded_conv(layout, kernel, shape):
    torch.manual_seed(2)
    x = torch.randn(3, 6, *shape).contiguous(memory_format=layout)
    layer = nn.Conv2d(6, 4, kernel).to(memory_format=layout)
    want = layer(nn.ReflectionPad2d(kernel // 2)(x))
    got = reflect_conv(x, layer.weight, layer.bias)
    assert got.is_contiguous(memory_format=layout)
    assert rel_err(got, want) <= 1e-6


def test_rewrites_keep_gradients():
    torch.manual_seed(3)
    layer = conv(4, 3)
    pad, up = nn.ReflectionPad2d(1), nn.Upsample(scale_factor=2)
    pairs = [(lambda t: upsample_reflect_conv(t, layer.weight, layer.bias), lambda t: layer(pad(up(t)))),
             (lambda t: reflect_conv(t, layer.weight, layer.bias), lambda t: layer(pad(t))),
             (lambda t: upsample_reflect_conv(t, layer.weight, layer.bias, True), lambda t: layer(pad(up(t))).relu()),
             (lambda t: reflect_conv(t, layer.weight, layer.bias, True), lambda t: layer(pad(t)).relu())]
    for pair in pairs:
        grads = []
        for fn in pair:
            x = torch.randn(1, 4, 5, 6, generator=torch.Generator().manual_seed(4), requires_grad=True)
            layer.zero_grad()
            (fn(x) ** 2).sum().backward()
            grads.append((x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()))
        for got, want in zip(*grads):
            assert rel_err(got, want) <= 1e-5


def kinds_run(layers: nn.Sequential, x: torch.Tensor) -> list[str]:
    """The `_convs` rewrites `run_layers` ran, in order (modules run as themselves are not listed)."""
    steps: list[str] = []
    with pytest.MonkeyPatch.context() as patch:  # its own patches only, undone on return
        for name in ("reflect_conv", "upsample_reflect_conv"):
            real = getattr(_convs, name)
            patch.setattr(_convs, name, lambda *a, _n=name, _f=real: steps.append(_n) or _f(*a))
        for _ in run_layers(layers, x):
            pass
    return steps


@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_adain_networks_match_their_plain_sequentials_on_a_large_frame(layout):
    enc, dec = model.encoder(), model.Decoder()
    randomize_convs([enc, dec])
    enc, dec = enc.to(memory_format=layout).eval(), dec.to(memory_format=layout).eval()
    x = torch.rand(1, 3, 264, 280).contiguous(memory_format=layout)  # full-res maps > 256 x 256 px
    assert 264 * 280 >= BORDER_FIX_MIN_PIXELS and 33 * 35 >= FOLD_MIN_PIXELS
    with torch.inference_mode():
        feat = enc(x)[0]
        want_feat = nn.Sequential(*enc.layers)(x)
        assert rel_err(feat, want_feat) <= 1e-5
        got, want = dec(feat), nn.Sequential(*dec)(feat)
        assert rel_err(got, want) <= 1e-5
        assert got.is_contiguous(memory_format=layout)
        assert kinds_run(enc.layers, x) == ["reflect_conv"] * 2  # the full-res convs
        steps = kinds_run(dec, feat)
        assert steps.count("upsample_reflect_conv") == 3 and "reflect_conv" in steps  # the first map is 33x35


def test_relu_inside_the_conv_gives_the_unfused_pixels(monkeypatch):
    """ReLU inside oneDNN's conv (eager CPU channels-last inference) against the same rewrites
    with the ReLU as its own pass, bias or none, the folded upsamplings included."""
    enc, dec = model.encoder(), model.Decoder()
    randomize_convs([enc, dec])
    enc, dec = enc.to(memory_format=CL).eval(), dec.to(memory_format=CL).eval()
    x = torch.rand(1, 3, 264, 280).contiguous(memory_format=CL)
    feat_in = torch.rand(1, 512, 33, 35).contiguous(memory_format=CL)
    layer = conv(6, 5, bias=False).to(memory_format=CL)
    small = torch.randn(2, 6, 40, 37).contiguous(memory_format=CL)
    pieces = [lambda: enc(x)[0], lambda: dec(feat_in), lambda: reflect_conv(small, layer.weight, None, True),
              lambda: upsample_reflect_conv(small, layer.weight, None, True)]
    calls = []
    real = _convs._POINTWISE
    monkeypatch.setattr(_convs, "_POINTWISE", lambda *a: calls.append(a[7]) or real(*a))
    with torch.inference_mode():
        assert _convs.fused_cpu(x)
        fused = [piece() for piece in pieces]
        assert calls and set(calls) == {"relu"}  # the fused op did run
        monkeypatch.setattr(_convs, "fused_cpu", lambda t: False)
        plain = [piece() for piece in pieces]
    for k, (got, want) in enumerate(zip(fused, plain)):
        assert got.is_contiguous(memory_format=CL)
        assert k == 1 or want.min() == 0  # the ReLU'd ones did clip (the decoder ends on a conv)
        assert rel_err(got, want) <= 1e-6  # bit-identical on the machines measured


def test_fused_forms_stay_off_for_autograd_and_other_layouts():
    x = torch.rand(1, 3, 8, 8).contiguous(memory_format=CL)
    assert not _convs.fused_cpu(x)  # grad mode: autograd needs the plain ops
    with torch.no_grad():
        assert _convs.fused_cpu(x)
        assert not _convs.fused_cpu(x.contiguous())  # NCHW: not measured
        assert not _convs.fused_cpu(x.double())


def test_encoder_taps_stay_where_they_were():
    enc = VGGEncoder(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    randomize_convs([enc])
    x = torch.rand(1, 3, 260, 262)
    plain = nn.Sequential(*enc.layers)
    with torch.inference_mode():
        got = enc(x)
        for tap, index, feat in zip(enc.taps, (4, 11, 18, 31, 44), got):
            assert rel_err(feat, plain[:index](x)) <= 1e-5, tap


def test_one_pixel_maps_keep_the_modules_own_error():
    """Reflection padding of a 1-px map is an error in torch; the rewrite must not hide it."""
    enc = VGGEncoder(("relu1_1",))
    with pytest.raises(RuntimeError):
        enc(torch.rand(1, 3, 1, 8))


@pytest.mark.parametrize("preset", ["johnson", "cin26"])
def test_feed_forward_upsampling_convs_fold_to_the_same_output(preset, monkeypatch):
    """`_cin.ConvLayer` folds its upsampling convs (johnson at 720p: 1.18x per frame)."""
    from stylefarm.plugins import _cin

    torch.manual_seed(5)
    net = _cin.TransformerNet(_cin.PRESETS[preset]).eval()
    x = torch.rand(1, 3, 136, 200)  # the first upsampling reads a 34 x 50 map: over FOLD_MIN_PIXELS
    calls = []
    real = _cin.upsample_reflect_conv
    monkeypatch.setattr(_cin, "upsample_reflect_conv", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode():
        folded = net(x)
        assert len(calls) == 2
        monkeypatch.setattr(_cin, "FOLD_MIN_PIXELS", 10**12)
        plain = net(x)
    assert len(calls) == 2
    assert rel_err(folded, plain) <= 1e-5


def test_feed_forward_full_size_convs_skip_the_padded_copy(monkeypatch):
    """The 9x9 convs on the full frame (johnson at 720p: 1.04x per frame) give the same pixels."""
    from stylefarm.plugins import _cin

    torch.manual_seed(7)
    net = _cin.TransformerNet(_cin.PRESETS["johnson"]).eval()
    x = torch.rand(1, 3, 264, 264)  # full-size maps over BORDER_FIX_MIN_PIXELS, the rest under it
    calls = []
    real = _cin.reflect_conv
    monkeypatch.setattr(_cin, "reflect_conv", lambda *a: calls.append(a[1].shape[-1]) or real(*a))
    with torch.inference_mode():
        fixed = net(x)
        monkeypatch.setattr(_cin, "BORDER_FIX_MIN_PIXELS", 10**12)
        plain = net(x)
    assert calls == [9, 9]
    assert torch.equal(fixed, plain)


@pytest.mark.slow
def test_folded_nets_compile_with_aotinductor(tmp_path):
    """`compile: true` exports these graphs (~15 s each here). Inductor failed to lower the NCHW
    phase interleave of a folded upsampling conv (cin26's packages trace NCHW), so compiled
    NCHW graphs keep the plain ops; channels-last ones (AdaIN's) compile the rewrites."""
    from stylefarm.plugins import _cin

    torch.manual_seed(6)
    cin = _cin.TransformerNet(_cin.PRESETS["cin26"]).eval()
    enc = model.encoder()
    randomize_convs([enc])
    enc = enc.eval().to(memory_format=CL)
    cases = [(cin, (torch.rand(1, 3, 264, 264), torch.full((1, 26), 1 / 26))),  # border-fixed 9x9s too
             (model.Relu41(enc), (torch.rand(1, 3, 264, 264).contiguous(memory_format=CL),))]
    assert "reflect_conv" in kinds_run(enc.layers, cases[1][1][0])
    for i, (net, args) in enumerate(cases):
        with torch.no_grad():
            exported = torch.export.export(net, args)
            path = torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp_path / f"{i}.pt2"),
                                                            inductor_configs={"freezing": True})
            got = torch._inductor.aoti_load_package(path)(*args)
            assert rel_err(got, net(*args)) <= 1e-5
