"""Paint Transformer: renderer and network parity with the official code, painting, training, step."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from stylefarm.item import Item
from stylefarm.plugins.paint_transformer import render
from stylefarm.plugins.paint_transformer.brushes import procedural_brushes
from stylefarm.plugins.paint_transformer.loading import shipped_brushes
from stylefarm.plugins.paint_transformer.matching import linear_assignment
from stylefarm.plugins.paint_transformer.model import Painter, PainterConfig, build_painter
from stylefarm.plugins.paint_transformer.ops import (
    dilation,
    eroded_mask,
    erosion,
    hard_decision,
    num_levels,
    sample_colors,
)
from stylefarm.plugins.paint_transformer.paint import PaintSettings, paint
from stylefarm.plugins.paint_transformer.render import composite_sequence, param2stroke, render_grid
from stylefarm.plugins.paint_transformer.step import PaintTransformerOptions, PaintTransformerStep
from stylefarm.plugins.paint_transformer.train import (
    TrainConfig,
    gaussian_w2,
    synthetic_batch,
    train,
    training_losses,
)

REPO = Path(__file__).resolve().parent.parent
REF = Path(os.environ.get("STYLEFARM_SHARED", REPO.parent / "shared")) / "reference" / "painttransformer"
SHIPPED = REPO / "plugins" / "paint_transformer" / "weights" / "paint_transformer_sf.pt"
TINY = PainterConfig(hidden_dim=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, dim_feedforward=64, dropout=0.0,
                     param_act="sigmoid")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fixture(name: str) -> dict:
    path = REF / name
    if not path.is_file():
        pytest.skip(f"official reference {path} not found (set STYLEFARM_SHARED to the shared folder)")
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def renderer_ref():
    return _fixture("stroke_renderer_fixture.pt")


@pytest.fixture(scope="module")
def network_ref():
    return _fixture("fixture.pt")


# ---- renderer parity -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_stroke_grids_are_aten_s_affine_grid_bit_for_bit(dtype):
    """The renderer's grid (render.affine_grid) must equal F.affine_grid exactly: a hard alpha
    threshold turns one-ulp grid differences into flipped border pixels. Where the one-product
    path passes its two-stroke check, it must be exact for any number of strokes (windows under
    ~70 pixels use ATen's plain loop, which rounds otherwise here: the check sends them to ATen)."""
    torch.manual_seed(3)
    sizes = [(32, 32), (48, 48), (96, 64), (7, 13), (100, 75), (4, 4), (5, 13)]
    if dtype != torch.bfloat16:  # ATen makes no 1-pixel bfloat16 grid
        sizes.append((1, 5))
    for (h, w), n in itertools.product(sizes, [1, 7, 600]):
        param = (torch.rand(n, 8) * torch.tensor([1, 1, 0.5, 0.5, 2, 1, 1, 1]) + 0.01).to(dtype)
        theta = render.stroke_warp(param, h, w)
        aten = torch.nn.functional.affine_grid(theta, [n, 1, h, w], align_corners=False)
        assert torch.equal(render.affine_grid(theta, h, w), aten), (h, w, n)
        if render._CHECKED[("cpu", dtype, h, w)]:
            assert torch.equal(render._grid_product(theta, h, w), aten), (h, w, n)
    assert render.affine_grid(torch.zeros(0, 2, 3), 8, 8).shape == (0, 8, 8, 2)


def test_stroke_grids_keep_gradients_and_fall_back_where_the_product_rounds_otherwise(monkeypatch):
    param = (torch.rand(10, 8) * 0.5 + 0.1).requires_grad_()
    ours = torch.autograd.grad(render.affine_grid(render.stroke_warp(param, 20, 30), 20, 30).sum(), param)[0]
    aten = torch.autograd.grad(torch.nn.functional.affine_grid(render.stroke_warp(param, 20, 30), [10, 1, 20, 30],
                                                               align_corners=False).sum(), param)[0]
    assert torch.equal(ours, aten)
    real = render._grid_product
    monkeypatch.setattr(render, "_grid_product", lambda theta, h, w: real(theta, h, w) + 1e-7)  # off by an ulp or so
    theta = render.stroke_warp(torch.rand(5, 8) * 0.5 + 0.1, 21, 17)
    out = render.affine_grid(theta, 21, 17)
    assert render._CHECKED[("cpu", torch.float32, 21, 17)] is False
    assert torch.equal(out, torch.nn.functional.affine_grid(theta, [5, 1, 21, 17], align_corners=False))
    render._CHECKED.pop(("cpu", torch.float32, 21, 17))


def test_eroded_mask_is_the_float_erosion_of_the_mask():
    torch.manual_seed(4)
    for shape in [(3, 1, 16, 16), (2, 1, 5, 9), (1, 1, 1, 1), (4, 1, 40, 3)]:
        mask = torch.rand(shape) > 0.2
        for m in (1, 2):
            assert torch.equal(eroded_mask(mask, m), erosion(mask.float(), m) > 0)
    border = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert eroded_mask(border).all(), "outside the window counts as on: borders do not erode"


def test_windowed_min_and_max_are_the_pooled_ones_for_every_radius():
    """The padding-free passes against max_pool2d of the padded image, down to images smaller
    than the window."""
    pool, pad = torch.nn.functional.max_pool2d, torch.nn.functional.pad
    for shape in [(3, 2, 20, 17), (1, 1, 1, 1), (2, 1, 2, 5), (1, 1, 3, 1)]:
        x = torch.rand(shape) * 4 - 2
        assert torch.equal(dilation(x, 0), x) and torch.equal(erosion(x, 0), x)
        for m in (1, 2, 3, 5):
            assert torch.equal(dilation(x, m), pool(pad(x, [m] * 4, value=-1e9), 2 * m + 1, 1)), (shape, m)
            assert torch.equal(erosion(x, m), -pool(pad(-x, [m] * 4, value=-1e9), 2 * m + 1, 1)), (shape, m)
            assert torch.equal(eroded_mask(x > 0, m), erosion((x > 0).float(), m) > 0), (shape, m)


@pytest.mark.parametrize("hw", [(32, 32), (64, 64), (32, 48)])
def test_param2stroke_matches_official_renderer(renderer_ref, hw):
    ins, outs = renderer_ref["inputs"], renderer_ref["outputs"]
    fg, alpha = param2stroke(ins["stroke_params"], *hw, ins["meta_brushes"])
    key = f"param2stroke_{hw[0]}x{hw[1]}"
    ref_alpha = outs[key + "_alpha"]
    flipped = (alpha.expand_as(ref_alpha) != ref_alpha).float().mean().item()
    assert flipped < 0.001, "alpha is a hard threshold: at most isolated border pixels may differ"
    close = (fg - outs[key + "_foreground"]).abs() <= 1e-4
    assert close.float().mean().item() > 0.999


def test_sequential_compositing_and_morphology_match_official(renderer_ref):
    ins, outs = renderer_ref["inputs"], renderer_ref["outputs"]
    fg, alpha = param2stroke(ins["stroke_params"], 32, 32, ins["meta_brushes"])
    out = composite_sequence(ins["composite_canvas0"], fg[None], alpha[None], torch.ones(1, 8))
    assert (out - outs["composite_32x32_sequential"]).abs().max() < 1e-4
    assert torch.equal(erosion(ins["morph_input"]), outs["erosion_m1"])
    assert torch.equal(dilation(ins["morph_input"]), outs["dilation_m1"])


@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("grid", ["grid2x2", "grid4x4", "grid3x3_border"])
def test_grid_renderer_matches_official_parallel_and_serial(renderer_ref, grid, serial):
    ins, outs = renderer_ref["inputs"], renderer_ref["outputs"]
    canvas, border = ins[f"{grid}_canvas"], 16 if "border" in grid else 0
    canvas = torch.nn.functional.pad(canvas, [border] * 4)
    out = render_grid(ins[f"{grid}_param"], ins[f"{grid}_decision"], ins["meta_brushes"], canvas, serial=serial)
    if border:
        out = out[..., border:-border, border:-border]
    for mode in ("parallel", "serial"):
        assert (out - outs[f"{grid}_param2img_{mode}"]).abs().max() < 1e-4


def test_serial_and_parallel_render_the_same_pixels():
    gen = torch.Generator().manual_seed(3)
    param = torch.rand(1, 3, 3, 4, 8, generator=gen)
    on = torch.rand(1, 3, 3, 4, generator=gen) > 0.3
    canvas = torch.rand(1, 3, 96, 96, generator=gen)
    frames = []
    a = render_grid(param, on, procedural_brushes(), canvas, serial=False, hook=lambda c: frames.append(c.clone()))
    b = render_grid(param, on, procedural_brushes(), canvas, serial=True)
    assert torch.equal(a, b)
    assert len(frames) == 4 * 4  # one per stroke index per window group
    assert not torch.equal(a, canvas)


def test_fast_stroke_painting_is_bit_identical_to_rendering_then_compositing():
    """paint_strokes (one-channel dilation, choose stroke or canvas) against the general
    renderer + alpha compositing, on strokes of every size, angle and colour incl. 0 and 1."""
    from stylefarm.plugins.paint_transformer.render import composite, paint_strokes

    gen = torch.Generator().manual_seed(11)
    param = torch.rand(400, 8, generator=gen)
    param[:50, 5:8] = 0.0
    param[50:100, 5:8] = 1.0
    param[100:150, 2:4] *= 0.05  # tiny strokes
    canvas = torch.rand(400, 3, 48, 40, generator=gen)
    for brushes in (procedural_brushes(), shipped_brushes()):
        fg, alpha = param2stroke(param, 48, 40, brushes)
        expected = composite(canvas, fg, alpha, torch.ones(400, 1, 1, 1))
        assert torch.equal(paint_strokes(canvas, param, brushes), expected)
    param[0, 5] = -0.5  # a negative colour: the general path, still the same pixels
    fg, alpha = param2stroke(param, 48, 40, procedural_brushes())
    assert torch.equal(paint_strokes(canvas, param, procedural_brushes()),
                       composite(canvas, fg, alpha, torch.ones(400, 1, 1, 1)))


def test_soft_renderer_gives_geometry_gradients():
    param = torch.tensor([[0.5, 0.5, 0.4, 0.2, 0.1, 0.9, 0.2, 0.1]], requires_grad=True)
    fg, alpha = param2stroke(param, 32, 32, procedural_brushes(), soft=True)
    target = torch.zeros(1, 3, 32, 32)
    target[..., 10:20, 20:30] = 1
    loss = (composite_sequence(torch.zeros(1, 3, 32, 32), fg[None], alpha[None], torch.ones(1, 1)) - target).abs()
    loss.mean().backward()
    assert param.grad[0, :5].abs().sum() > 0, "x, y, w, h, theta must receive gradients"


def test_hard_decision_passes_sigmoid_gradient():
    x = torch.tensor([-1.0, 0.5], requires_grad=True)
    out = hard_decision(x)
    out.sum().backward()
    assert out.tolist() == [0.0, 1.0]
    assert torch.allclose(x.grad, torch.sigmoid(x) * (1 - torch.sigmoid(x)))


# ---- network and full painting parity --------------------------------------------------------

def test_painter_with_official_keys_matches_reference_network(network_ref):
    net = build_painter(network_ref["state_dict"])
    assert set(net.state_dict()) == set(network_ref["state_dict"])
    ins, outs = network_ref["inputs"], network_ref["outputs"]
    with torch.no_grad():
        param, logit = net(ins["img_patch"], ins["canvas_patch"])
        color = sample_colors(ins["img_patch"], param[..., :2])
    assert (param - outs["param"]).abs().max() < 1e-4
    assert (logit - outs["decision_logit"]).abs().max() < 1e-4
    assert torch.equal((logit > 0).float(), outs["decision_01"])
    assert (color - outs["sampled_color"]).abs().max() < 1e-4


@pytest.mark.parametrize("name,serial", [("img_48x64", True), ("img_100x80", False),
                                         pytest.param("img_100x80", True, marks=pytest.mark.slow)])
def test_full_painting_equals_official_inference(network_ref, renderer_ref, name, serial):
    net = build_painter(network_ref["state_dict"])
    brushes = renderer_ref["inputs"]["meta_brushes"]
    with torch.no_grad():
        out = paint(net, brushes, network_ref["inputs"][name], PaintSettings(serial=serial)).image[0]
    ref = network_ref["outputs"][f"paint_{name}_{'serial' if serial else 'parallel'}"]
    assert out.shape == ref.shape
    assert ((out - ref).abs() > 1e-4).float().mean().item() < 0.005


def test_levels_follow_the_official_rule():
    assert [num_levels(*hw) for hw in [(20, 30), (32, 32), (48, 64), (100, 80), (512, 384), (513, 10)]] == [
        0, 0, 1, 2, 4, 5]


# ---- matching and losses -------------------------------------------------------------------------

def test_linear_assignment_finds_the_optimum():
    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (3, 5), (5, 3), (6, 6), (4, 8)]:
        cost = rng.random((n, m))
        rows, cols = linear_assignment(cost)
        assert len(set(rows.tolist())) == len(rows) == min(n, m) == len(set(cols.tolist()))
        small, big = min(n, m), max(n, m)
        c = cost if n <= m else cost.T
        best = min(sum(c[i, p[i]] for i in range(small)) for p in itertools.permutations(range(big), small))
        assert cost[rows, cols].sum() == pytest.approx(best)


