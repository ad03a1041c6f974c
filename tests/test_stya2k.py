"""StyA2K: key names, SELF-PARITY with a re-statement of the official forward, size limits lifted.

No fixture from the authors' code exists (../shared/reference has none, and the authors'
decoder/transform checkpoints are not available offline). `official_*` below re-states the
authors' `networks.A2K.forward`, `Transform`, `Decoder` and `A2KModel.forward` literally
(unfold/fold blocks, full-size einsums, no chunking, no padding), only valid on square
content and style of one size on the region grid. All tests use RANDOM WEIGHTS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylefarm.errors import WeightsError
from stylefarm.plugins._vgg import randomize_convs
from stylefarm.plugins.stya2k import ops
from stylefarm.plugins.stya2k.model import A2K, StyA2K
from stylefarm.plugins.stya2k.step import StyA2KOptions, StyA2KStep

REPO = Path(__file__).resolve().parent.parent


def official_block(x, p):
    b, c, _, _ = x.shape
    y = F.unfold(x, kernel_size=p, stride=p).permute(0, 2, 1)
    return y.reshape(b, -1, c, p * p).permute(0, 2, 1, 3)


def official_unblock(x, p, h):
    b, _, n, _ = x.shape
    x = x.permute(0, 2, 1, 3).contiguous().view(b, n, -1).permute(0, 2, 1)
    return F.fold(x, h, kernel_size=p, stride=p)


def official_a2k(m: A2K, content, style, p):
    """The authors' A2K.forward, statement by statement (heads = 8)."""
    h = content.shape[2]
    nc, ns = ops.mean_variance_norm(content), ops.mean_variance_norm(style)
    q = official_block(m.q(nc), p)
    b, c, n, r = q.shape
    def split(t):
        return official_block(t, p).reshape(b, 8, c // 8, n, r)
    q, k, v = q.reshape(b, 8, c // 8, n, r), split(m.k(ns)), split(m.v(style))
    q2, k2, v2 = split(m.q2(nc)), split(m.k2(ns)), split(m.v2(style))
    kc, vc = k.mean(-1), v.mean(-1)
    sim = torch.sigmoid(m.sim_beta + m.sim_alpha * torch.einsum("bhcx,bhcxy->bhxy", kc, k))
    k_agg = (torch.einsum("bhxy,bhcxy->bhcx", sim, k) + kc) / (r + 1)
    v_agg = (torch.einsum("bhxy,bhcxy->bhcx", sim, v) + vc) / (r + 1)
    scores = torch.softmax(torch.einsum("bhcxy,bhcz->bhyxz", q, k_agg), -1)
    da = official_unblock(torch.einsum("bhyxz,bhcz->bhcxy", scores, v_agg).reshape(b, c, n, r), p, h)
    idx = torch.einsum("bhcxy,bhczy->bhxz", q2, k2).argmax(-1).view(b, 8, 1, n, 1).expand_as(k2)
    k_r, v_r = torch.gather(k2, -2, idx), torch.gather(v2, -2, idx)
    scores2 = torch.softmax(torch.einsum("bhcxy,bhcxz->bhxyz", q2, k_r), -1)
    pa = official_unblock(torch.einsum("bhxyz,bhcxz->bhcxy", scores2, v_r).reshape(b, c, n, r), p, h)
    return m.fusion1(da) + m.fusion2(pa) + content


def official_forward(model: StyA2K, content, style):
    """A2KModel.forward: full 53-layer slices enc_1..enc_5, then A2K(3), Transform, Decoder."""
    layers = list(model.encoder.layers)
    def feats(x):
        out = []
        for lo, hi in ((0, 4), (4, 11), (11, 18), (18, 31), (31, 44)):
            for layer in layers[lo:hi]:
                x = layer(x)
            out.append(x)
        return out
    c, s = feats(content), feats(style)
    skip = official_a2k(model.A2K, c[2], s[2], 8)
    t = model.transform
    a5 = official_a2k(t.attn_adain_5_1, c[4], s[4], 4)
    a4 = official_a2k(t.attn_adain_4_1, c[3], s[3], 8)
    cs = t.merge_conv(t.merge_conv_pad(a4 + F.interpolate(a5, scale_factor=2, mode="nearest")))
    d = model.decoder
    return d.decoder_layer_2(torch.cat((d.decoder_layer_1(cs), skip), 1))


@pytest.fixture(scope="module")
def model() -> StyA2K:
    torch.manual_seed(0)
    m = StyA2K().eval()
    randomize_convs([m], seed=3)  # RANDOM WEIGHTS: parity of the maths, not of a trained model
    with torch.no_grad():
        for layer in (m.A2K, m.transform.attn_adain_4_1, m.transform.attn_adain_5_1):
            layer.sim_alpha.fill_(1.27)
            layer.sim_beta.fill_(0.02)
    return m


def test_generalized_path_matches_official_restatement_on_square_128(model):
    torch.manual_seed(1)
    content, style = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128)
    with torch.inference_mode():
        ref = official_forward(model, content, style)
        # a budget of 3 relu3_1 regions: uneven chunks at relu3_1 and relu4_1
        ours = model(content, model.style_keys(style), budget=3 * 8 * 64 * 64)
    assert ref.shape == ours.shape == (1, 3, 128, 128)
    assert ref.std().item() > 1.0  # random weights still give a non-trivial image
    assert (ours - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()


def test_a2k_layer_matches_official_restatement_exactly_on_grid(model):
    torch.manual_seed(2)
    c, s = torch.randn(2, 256, 32, 32).relu(), torch.randn(2, 256, 32, 32).relu()
    with torch.inference_mode():
        ref = official_a2k(model.A2K, c, s, 8)
        ours = model.A2K(c, model.A2K.style_keys(s), budget=64 * 8 * 64)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5)


def test_any_aspect_and_style_size_give_content_size_output(model):
    torch.manual_seed(3)
    content, style = torch.rand(1, 3, 40, 76), torch.rand(1, 3, 45, 27)
    with torch.inference_mode():
        out = model(content, model.style_keys(style))
    assert out.shape == (1, 3, 40, 76)
    assert torch.isfinite(out).all()


def test_padded_style_positions_do_not_leak_into_attention(model):
    """Padded style positions are masked: filling them with garbage changes nothing."""
    torch.manual_seed(4)
    layer = model.transform.attn_adain_5_1
    c, s = torch.randn(1, 512, 8, 8).relu(), torch.randn(1, 512, 6, 7).relu()
    with torch.inference_mode():
        keys = layer.style_keys(s)
        assert keys.valid is not None and not keys.valid.all()
        garbage = 1e3 * (~keys.valid)
        clean = ops.aggregate(keys.k, keys.v, keys.valid, layer.sim_alpha, layer.sim_beta)
        dirty = ops.aggregate(keys.k + garbage, keys.v + garbage, keys.valid, layer.sim_alpha, layer.sim_beta)
        a = layer(c, keys)
        b = layer(c, ops.StyleKeys(keys.k_agg, keys.v_agg, keys.k, keys.v + garbage, keys.valid))
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(clean, dirty))
    assert torch.allclose(a, b, atol=1e-5)


