"""CUT / QS-Attn: generator and sampler parity with the official code, the `cut` step, PatchNCE."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylefarm.errors import WeightsError  # noqa: E402
from stylefarm.plugins.cut import ops  # noqa: E402
from stylefarm.plugins.cut.model import (  # noqa: E402
    PatchSampleF,
    ResnetGenerator,
    fitting_config,
    generator_shapes,
)
from stylefarm.plugins.cut.step import CUTOptions, CUTStep  # noqa: E402

SMALL = {"ngf": 16, "n_blocks": 2}  # the fixture's config


@pytest.fixture(scope="module")
def cut_fixture(shared):
    return torch.load(shared / "reference" / "cut" / "fixture.pt", weights_only=True)


@pytest.fixture(scope="module")
def qs_fixture(shared):
    return torch.load(shared / "reference" / "qsattn" / "fixture.pt", weights_only=True)


@pytest.fixture
def small_g_file(cut_fixture, tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save(cut_fixture["state_dict"], path)
    return path


def test_generator_matches_official_tanh_output_and_nce_features(cut_fixture, one_torch_thread):
    net = ResnetGenerator(**SMALL).eval()
    net.load_state_dict(cut_fixture["state_dict"], strict=True)
    with torch.no_grad():
        for size in ("64x64", "48x80"):
            y = net(cut_fixture["inputs"][f"x_{size}"])
            assert (y - cut_fixture["outputs"][f"y_{size}"]).abs().max() <= 1e-5
        feats = net.encode(cut_fixture["inputs"]["x_64x64"], [0, 4, 8, 12, 16])
    for layer, feat in zip([0, 4, 8, 12, 16], feats):
        assert (feat - cut_fixture["outputs"][f"feat_layer{layer}_64x64"]).abs().max() <= 1e-5


def test_released_config_has_the_official_keys_and_parameter_count():
    shapes = generator_shapes(ngf=64, n_blocks=9, norm="instance", no_antialias=False, no_antialias_up=False)
    assert shapes["model.7.filt"] == (128, 1, 3, 3) and shapes["model.25.filt"] == (128, 1, 4, 4)
    assert shapes["model.20.conv_block.5.weight"] == (256, 256, 3, 3) and shapes["model.30.bias"] == (3,)
    filt = sum(math.prod(s) for k, s in shapes.items() if k.endswith("filt"))
    assert (sum(math.prod(s) for s in shapes.values()) - filt, filt) == (11378179, 9600)


def test_fitting_config_recognises_other_released_layouts():
    for config in ({"ngf": 32, "n_blocks": 6, "norm": "instance", "no_antialias": True, "no_antialias_up": True},
                   {"ngf": 8, "n_blocks": 3, "norm": "batch", "no_antialias": False, "no_antialias_up": True}):
        state = ResnetGenerator(**config).state_dict()
        assert fitting_config(state) == config


@pytest.mark.parametrize("mode", ["global", "local", "local_global"])
def test_qs_sampler_matches_official_pools_attention_and_ids(qs_fixture, mode, one_torch_thread):
    inp, out = qs_fixture["inputs"], qs_fixture["outputs"]
    net = PatchSampleF([3, 32, 64, 64, 32], qs_mode=mode)
    net.load_state_dict(qs_fixture["state_dict"][f"netF_{mode}"], strict=True)
    given = [inp["patch_ids_0"], inp["patch_ids_1"], inp["patch_ids_2"], None, None]
    with torch.no_grad():
        k_pool, selection = net([inp[f"feat_k_{i}"] for i in range(5)], 16, given)
        q_pool, _ = net([inp[f"feat_q_{i}"] for i in range(5)], 16, selection)
    for i in range(5):
        assert (k_pool[i] - out[f"{mode}_k_pool_{i}"]).abs().max() <= 1e-5
        assert (q_pool[i] - out[f"{mode}_q_pool_{i}"]).abs().max() <= 1e-5
    for i in (3, 4):
        if mode == "local":
            assert torch.equal(selection[i][0], out[f"local_selected_ids_{i}"])
            assert (selection[i][1] - out[f"local_attn_qs_{i}"]).abs().max() <= 1e-5
        else:
            assert (selection[i] - out[f"{mode}_attn_qs_{i}"]).abs().max() <= 1e-5


def test_qs_selection_keeps_the_lowest_entropy_rows_of_a_handmade_attention():
    uniform, peaked, half = [0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]
    skewed = [0.7, 0.1, 0.1, 0.1]
    attn = torch.tensor([[uniform, half, peaked, skewed, uniform]])
    # entropies: ln 4 = 1.39, ln 2 = 0.69, 0, 0.94 (0.7 ln 0.7 + 3 x 0.1 ln 0.1), ln 4
    assert ops.lowest_entropy_rows(attn, 3).tolist() == [[2, 1, 3]]
    entropy = ops.attention_entropy(attn)[0]
    assert entropy[2] == 0 and abs(entropy[0] - math.log(4)) < 1e-6 and abs(entropy[1] - math.log(2)) < 1e-6


def test_qs_routes_source_and_translated_features_with_the_same_rows():
    gen = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(1, 8, 6, 6, generator=gen), torch.randn(1, 8, 6, 6, generator=gen)
    for mode in ("global", "local_global"):
        _, rows = ops.qs_sample(src, 5, mode)
        routed, same = ops.qs_sample(tgt, 5, mode, rows)
        flat = tgt.permute(0, 2, 3, 1).flatten(1, 2)
        assert same is rows and torch.allclose(routed, (rows @ flat)[0], atol=1e-6)
        full = ops.global_attention(src.permute(0, 2, 3, 1).flatten(1, 2))[0]
        assert all(any(torch.allclose(r, f) for f in full) for r in rows[0])  # rows of the global matrix


def test_patch_nce_matches_a_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    t = 0.07
    loss = ops.patch_nce_loss(q, k, batch_size=1, nce_t=t)
    # row i: logits [q_i.k_i, q_i.k_0 (or -10 on the diagonal), q_i.k_1 ...] / T, target = positive
    rows = [[0.8, -10.0, 0.6], [0.8, 0.6, -10.0]]
    expected = [-math.log(math.exp(r[0] / t) / sum(math.exp(v / t) for v in r)) for r in rows]
    assert torch.allclose(loss, torch.tensor(expected), atol=1e-5)


def test_checkpoint_of_other_config_names_mismatched_keys_and_the_fitting_config(small_g_file):
    step = CUTStep(CUTOptions(weights={"G": str(small_g_file)}))
    with pytest.raises(WeightsError) as err:
        step.setup("cpu")
    message = str(err.value)
    assert "\n" not in message and "model.1.weight" in message and "ngf: 16, n_blocks: 2" in message


def test_step_reproduces_the_official_output_on_fixture_input(cut_fixture, small_g_file, one_torch_thread):
    step = CUTStep(CUTOptions(weights=str(small_g_file), **SMALL))
    step.setup("cpu")
    x = cut_fixture["inputs"]["x_48x80"]
    image = ((x[0].permute(1, 2, 0) + 1) / 2).numpy()
    out = step.translate([image])[0]
    ref = ((cut_fixture["outputs"]["y_48x80"][0].permute(1, 2, 0) + 1) / 2).numpy()
    assert np.abs(out - ref).max() <= 1e-5


def _random_step(**options) -> CUTStep:
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        step = CUTStep(CUTOptions(random_weights=True, ngf=8, n_blocks=1, **options))
        step.setup("cpu")
    return step


def _item(h: int, w: int, seed: int = 0):
    from stylefarm.item import Item

    image = np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)
    image.setflags(write=False)  # the host hands read-only arrays
    return Item(source=f"img{seed}.png", index=0, image=image)


@pytest.mark.parametrize("options", [{}, {"keep_size": True}, {"preprocess": "resize_and_crop", "load_size": 64,
                                                                "crop_size": 48}, {"preprocess": "scale_width"}])
def test_output_has_the_input_size_in_every_size_mode(options, one_torch_thread):
    step = _random_step(**options)
    (out,) = step.process([_item(50, 70)])
    assert out.image.shape == (50, 70, 3) and out.image.dtype == np.float32
    assert np.isfinite(out.image).all() and out.image.min() >= 0 and out.image.max() <= 1


def test_keep_size_runs_on_the_pixels_themselves_not_a_resampled_copy(one_torch_thread):
    step = _random_step(keep_size=True)
    item = _item(48, 64)
    (out,) = step.process([item])
    assert np.array_equal(out.image, step.translate([item.image])[0])  # already a multiple of 4: no padding


def test_batch_of_frames_equals_frames_one_by_one(one_torch_thread):
    step = _random_step()
    items = [_item(32, 40, seed=s) for s in range(3)] + [_item(36, 36, seed=9)]
    together = step.process(items)
    for item, out in zip(items, together):
        assert np.allclose(out.image, step.process([item])[0].image, atol=1e-5)


def test_tiled_frame_is_finite_and_matches_one_pass_inside_a_single_tile(one_torch_thread):
    whole = _random_step()
    tiled = _random_step(tile=64, tile_overlap=16)
    small, big = _item(40, 60), _item(96, 136)
    assert np.array_equal(tiled.process([small])[0].image, whole.process([small])[0].image)
    out = tiled.process([big])[0].image
    assert out.shape == (96, 136, 3) and np.isfinite(out).all()


def test_workflow_png_matches_official_tensor2im_within_one_level(cut_fixture, small_g_file, workflow, tmp_path,
                                                                   one_torch_thread):
    """16-bit PNG of the fixture's input (error 1e-5) -> `stylefarm run` -> 8-bit PNG vs tensor2im(official y)."""
    import cv2

    from stylefarm.api import run_workflow
    from stylefarm.images import read_image

    x = cut_fixture["inputs"]["x_64x64"][0].permute(1, 2, 0).numpy()
    pixels = np.round((x + 1) / 2 * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "frame.png"), pixels[..., ::-1])
    wf = workflow(f"""
version: 1
inputs: [{{path: frame.png}}]
steps:
  - use: cut
    with: {{weights: {{G: {small_g_file}}}, ngf: 16, n_blocks: 2}}
output: {{dir: out, pattern: "{{input.stem}}.png", bit_depth: 8}}
execution: {{backend: local, device: cpu}}
""")
    report = run_workflow(wf)
    assert report["counts"]["failed"] == 0
    ours, _, depth = read_image(tmp_path / "out" / "frame.png")
    official = ops.tensor2im(cut_fixture["outputs"]["y_64x64"])
    assert depth == 8 and np.abs(np.round(ours * 255).astype(int) - official.astype(int)).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_float16_on_cuda_stays_close_to_float32(cut_fixture, small_g_file):
    image = ((cut_fixture["inputs"]["x_64x64"][0].permute(1, 2, 0) + 1) / 2).numpy()
    outs = []
    for precision in ("float32", "float16"):
        step = CUTStep(CUTOptions(weights=str(small_g_file), precision=precision, **SMALL))
        step.setup("cuda")
        outs.append(step.translate([image])[0])
    assert np.abs(outs[0] - outs[1]).max() < 2e-2