def test_gaussian_distance_is_zero_for_equal_and_half_turn_rotated_strokes():
    a = torch.tensor([0.3, 0.6, 0.4, 0.2, 0.1])
    b = a.clone()
    b[4] += 1.0  # theta is in half turns: +1 is the same ellipse
    far = torch.tensor([0.7, 0.2, 0.4, 0.2, 0.1])
    assert gaussian_w2(a, a).abs() < 1e-4 and gaussian_w2(a, b).abs() < 1e-4
    assert gaussian_w2(a, far) > 0.3


def test_training_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    brushes = procedural_brushes(64)
    net = Painter(TINY)
    cfg = TrainConfig(net=TINY, batch_size=4)
    batch = synthetic_batch(4, 8, brushes, torch.Generator().manual_seed(1))
    assert batch[0].shape == batch[1].shape == (4, 3, 32, 32) and batch[2].shape == (4, 8, 5)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    first = None
    for _ in range(12):
        loss, _ = training_losses(net, batch, brushes, cfg)
        first = loss["total"].item() if first is None else first
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
    assert loss["total"].item() < 0.7 * first


def test_training_checkpoints_resume_and_writes_previews(tmp_path):
    brushes = procedural_brushes(64)
    cfg = TrainConfig(net=TINY, batch_size=4, max_steps=2)
    export = tmp_path / "w.pt"
    train(cfg, tmp_path, brushes, log=lambda s: None, save_every=1, preview_every=2, export=export)
    assert (tmp_path / "preview_000002.png").is_file() and export.is_file()
    lines = []
    cfg2 = TrainConfig(net=TINY, batch_size=4, max_steps=3)
    train(cfg2, tmp_path, brushes, log=lines.append, save_every=1)
    assert any("resuming" in line and "step 2" in line for line in lines)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["state"]["step"] == 3
    net = build_painter(torch.load(export, weights_only=True))
    assert net.config.hidden_dim == 32 and net.config.param_act == "sigmoid"