def test_region_roundtrip_with_padding():
    x = torch.arange(2 * 3 * 10 * 13, dtype=torch.float32).view(2, 3, 10, 13)
    regions, grid, valid = ops.to_regions(x, 4)
    assert regions.shape == (2, 3, 12, 16) and grid == (3, 4) and int(valid.sum()) == 130
    assert torch.equal(ops.from_regions(regions, 4, grid, 10, 13), x)
    ref = official_block(F.pad(x, (0, 3, 0, 2)), 4)
    assert torch.equal(regions, ref)


def test_authors_a2k_checkpoint_keys_load(tmp_path):
    """The real `latest_net_A2K.pth` key set (from the authors' repo) fits our A2K layer."""
    layer = A2K(256, 8)
    state = {k: torch.zeros_like(v) for k, v in layer.state_dict().items()}
    assert sorted(state) == sorted(["sim_alpha", "sim_beta"] + [f"{n}.{t}" for n in
                                   ("q", "k", "v", "q2", "k2", "v2", "fusion1", "fusion2")
                                   for t in ("weight", "bias")])
    torch.save(state, tmp_path / "latest_net_A2K.pth")
    layer.load_state_dict(torch.load(tmp_path / "latest_net_A2K.pth", weights_only=True))


def test_wrong_keys_raise_one_line_weights_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"vgg": {"0.weight": torch.zeros(3, 3, 1, 1)}, "A2K": {"foo": torch.zeros(1)},
                "transform": {}, "decoder": {}}, bad)
    step = StyA2KStep(StyA2KOptions(style=str(bad), weights=str(bad)))
    with pytest.raises(WeightsError) as err:
        step.setup("cpu")
    assert "\n" not in str(err.value)


