"""StyleNAT: pure-torch neighbourhood attention against its definition, parity with the official
generator (shared fixture: new and legacy layouts, style mixing, intermediates), configs and
checkpoint layouts. Fixture: ../shared/reference/stylenat (README there: real NATTEN 0.17.5).
"""

from __future__ import annotations

import pytest
import torch

from stylefarm.plugins.stylenat import configs, ops
from stylefarm.plugins.stylenat.configs import CONFIGS, choose_config, expected_shapes, make_config, mismatch
from stylefarm.plugins.stylenat.loading import generator_state, shapes_of, to_new_layout
from stylefarm.plugins.stylenat.model import Generator

TOL = 1e-4


# --- neighbourhood attention --------------------------------------------------------------

NA_CASES = [  # (H, W, kernel, dilation): odd sizes (gather path), powers of two (tiled path)
    (7, 9, 3, 1), (11, 13, 5, 2), (17, 15, 3, 4), (9, 9, 7, 1), (13, 29, 3, 4),
    (8, 8, 7, 1), (16, 8, 3, 1), (16, 32, 7, 2), (32, 16, 3, 4), (16, 16, 5, 2),
]


def _qkv(h: int, w: int, heads: int = 2, dim: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, heads, h, w, dim, generator=gen, dtype=torch.float64) for _ in range(3)]


@pytest.mark.parametrize("h,w,kernel,dilation", NA_CASES)
def test_na_matches_brute_force_definition_with_bias_at_borders(h, w, kernel, dilation):
    q, k, v = _qkv(h, w)
    rpb = torch.randn(2, 2 * kernel - 1, 2 * kernel - 1, dtype=torch.float64)
    want = ops.na2d_reference(q, k, v, kernel, dilation, rpb)
    assert (ops.na2d_torch(q, k, v, kernel, dilation, rpb) - want).abs().max() < 1e-12
    assert (ops.na2d_gather(q, k, v, kernel, dilation, rpb, chunk_elements=300) - want).abs().max() < 1e-12


@pytest.mark.parametrize("h,w,kernel,dilation", [(16, 16, 7, 1), (32, 16, 3, 2), (9, 11, 3, 2)])
def test_na_without_bias_and_in_small_chunks_is_unchanged(h, w, kernel, dilation):
    q, k, v = _qkv(h, w, seed=1)
    want = ops.na2d_reference(q, k, v, kernel, dilation)
    got = ops.na2d_torch(q, k, v, kernel, dilation, chunk_elements=1000)
    assert (got - want).abs().max() < 1e-12


def test_na_window_is_shifted_inside_the_map_and_bias_follows_the_key_offset():
    keys, bias = ops.neighbourhood_index(9, 3, 2)
    assert keys[0].tolist() == [0, 2, 4]  # border: shifted right, not padded
    assert keys[4].tolist() == [2, 4, 6]  # interior: centred
    assert keys[8].tolist() == [4, 6, 8]  # border: shifted left
    assert keys[7].tolist() == [3, 5, 7]  # odd group has 4 members: shifted inside it
    assert bias[0].tolist() == [2, 3, 4]  # (key - query) / d + k - 1
    assert bias[8].tolist() == [0, 1, 2]


def test_na_float32_matches_float64_definition():
    q, k, v = _qkv(16, 16, seed=2)
    rpb = torch.randn(2, 13, 13, dtype=torch.float64)
    want = ops.na2d_reference(q, k, v, 7, 2, rpb)
    got = ops.na2d_torch(q.float(), k.float(), v.float(), 7, 2, rpb.float())
    assert (got.double() - want).abs().max() < 1e-5


