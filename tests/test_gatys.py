"""The `gatys` step: optimisation, masks, colour, pyramid, coarse/fine, video, previews, errors.

All runs use the random-weight VGG (test-only mode) on images of a few dozen pixels, with
the network cut at relu2_1 where a test does not need deeper layers, so the file stays fast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from stylefarm.errors import StylefarmError
from stylefarm.item import Item
from stylefarm.plugins import _controls as C
from stylefarm.plugins.gatys import ops, transfer
from stylefarm.plugins.gatys.step import GatysOptions, GatysStep

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:.*RANDOM WEIGHTS")]
SHALLOW = {"style_layers": ["relu1_1", "relu2_1"], "content_layers": ["relu2_1"]}


def _texture(colour, size=(32, 32)) -> np.ndarray:
    """The same noise for the same colour and size, whichever tests ran before (no shared generator)."""
    seed = [round(c * 255) for c in colour] + list(size)
    noise = np.random.default_rng(seed).random((*size, 1))
    return np.clip(np.asarray(colour) * (0.5 + 0.5 * noise), 0, 1).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    """Write float images as PNGs, return their paths."""
    import imageio.v3 as iio

    def write(name: str, image: np.ndarray) -> str:
        path = tmp_path / f"{name}.png"
        iio.imwrite(path, (np.clip(image, 0, 1) * 255).round().astype(np.uint8))
        return str(path)

    return write


@pytest.fixture
def two_styles(files):
    return files("red", _texture([0.9, 0.15, 0.1])), files("blue", _texture([0.1, 0.2, 0.9]))


def _run(options: dict, image: np.ndarray, source: str = "a.png", index: int = 0) -> Item:
    step = GatysStep(GatysOptions(random_weights=True, **options))
    step.setup("cpu")
    return step.process([Item(source=source, index=index, image=image)])[0]


def _region_means(image: np.ndarray, split: int) -> tuple[np.ndarray, np.ndarray]:
    return image[:, :split].reshape(-1, 3).mean(0), image[:, split:].reshape(-1, 3).mean(0)


def test_short_optimisation_lowers_the_loss_with_lbfgs_and_adam(two_styles):
    for optimizer, iterations in (("lbfgs", 10), ("adam", 15)):
        step = GatysStep(GatysOptions(style=two_styles[0], random_weights=True, optimizer=optimizer,
                                      iterations=iterations, content_size=24, **SHALLOW))
        step.setup("cpu")
        content = transfer.to_tensor(_texture([0.5, 0.5, 0.5], (24, 24)), "cpu")
        objective = transfer.build_objective(step, _texture([0.5, 0.5, 0.5], (24, 24)), content, 0)
        start = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
        losses: list[float] = []
        ops.optimize(objective, start, iterations, optimizer, step.settings.learning_rate,
                     lambda i, loss, parts, x, seen=losses: seen.append(loss))
        assert len(losses) >= iterations and losses[-1] < 0.5 * losses[0], optimizer


def test_lbfgs_never_stops_early_even_at_the_optimum(two_styles):
    step = GatysStep(GatysOptions(style=two_styles[0], random_weights=True, **SHALLOW))
    step.setup("cpu")
    image = _texture([0.9, 0.15, 0.1], (24, 24))
    c = transfer.to_tensor(image, "cpu")
    objective = ops.Objective(step.net, {"relu2_1": step.net.tapped(c, ("relu2_1",))["relu2_1"]}, [], 1.0, 0.0, 0.0)
    calls = []
    ops.optimize(objective, c, 12, "lbfgs", 1.0, lambda i, loss, parts, x: calls.append(loss))
    assert len(calls) == 12 and calls[0] == pytest.approx(0.0, abs=1e-12)


def test_a_mask_confines_each_styles_statistics_to_its_region(two_styles, files):
    left = np.zeros((32, 48, 3), np.float32)
    left[:, :24] = 1
    opts = {"style": list(two_styles), "iterations": 20, "content_size": 32, "content_weight": 0, "tv_weight": 0,
            "init": "random", "seed": 0, **SHALLOW}
    masked = _run({**opts, "mask": [files("left", left), files("right", 1 - left)]},
                  np.full((32, 48, 3), 0.5, np.float32)).image
    red, blue = _texture([0.9, 0.15, 0.1]).reshape(-1, 3).mean(0), _texture([0.1, 0.2, 0.9]).reshape(-1, 3).mean(0)
    mean_left, mean_right = _region_means(masked, 24)
    assert np.linalg.norm(mean_left - red) < np.linalg.norm(mean_left - blue)
    assert np.linalg.norm(mean_right - blue) < np.linalg.norm(mean_right - red)
    # 20 iterations on random weights: the red-blue margin was 0.17-0.42 over 8 noise draws
    assert mean_left[0] - mean_left[2] > 0.1 and mean_right[2] - mean_right[0] > 0.1
    blended = _run(opts, np.full((32, 48, 3), 0.5, np.float32)).image  # control: no masks, no regions
    blend_left, blend_right = _region_means(blended, 24)
    assert np.abs(blend_left - blend_right).max() < 0.1


def _regions(two_styles, files, left, right, table) -> GatysOptions:
    """Options with a 48x32 region map: colour `left` on the left half, `right` on the right."""
    region = np.zeros((32, 48, 3), np.float32)
    region[:, :24], region[:, 24:] = left, right
    return GatysOptions(style=list(two_styles), random_weights=True, region_map=files("map", region),
                        region_styles=table)


def test_region_map_and_colour_table_give_the_same_masks_as_mask_files(two_styles, files):
    opts = _regions(two_styles, files, [1, 1, 0], [0, 1, 1], {"#ffff00": 0, "0,255,255": 1})
    step = GatysStep(opts)
    step.setup("cpu")
    masks = transfer.content_masks(step, (32, 48))
    assert masks[0][:, :24].all() and not masks[0][:, 24:].any() and masks[1][:, 24:].all()


def test_a_region_colour_the_map_does_not_hold_is_an_error_naming_the_maps_colours(two_styles, files):
    """The style of a colour that matched no pixel got no region, silently: the loss did not move."""
    from stylefarm.errors import InputError

    opts = _regions(two_styles, files, [1, 0, 0], [0, 1, 0], {"#ff0000": 0, "#0000ff": 1})
    with pytest.raises(InputError, match=r"no pixel within region_tolerance 0.1 of #0000ff \(region_styles\); its "
                                         r"main colours: #00ff00 \(50%\), #ff0000 \(50%\)"):
        GatysStep(opts).setup("cpu")


def test_region_weights_scale_each_styles_term(two_styles, files):
    half = np.zeros((16, 16, 3), np.float32)
    half[:, :8] = 1
    step = GatysStep(GatysOptions(style=list(two_styles), random_weights=True, region_weights=[2.0, 0.5],
                                  mask=[files("l", half), files("r", 1 - half)], **SHALLOW))
    step.setup("cpu")
    terms = transfer.style_terms(step, half, (16, 16))
    assert [t.weight for t in terms] == [2.0, 0.5] and all(t.guides for t in terms)


def test_luminance_preservation_keeps_the_contents_chroma_in_yiq(two_styles):
    content = np.clip(_texture([0.3, 0.6, 0.4], (24, 24)) + 0.2, 0, 1)
    out = _run({"style": two_styles[0], "iterations": 8, "content_size": 24, "preserve_color": True,
                "color_method": "luminance", **SHALLOW}, content).image
    yiq_out, yiq_c = C.rgb_to_yiq(out), C.rgb_to_yiq(content)
    unclipped = (out > 0.002).all(-1) & (out < 0.998).all(-1)
    assert unclipped.mean() > 0.8
    assert np.abs(yiq_out[unclipped, 1:] - yiq_c[unclipped, 1:]).max() < 0.01


def test_match_recolours_the_style_image_to_the_content_before_its_statistics(two_styles, monkeypatch):
    seen = []
    real = C.match_color
    monkeypatch.setattr(C, "match_color", lambda s, c, mode: seen.append(mode) or real(s, c, mode))
    _run({"style": two_styles[0], "iterations": 2, "content_size": 24, "preserve_color": True,
          "color_method": "match", "match_mode": "chol", **SHALLOW}, _texture([0.3, 0.6, 0.4], (24, 24)))
    assert seen == ["chol"]


def test_pyramid_levels_run_in_order_each_from_the_upsampled_previous_result(two_styles, monkeypatch):
    calls = []
    real = ops.optimize

    def spy(objective, init, iterations, *args):
        result = real(objective, init, iterations, *args)
        calls.append((tuple(init.shape[-2:]), iterations, init.clone(), result.clone()))
        return result

    monkeypatch.setattr(transfer, "optimize", spy)
    out = _run({"style": two_styles[0], "levels": [12, 24, 36], "level_iterations": [3, 2, 1], "init": "content",
                **SHALLOW}, _texture([0.4, 0.4, 0.4], (20, 30)))
    assert [c[0] for c in calls] == [(12, 18), (24, 36), (36, 54)] and [c[1] for c in calls] == [3, 2, 1]
    for (_, _, _, previous), (size, _, init, _) in zip(calls, calls[1:]):
        assert torch.allclose(init, ops.upsample(previous, size))
    assert out.image.shape == (36, 54, 3) and out.meta["gatys"]["levels"][-1] == [36, 54]


def test_fine_layers_take_their_statistics_from_the_fine_style(two_styles):
    opts = GatysOptions(style=two_styles[0], fine_style=two_styles[1], fine_layers=["relu1_1"], random_weights=True,
                        **SHALLOW)
    step = GatysStep(opts)
    step.setup("cpu")
    content = _texture([0.5, 0.5, 0.5], (32, 32))
    (term,) = transfer.style_terms(step, content, (32, 32))
    coarse = transfer.style_image_stats(step, 0, step.images["style"][0], content, (32, 32))
    fine = transfer.style_image_stats(step, -1, step.images["fine_style"], content, (32, 32))
    assert torch.equal(term.targets["relu1_1"], fine["relu1_1"])
    assert torch.equal(term.targets["relu2_1"], coarse["relu2_1"])
    assert not torch.allclose(coarse["relu1_1"], fine["relu1_1"])


def test_style_weights_blend_the_gram_targets(two_styles):
    step = GatysStep(GatysOptions(style=list(two_styles), style_weights=[3, 1], random_weights=True, **SHALLOW))
    step.setup("cpu")
    content = _texture([0.5, 0.5, 0.5], (32, 32))
    (term,) = transfer.style_terms(step, content, (32, 32))
    a, b = (transfer.style_image_stats(step, i, step.images["style"][i], content, (32, 32)) for i in (0, 1))
    assert torch.allclose(term.targets["relu2_1"], 0.75 * a["relu2_1"] + 0.25 * b["relu2_1"])


def test_gatys_preset_uses_inverse_square_channel_layer_weights_and_hw_gram(two_styles):
    step = GatysStep(GatysOptions(style=two_styles[0], preset="gatys", random_weights=True, **SHALLOW))
    step.setup("cpu")
    content = _texture([0.5, 0.5, 0.5], (16, 16))
    objective = transfer.build_objective(step, content, transfer.to_tensor(content, "cpu"), 0)
    assert objective.norm == "hw" and objective.style_layer_weights == {"relu1_1": 1e3 / 64 ** 2,
                                                                        "relu2_1": 1e3 / 128 ** 2}
    assert step.settings.iterations == 500 and step.settings.init == "content"


def test_video_frames_start_from_the_previous_result_only_when_asked(two_styles, monkeypatch):
    assert not GatysStep.is_temporal(GatysOptions(style=two_styles[0]))
    opts = GatysOptions(style=two_styles[0], init_from_previous=True, iterations=2, content_size=16,
                        random_weights=True, init="content", **SHALLOW)
    assert GatysStep.is_temporal(opts)
    starts, real = [], ops.optimize
    monkeypatch.setattr(transfer, "optimize", lambda o, init, *a: starts.append(init.clone()) or real(o, init, *a))
    step = GatysStep(opts)
    step.setup("cpu")
    frames = [_texture([0.5, 0.4, 0.3], (16, 16)) for _ in range(2)]
    first = step.process([Item(source="v.mp4", index=0, image=frames[0])])[0]
    step.process([Item(source="v.mp4", index=1, image=frames[1])])
    step.process([Item(source="other.mp4", index=0, image=frames[1])])
    assert np.allclose(starts[1][0].permute(1, 2, 0).numpy(), first.image, atol=1e-6)
    assert np.allclose(starts[2][0].permute(1, 2, 0).numpy(), frames[1], atol=1e-6)  # new source: own init


def test_preview_frames_every_k_iterations_and_progress_logs(two_styles, tmp_path, caplog):
    previews = tmp_path / "previews"
    with caplog.at_level("INFO", logger="stylefarm.gatys"):
        _run({"style": two_styles[0], "iterations": 6, "save_iter": 3, "print_iter": 2, "preview_dir": str(previews),
              "content_size": 16, **SHALLOW}, _texture([0.5, 0.5, 0.5], (16, 16)), source="shot.png")
    assert sorted(p.name for p in previews.iterdir()) == ["shot.00000.level0.iter00003.png",
                                                          "shot.00000.level0.iter00006.png"]
    assert len([r for r in caplog.records if "iteration" in r.getMessage()]) == 3


def test_random_init_is_reproducible_from_the_seed(two_styles):
    opts = {"style": two_styles[0], "iterations": 0, "content_size": 16, "init": "random", **SHALLOW}
    image = _texture([0.5, 0.5, 0.5], (16, 16))
    a, b, c = (_run({**opts, "seed": s}, image).image for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_output_is_float32_in_range_with_meta(two_styles):
    out = _run({"style": two_styles[0], "iterations": 3, "content_size": 20, "stat": "mean_std", **SHALLOW},
               _texture([0.5, 0.5, 0.5], (20, 30)))
    assert out.image.dtype == np.float32 and out.image.shape == (20, 30, 3)
    assert 0 <= out.image.min() and out.image.max() <= 1 and np.isfinite(out.image).all()
    assert out.meta["gatys"]["random_weights"] is True


@pytest.mark.parametrize("options,message", [
    ({"mask": ["a.png"]}, "mask: 1 given for 2 styles"),
    ({"region_map": "m.png", "region_styles": {"#ff0000": 2}}, "indices 0..1"),
    ({"region_map": "m.png", "region_styles": {"#ff00": 0}}, "write '#rrggbb'"),
    ({"region_map": "m.png"}, "region_map and region_styles go together"),
    ({"levels": [512, 256]}, "coarse to fine"),
    ({"levels": [8, 16], "level_iterations": [1]}, "level_iterations: give 2"),
    ({"save_iter": 5}, "save_iter needs preview_dir"),
    ({"init": "image"}, "init: image and init_image go together"),
    ({"mask": ["a.png", "b.png"], "style_weights": [1, 1]}, "use region_weights"),
    ({"style_layers": ["relu1_1"], "style_layer_weights": [1, 2]}, "2 weights for 1 style_layers"),
    ({"region_weights": [1, 2]}, "region_weights need mask or region_map"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValidationError, match=message) as err:
        GatysOptions(style=["s1.png", "s2.png"], **options)
    assert any(message in line for line in str(err.value).splitlines())  # the cause sits on one line


def test_unknown_layer_and_missing_weights_fail_in_setup_with_one_line(two_styles, monkeypatch, tmp_path):
    with pytest.raises(StylefarmError, match="unknown layer.*relu6_1") as err:
        GatysStep(GatysOptions(style=two_styles[0], style_layers=["relu6_1"], random_weights=True)).setup("cpu")
    assert "\n" not in str(err.value)
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(StylefarmError, match="stylefarm weights add lossnet/vgg19"):
        GatysStep(GatysOptions(style=two_styles[0])).setup("cpu")


def test_random_weights_are_announced(two_styles):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GatysStep(GatysOptions(style=two_styles[0], random_weights=True, **SHALLOW)).setup("cpu")
    assert any("RANDOM WEIGHTS" in str(w.message) for w in caught)


def test_workflow_runs_the_step_end_to_end(two_styles, workflow, files, tmp_path):
    from stylefarm.api import run_workflow

    files("content", _texture([0.4, 0.5, 0.6], (20, 28)))
    path = workflow(f"""
version: 1
inputs:
  - path: {tmp_path / 'content.png'}
steps:
  - use: gatys
    with: {{style: {two_styles[0]}, iterations: 2, content_size: 16, random_weights: true,
            style_layers: [relu1_1], content_layers: [relu1_1]}}
output:
  dir: {tmp_path / 'out'}
""")
    run_workflow(path)
    assert (tmp_path / "out" / "content.png").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_run_is_close_to_the_cpu_run(two_styles):
    opts = GatysOptions(style=two_styles[0], iterations=3, content_size=24, init="content", random_weights=True,
                        **SHALLOW)
    image = _texture([0.5, 0.4, 0.3], (24, 24))
    outs = []
    for device in ("cpu", "cuda"):
        step = GatysStep(opts)
        step.setup(device)
        outs.append(step.process([Item(source="a", index=0, image=image)])[0].image)
    assert np.abs(outs[0] - outs[1]).max() < 1e-2