def test_options_validation():
    with pytest.raises(ValueError, match="alpha"):
        StyA2KOptions(style="s.jpg", alpha=1.5)
    with pytest.raises(ValueError, match="weights"):
        StyA2KOptions(style="s.jpg", weights={"G": "x.pth"})


def test_step_on_real_image_random_weights(shared, content_images, style_images):
    """RANDOM-WEIGHT TEST MODE: proves the plumbing (resize, keys cached, shapes), not quality."""
    from stylefarm.images import read_image
    from stylefarm.item import Item

    opts = StyA2KOptions(style=str(style_images[0]), content_size=96, style_size=64,
                         keep_aspect=True, random_weights=True)
    step = StyA2KStep(opts)
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        step.setup("cpu")
    image = read_image(content_images[0])[0]
    out = step.process([Item(source=str(content_images[0]), index=0, image=image)])[0]
    h, w = image.shape[:2]
    assert min(out.image.shape[:2]) == 96 and abs(out.image.shape[1] / out.image.shape[0] - w / h) < 0.05
    assert out.image.dtype == np.float32 and 0 <= out.image.min() and out.image.max() <= 1
    assert out.meta["stya2k"]["random_weights"] is True


@pytest.mark.parametrize("size, groups", [(64, [3]), (256, [1, 1, 1])])
def test_cpu_runs_one_frame_a_pass_from_256_px(tmp_path, size, groups):
    """On CPU the VGG nets are faster one frame a pass from 256 px (512 px: 1.72 vs 2.40 s a frame);
    the pixels are the same either way."""
    from PIL import Image

    from stylefarm.item import Item

    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "style.png")
    step = StyA2KStep(StyA2KOptions(style=str(tmp_path / "style.png"), content_size=size, style_size=64,
                                    random_weights=True))
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        step.setup("cpu")
    frames = [rng.random((size, size, 3), dtype=np.float32) for _ in range(3)]
    seen, real = [], step.stylize
    step.stylize = lambda images: seen.append(len(images)) or real(images)
    out = step.process([Item(source="f", index=i, image=f) for i, f in enumerate(frames)])
    assert seen == groups
    together = real(frames)
    assert all(np.abs(o.image - t).max() < 1e-5 for o, t in zip(out, together))


@pytest.mark.slow
def test_4k_frame_stylizes_within_24_gib_on_cpu(tmp_path):
    """A 3840x2160 frame (style 512) in a child process; its peak RSS must stay < 24 GiB."""
    script = REPO / "benchmarks" / "stya2k_memory.py"
    run = subprocess.run([sys.executable, str(script), "--one", "a2k", "--width", "3840",
                          "--height", "2160", "--full-model"], capture_output=True, text=True,
                         timeout=3600, env={**os.environ})
    assert run.returncode == 0, run.stderr[-2000:]
    peak_gib = float(run.stdout.strip().splitlines()[-1].split()[-1])
    assert peak_gib < 24.0


def test_relative_style_and_weights_resolve_against_the_workflow(tmp_path):
    context = {"base_dir": tmp_path}
    opts = StyA2KOptions.model_validate({"style": "s.jpg", "weights": {"A2K": "w/a2k.pth"}}, context=context)
    assert opts.style == str(tmp_path / "s.jpg") and opts.weights == {"A2K": str(tmp_path / "w/a2k.pth")}
    one_file = StyA2KOptions.model_validate({"style": "/abs/s.jpg", "weights": "all.pth"}, context=context)
    assert one_file.style == "/abs/s.jpg" and one_file.weights == str(tmp_path / "all.pth")