def _largest_temporary(side: int, dilation: int) -> int:
    """Elements of the biggest tensor any op creates inside one NA call (traced, not timed)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        most = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    Largest.most = max(Largest.most, t.numel())
            return out

    q, k, v = (torch.randn(1, 1, side, side, 8) for _ in range(3))
    with Largest():
        ops.na2d_torch(q, k, v, 7, dilation, torch.randn(1, 13, 13), chunk_elements=1 << 16)
    return Largest.most


@pytest.mark.parametrize("dilation", [1, 4])
def test_na_memory_grows_linearly_with_pixels_never_hw_squared(dilation):
    small, large = _largest_temporary(64, dilation), _largest_temporary(128, dilation)
    assert large < (128 * 128) ** 2 / 100  # no (HW x HW) matrix
    assert large <= 4.5 * small  # 4x the pixels -> ~4x the memory (quadratic would be 16x)


def test_na_rejects_a_map_smaller_than_kernel_times_dilation():
    q, k, v = _qkv(8, 8)
    with pytest.raises(ValueError, match="kernel \\* dilation"):
        ops.na2d_torch(q, k, v, 3, 4)


@pytest.mark.skipif(not ops.natten_available(), reason="NATTEN (natten.functional.na2d_qk/na2d_av) not installed")
@pytest.mark.parametrize("h,w,kernel,dilation", [(9, 11, 3, 2), (16, 16, 7, 2), (32, 32, 7, 4)])
def test_natten_and_pure_torch_agree(h, w, kernel, dilation):
    q, k, v = (t.float() for t in _qkv(h, w))
    rpb = torch.randn(2, 2 * kernel - 1, 2 * kernel - 1)
    got = ops.na2d(q, k, v, kernel, dilation, rpb, backend="natten")
    assert (got - ops.na2d_torch(q, k, v, kernel, dilation, rpb)).abs().max() < 1e-5


# --- official fixture ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture(shared) -> dict:
    path = shared / "reference" / "stylenat" / "fixture.pt"
    if not path.is_file():
        pytest.skip(f"StyleNAT fixture not found at {path}")
    return torch.load(path, weights_only=True)


def fixture_config(fixture: dict, name: str) -> configs.GeneratorConfig:
    entry = fixture["configs"][name]
    return make_config({**entry["generator_args"], "size": entry["size"]}, name)


def load(fixture: dict, name: str, state: str | None = None) -> Generator:
    cfg = fixture_config(fixture, name)
    model = Generator(cfg).eval()
    model.load_state_dict(to_new_layout(fixture["state_dicts"][state or name], cfg), strict=True)
    model.set_backend("torch")
    return model


def err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def main_run(fixture, one_torch_thread):
    """One forward of the `main` model with the fixture's intermediates captured by hooks."""
    model = load(fixture, "main")
    got: dict[str, torch.Tensor] = {}
    hooks = {"w": model.style, "stage0_block0": model.layers[0].blocks[0], "stage0_out": model.layers[0],
             "stage1_block0": model.layers[1].blocks[0], "stage2_block0": model.layers[2].blocks[0],
             **{f"skip{i}": rgb for i, rgb in enumerate(model.to_rgbs)}}
    for name, module in hooks.items():
        module.register_forward_hook(lambda m, i, o, name=name: got.__setitem__(name, o))
    with torch.inference_mode():
        got["image"], got["latent"] = model(fixture["inputs"]["z_main"])
    return model, got


def test_main_image_latent_and_intermediates_match_official(fixture, main_run):
    _, got = main_run
    want = fixture["outputs"]["main"]
    assert err(got["w"], want["w"]) < 1e-5
    assert err(got["latent"], want["latent"]) < 1e-5
    for name in ("stage0_block0", "stage0_out", "stage1_block0", "stage2_block0", "skip0", "skip1", "skip2",
                 "skip3", "skip4", "image"):
        assert err(got[name], want[name]) <= TOL, name
    assert err(ops.unnormalize(got["image"]), want["image_unnorm"]) <= TOL


def test_official_truncation_arguments_are_ignored_so_default_output_is_official(fixture, main_run):
    _, got = main_run
    assert err(got["image"], fixture["outputs"]["main_truncation_args"]["image"]) <= TOL


def test_style_mixing_uses_latent_2i_plus_j_in_block_j_of_stage_i(fixture, main_run, one_torch_thread):
    model, _ = main_run
    with torch.inference_mode():
        image = model.synthesis_network(fixture["inputs"]["ws_mix_main"][:1])
    assert err(image, fixture["outputs"]["main_style_mix"]["image"][:1]) <= TOL


def test_legacy_checkpoint_layout_matches_official(fixture, one_torch_thread):
    model = load(fixture, "main", "main_legacy")
    with torch.inference_mode():
        image, latent = model(fixture["inputs"]["z_main"][1:])
    want = fixture["outputs"]["main_legacy"]
    assert err(image, want["image"][1:]) <= TOL
    assert err(latent, want["latent"][1:]) < 1e-5