def test_train_command_runs_from_the_cli(tmp_path):
    from click.testing import CliRunner

    from stylefarm.plugins.paint_transformer.cli import train_command

    res = CliRunner().invoke(train_command, ["--out", str(tmp_path), "--max-steps", "1", "--hidden", "32",
                                             "--batch-size", "4", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "paint_transformer_sf.pt").is_file()


# ---- step --------------------------------------------------------------------------------------

def _item(h=40, w=56, seed=0) -> Item:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x)], -1).astype(np.float32)
    return Item(source="x.png", index=seed, image=img, original=img)


def _step(**opts) -> PaintTransformerStep:
    step = PaintTransformerStep(PaintTransformerOptions(**opts))
    step.setup("cpu")
    return step


def test_random_weights_warn_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        step = _step(weights="random")
    assert "RANDOM WEIGHTS" in caplog.text
    out = step.process([_item()])[0]
    assert out.image.shape == (40, 56, 3) and out.image.dtype == np.float32


def test_step_attaches_strokes_and_bounded_animation_frames():
    step = _step(weights="random", strokes_json=True, animate=True, animate_frames=4)
    out = step.process([_item(h=60, w=50)])[0]  # K = 1: levels 0 and 1 plus the border pass
    strokes = out.meta["strokes"]
    assert strokes and set(strokes[0]) == {"pass", "x", "y", "w", "h", "angle", "r", "g", "b"}
    assert {s["pass"] for s in strokes} <= {0, 1, 2}
    frames = out.meta["paint_frames"]
    assert 3 <= len(frames) <= 3 * 4 + 1
    assert all(f.shape == (60, 50, 3) and f.dtype == np.uint8 for f in frames)
    assert np.abs(frames[-2].astype(int) - frames[-1].astype(int)).max() <= 1, "last process frame = painting"