def test_sizes_off_the_4_grid_are_rounded_and_resampled_like_the_official_loader():
    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    # __make_power_2(base=4): int(round(side / 4) * 4), Python's round: 50 / 4 = 12.5 -> 12 -> 48
    official = np.asarray(Image.fromarray(pixels).resize((72, 48), Image.BICUBIC))
    ours = ops.official_preprocess(pixels.astype(np.float32) / 255, "none", 256, 256, eight_bit=True)
    assert ours.shape == (48, 72, 3) and np.array_equal(np.rint(ours * 255).astype(np.uint8), official)
    assert ops.multiple_of_4(70, 49) == (72, 48) and ops.multiple_of_4(64, 64) == (64, 64)


def test_shipped_demo_model_loads_by_name_and_moves_colours_towards_its_domain(one_torch_thread):
    """cut/demo (fp16, in the package) = photo -> cin26 style 19 (blue / yellow); see docs/translate.md."""
    from pathlib import Path

    from stylefarm.images import read_image

    photo = Path(__file__).resolve().parent.parent / "workflows" / "media" / "chelsea.jpg"
    image = ops.pil_resize(read_image(photo)[0], 96, 64, eight_bit=True)
    step = CUTStep(CUTOptions(model="cut/demo", ngf=16, n_blocks=6))
    step.setup("cpu")
    out = step.translate([image])[0]
    blue_minus_red = lambda im: float(im[..., 2].mean() - im[..., 0].mean())  # noqa: E731
    assert out.shape == image.shape and blue_minus_red(out) > blue_minus_red(image) + 0.1


@pytest.mark.parametrize("size, groups", [(128, [3]), (256, [1, 1, 1])])
def test_cpu_runs_one_frame_a_pass_from_256_px(size, groups):
    """One frame a pass is faster on CPU from 256 px (1.17-1.22x there); the pixels are the same."""
    step = _random_step(preprocess="none")
    items = [_item(size, size, seed) for seed in range(3)]
    seen, real = [], step.translate
    step.translate = lambda images: seen.append(len(images)) or real(images)
    out = step.process(items)
    assert seen == groups
    together = real([step._prepare(it) for it in items])
    assert all(np.abs(o.image - t).max() < 1e-5 for o, t in zip(out, together))