def test_exotic_config_uneven_heads_and_mixed_kernels_match_official(fixture, one_torch_thread):
    model = load(fixture, "exotic")
    assert [h for _, _, h in model.cfg.groups(3)] == [5, 5, 6]
    with torch.inference_mode():
        image, _ = model(fixture["inputs"]["z_exotic"][:1])
    assert err(image, fixture["outputs"]["exotic"]["image"][:1]) <= TOL


def test_seed_latents_follow_the_official_inference_recipe(fixture):
    assert torch.equal(ops.seed_latents(0, 2, 512), fixture["inputs"]["z_main"])
    assert torch.equal(ops.seed_latents(1, 2, 64), fixture["inputs"]["z_exotic"])
    before = torch.random.get_rng_state()
    ops.seed_latents(5, 1, 8)
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG is left alone


# --- configs and checkpoint layouts --------------------------------------------------------

def test_released_ffhq256_config_has_the_official_keys_and_parameter_count():
    cfg = CONFIGS["ffhq256"]
    shapes = expected_shapes(cfg)
    assert len(shapes) == 268
    model = Generator(cfg)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes
    assert sum(p.numel() for p in model.parameters()) == 48_921_000
    assert cfg.n_latent == 14 and [cfg.heads(s) for s in range(7)] == [16, 16, 16, 16, 16, 8, 4]


def test_ffhq1024_config_parameter_count_matches_the_release():
    shapes = expected_shapes(CONFIGS["ffhq1024"])
    params = sum(torch.Size(s).numel() for k, s in shapes.items()
                 if "relative_position_index" not in k and "kernel" not in k and "_float_tensor" not in k)
    assert round(params / 1e6, 2) == 49.45  # the README's 49.45 M


def test_config_is_inferred_from_checkpoint_shapes_in_both_layouts(fixture):
    cfg = fixture_config(fixture, "main")
    for state in ("main", "main_legacy"):
        got = choose_config(shapes_of(fixture["state_dicts"][state]), None)
        assert expected_shapes(got) == expected_shapes(cfg)
        assert got.dilations == cfg.dilations[:cfg.stages] and got.mlp_ratio == 2 and got.channel_multiplier == 1


def test_checkpoint_of_other_config_names_mismatched_keys(fixture):
    with pytest.raises(ValueError) as info:
        choose_config(shapes_of(fixture["state_dicts"]["main"]), CONFIGS["ffhq256"])
    message = str(info.value)
    assert "\n" not in message and "ffhq256" in message
    assert "layers.0.blocks.0.mlp.fc1.weight (1024, 512) != (2048, 512)" in message
    assert "looks like size=64, channel_multiplier=1, mlp_ratio=2.0" in message


def test_checkpoint_fitting_no_config_says_which_keys_differ(fixture):
    shapes = shapes_of(fixture["state_dicts"]["exotic"])  # 3 head groups at 32 px: dilations unknowable
    with pytest.raises(ValueError, match="dilations"):
        choose_config(shapes, None)
    broken = dict(shapes_of(fixture["state_dicts"]["main"]))
    broken["input.input"] = (1, 256, 4, 4)
    assert mismatch(broken, fixture_config(fixture, "main")) == ["input.input (1, 256, 4, 4) != (1, 512, 4, 4)"]


def test_legacy_single_group_stage_concatenates_the_two_halves(fixture):
    cfg = fixture_config(fixture, "main")
    legacy = fixture["state_dicts"]["main_legacy"]
    new = to_new_layout(legacy, cfg)
    key = "layers.1.blocks.0.attn."
    assert torch.equal(new[key + "rpb.0"], torch.cat([legacy[key + "rpb0"], legacy[key + "rpb1"]]))
    assert torch.equal(new["layers.2.blocks.1.attn.rpb.1"], legacy["layers.2.blocks.1.attn.rpb1"])
    assert set(new) == set(fixture["state_dicts"]["main"])


def test_checkpoint_layouts_are_found_by_key_name(fixture):
    state = fixture["state_dicts"]["main"]
    assert generator_state({"state_dicts": {"g": {}, "g_ema": state}}) is state
    assert generator_state({"g": {}, "g_ema": state}) is state
    assert generator_state(state) is state
    with pytest.raises(ValueError, match="not a StyleNAT checkpoint"):
        generator_state({"model": {}})