def test_stroke_records_are_in_image_pixels():
    """A single big stroke in the 1x1 grid lands where the record says."""
    net = _ConstantNet(torch.tensor([0.25, 0.75, 0.5, 0.3, 0.0]))
    img = torch.ones(1, 3, 32, 32) * torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    res = paint(net, procedural_brushes(), img, PaintSettings(border=False), want_strokes=True)
    (row,) = res.strokes[0].tolist()
    assert row[1:5] == pytest.approx([8.0, 24.0, 16.0, 9.6], abs=1e-4)
    painted = (res.image[0, 0] > 0.5).nonzero().float()
    assert painted[:, 1].mean() == pytest.approx(8.0, abs=1.5) and painted[:, 0].mean() == pytest.approx(24.0, abs=1.5)


class _ConstantNet(torch.nn.Module):
    """Predicts the same single, always-on stroke for every patch."""

    def __init__(self, shape: torch.Tensor):
        super().__init__()
        self.shape = shape

    def forward(self, img, canvas):
        return self.shape.expand(img.shape[0], 1, 5), torch.ones(img.shape[0], 1, 1)


def test_fixed_jitter_seed_repeats_and_other_seed_moves_the_grid():
    net = build_painter({"state_dict": Painter(TINY).state_dict(), "config": TINY.to_dict()})
    img = torch.from_numpy(_item(50, 50).image).permute(2, 0, 1)[None]
    with torch.no_grad():
        a, b, c = (paint(net, procedural_brushes(64), img, PaintSettings(jitter=6, seed=s)).image for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_options_are_validated():
    with pytest.raises(ValidationError):
        PaintTransformerOptions(levels=12)
    with pytest.raises(ValidationError):
        PaintTransformerOptions(animate_fps=3)
    assert PaintTransformerOptions(levels=2).levels == 2


def test_unknown_weights_role_is_a_clear_error():
    from stylefarm.errors import WeightsError

    with pytest.raises(WeightsError, match="only 'model'"):
        _step(weights={"decoder": "x.pt"})


def test_shipped_brush_images_are_the_procedural_ones():
    shipped, drawn = shipped_brushes(), procedural_brushes()
    assert shipped.shape == drawn.shape == (2, 1, 256, 256)
    assert (shipped - drawn).abs().max() <= 1 / 255 + 1e-6
    assert ((shipped > 0) == (drawn > 0)).all()


def test_plugin_registers_step_weights_and_train_command():
    from stylefarm.host import get_host

    host = get_host()
    assert host.step_class("paint_transformer") is PaintTransformerStep
    assert {"paint_transformer/model", "paint_transformer/official"} <= set(host.weights)
    assert "paint-transformer" in [c.name for c in host.train_commands()]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped weights not trained yet")
def test_shipped_weights_paint_closer_than_a_blank_canvas():
    step = _step()
    item = _item(64, 64)
    out = step.process([item])[0]
    err = np.abs(out.image - item.image).mean()
    assert err < 0.5 * np.abs(item.image).mean()
    assert err < 0.08


def test_step_with_official_weights_and_brushes_from_the_cache_paints_the_official_result(network_ref):
    """`weights: paint_transformer/official` + default options = the official inference."""
    import shutil

    from stylefarm import weights as wm

    state_path = wm.cached_path(wm.lookup("paint_transformer/official"))
    state_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network_ref["state_dict"], state_path)
    for name, png in (("paint_transformer/brush_vertical", "brush_large_vertical.png"),
                      ("paint_transformer/brush_horizontal", "brush_large_horizontal.png")):
        dest = wm.cached_path(wm.lookup(name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REF / "brush" / png, dest)
    try:
        step = _step(weights="paint_transformer/official")
        hwc = network_ref["inputs"]["img_48x64"][0].permute(1, 2, 0).numpy()
        out = step.process([Item(source="a.png", index=0, image=hwc, original=hwc)])[0].image
    finally:
        state_path.unlink()
    ref = network_ref["outputs"]["paint_img_48x64_parallel"].permute(1, 2, 0).numpy()
    assert (np.abs(out - ref) > 1e-4).mean() < 0.005


@pytest.mark.parametrize("levels,passes", [(None, [0, 1, 2, 3]), (1, [0, 1, 2]), (3, [0, 1, 2, 3, 4])])
def test_levels_option_stops_early_or_paints_finer(levels, passes):
    net = _ConstantNet(torch.tensor([0.5, 0.5, 0.4, 0.3, 0.2]))
    res = paint(net, procedural_brushes(64), torch.rand(1, 3, 100, 80), PaintSettings(levels=levels),
                want_strokes=True)
    assert res.image.shape == (1, 3, 100, 80)
    assert [int(t[0, 0]) for t in res.strokes] == passes
    sizes = [float(t[:, 3].mean()) for t in res.strokes[:-1]]
    assert sizes == sorted(sizes, reverse=True), "each level paints smaller strokes"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped weights not trained yet")
def test_workflow_paints_with_the_shipped_default_weights(tmp_path):
    from PIL import Image

    from stylefarm.api import run_workflow

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray((_item(48, 64).image * 255).astype(np.uint8)).save(src / "grad.png")
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"version: 1\ninputs:\n  - dir: {src}\nsteps:\n  - use: paint_transformer\n"
                  f"    with: {{levels: auto, jitter: 4}}\noutput:\n  dir: {tmp_path / 'out'}\n"
                  "execution:\n  backend: local\n  device: cpu\n")
    run_workflow(wf)
    outs = list((tmp_path / "out").rglob("*.png"))
    assert len(outs) == 1
    with Image.open(outs[0]) as im:
        assert im.size == (64, 48)


def test_replicate_padding_keeps_dark_padding_strokes_off_a_wide_image():
    net = _ConstantNet(torch.tensor([0.5, 0.5, 0.9, 0.9, 0.0]))
    white = torch.ones(1, 3, 20, 64)
    zeros, rep = (paint(net, procedural_brushes(64), white, PaintSettings(pad=p)).image for p in ("zeros", "replicate"))
    assert zeros.mean() < 0.9, "official zero padding lends black to strokes near the edges"
    assert rep.mean() > zeros.mean() + 0.05


def test_mean_colour_option_averages_under_the_stroke():
    """Point sampling picks one texel of a checkerboard; `color: mean` gets its average."""
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float().expand(1, 3, 32, 32)
    net = _ConstantNet(torch.tensor([16.5 / 32, 16.5 / 32, 0.6, 0.6, 0.0]))  # centre on a texel
    center, mean = (paint(net, procedural_brushes(64), checker.clone(), PaintSettings(border=False, color=c),
                          want_strokes=True).strokes[0][0, 6:] for c in ("center", "mean"))
    assert torch.allclose(mean, torch.full((3,), 0.5), atol=0.05)
    assert not torch.allclose(center, mean, atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_painting_matches_cpu():
    net = build_painter({"state_dict": Painter(TINY).state_dict(), "config": TINY.to_dict()})
    img = torch.from_numpy(_item(70, 90).image).permute(2, 0, 1)[None]
    with torch.no_grad():
        cpu = paint(net, procedural_brushes(64), img, PaintSettings(color="mean")).image
        gpu = paint(net.cuda(), procedural_brushes(64).cuda(), img.cuda(), PaintSettings(color="mean")).image
    assert ((gpu.cpu() - cpu).abs() > 1e-3).float().mean() < 0.01


@pytest.fixture(scope="module")
def shipped_painter():
    from stylefarm.plugins.paint_transformer.loading import load_painter

    net, _ = load_painter(None)
    return net.eval()


def test_only_patches_that_can_reach_the_image_are_kept():
    from stylefarm.plugins.paint_transformer.paint import seen_patches

    masks = seen_patches(512, 5, True, (208, 56, 96, 400))  # a 96x400 image in its 512 px canvas
    assert masks[:3] == [None, None, None]  # coarse levels: every window reaches the image
    fine = masks[4].view(16, 16)  # 32 px cells, windows 64 px: rows 6..9 reach rows 208..304
    assert fine.any(1).nonzero().flatten().tolist() == list(range(5, 11))  # + the cells the border pass reads
    assert fine.any(0).nonzero().flatten().tolist() == list(range(0, 16))
    assert masks[5].shape == (17 * 17,) and masks[5].float().mean() < 0.4
    assert seen_patches(512, 5, True, (0, 0, 512, 512)) == [None] * 6  # a square image: all of them


@pytest.mark.parametrize("settings", [PaintSettings(), PaintSettings(color="mean", pad="replicate", jitter=5),
                                      PaintSettings(border_all_strokes=False, levels=4)])
def test_patches_that_cannot_reach_a_wide_image_are_skipped(shipped_painter, settings, monkeypatch):
    """Most patches of the fine levels cannot touch a 48x200 image in its square canvas and are
    neither predicted nor drawn; the painting is the full one up to the network's float
    rounding on smaller batches (as with `patch_batch`)."""
    from stylefarm.plugins.paint_transformer import paint as paint_mod

    torch.manual_seed(7)
    image = torch.rand(1, 3, 48, 200)
    with torch.inference_mode():
        skipped = paint(shipped_painter, shipped_brushes(), image, settings, want_strokes=True)
        monkeypatch.setattr(paint_mod, "SKIP_UNSEEN", False)
        full = paint(shipped_painter, shipped_brushes(), image, settings, want_strokes=True)
    assert skipped.image.shape == full.image.shape == image.shape
    assert ((skipped.image - full.image).abs() > 1e-4).float().mean().item() < 1e-3
    assert sum(len(t) for t in skipped.strokes) < sum(len(t) for t in full.strokes)  # off-image strokes dropped


def test_skipping_keeps_the_video_stroke_memory_exact(shipped_painter, monkeypatch):
    from stylefarm.plugins.paint_transformer import paint as paint_mod
    from stylefarm.plugins.paint_transformer.paint import StrokeMemory

    torch.manual_seed(8)
    frames = [torch.rand(1, 3, 48, 200)]
    frames.append(frames[0].clone())
    frames[1][..., :20, :40] = 0.5  # one corner changes: those patches are predicted again
    results = {}
    for skip in (True, False):
        monkeypatch.setattr(paint_mod, "SKIP_UNSEEN", skip)
        memory = StrokeMemory(threshold=0.01)
        with torch.inference_mode():
            results[skip] = [paint(shipped_painter, shipped_brushes(), f, PaintSettings(), memory=memory).image
                             for f in frames]
        assert memory.reused > 0
    for a, b in zip(results[True], results[False]):
        assert ((a - b).abs() > 1e-4).float().mean().item() < 1e-3
