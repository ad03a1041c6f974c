"""What `stylefarm validate` learns before a run, without torch: the weight files each built-in
step's setup would load (`Step.weights_needed`), the option a missing one's path goes into, and
checkpoints read as their outline (`weights.read_outline`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from stylefarm import weights as wm
from stylefarm.errors import WeightsError
from stylefarm.images import encode_image
from stylefarm.plugins.fast_style.step import FastStyleOptions, FastStyleStep
from stylefarm.plugins.gatys.step import GatysOptions, GatysStep
from stylefarm.plugins.paint_transformer.step import PaintTransformerOptions, PaintTransformerStep
from stylefarm.plugins.stylenat.step import StyleNATGenerator, StyleNATOptions


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _install(name: str) -> None:
    path = wm.cached_path(wm.lookup(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.zeros(1)}, path)


def _picture(path):
    path.write_bytes(encode_image(".png", np.zeros((8, 8, 3), np.float32), None, 8))
    return path


# --- the missing-file message names the option that takes the path ------------------------------

def test_missing_message_names_the_option_the_caller_gives():
    wf = wm.lookup("adain/decoder")
    plain = wm.missing_message(wf)
    assert plain.endswith("or give its path in the step's `weights:` option") and "\n" not in plain
    role = wm.missing_message(wf, wm.role_option("decoder"))
    assert role.endswith("or give its path in the step's options: `weights: {decoder: /path/to/decoder.pth}`")


def test_a_role_missing_at_setup_is_told_as_its_entry_of_the_weights_mapping(cache, tmp_path):
    """`weights: decoder.pth` (what "a path in `weights:`" said) means one file holding every role."""
    given = tmp_path / "vgg_normalised.pth"
    torch.save({"0.weight": torch.zeros(1)}, given)
    roles = {"vgg": "adain/vgg", "decoder": "adain/decoder"}
    with pytest.raises(WeightsError) as err:
        wm.role_states({"vgg": str(given)}, roles)
    said = str(err.value)
    assert "`weights: {decoder: /path/to/decoder.pth}`" in said and "adain/vgg" not in said and "\n" not in said


def test_validate_names_each_steps_own_option(cli, cache, workflow, tmp_path):
    _picture(tmp_path / "s.png")
    steps = ("  - use: adain\n    with: {style: s.png}\n"
             "  - use: paint_transformer\n    with: {brushes: official}\n"
             "  - use: gatys\n    with: {style: s.png}\n")
    result = cli("validate", str(workflow(f"inputs: [{{generate: gradient, width: 16, height: 16}}]\n"
                                          f"steps:\n{steps}")))
    assert result.returncode == 0, result.stderr
    assert "5 weights file(s) missing on this machine" in result.stdout
    said = {line.split("'")[1] + " " + line.split("'")[3]: line for line in result.stderr.splitlines()
            if line.startswith("warning: step ")}
    assert said["adain adain/vgg"].endswith("`weights: {vgg: /path/to/vgg_normalised.pth}`")
    assert said["adain adain/decoder"].endswith("`weights: {decoder: /path/to/decoder.pth}`")
    brush = said["paint_transformer paint_transformer/brush_vertical"]
    assert "`brushes: [/path/to/brush_large_vertical.png, " in brush
    assert "paint_transformer paint_transformer/brush_horizontal" in said
    gatys = said["gatys lossnet/vgg19"]
    assert "the step's `weights:` option" in gatys and "`network: inception`" in gatys


# --- weights_needed of each built-in step ---------------------------------------------------------

def test_gatys_needs_the_loss_net_setup_would_load(cache, tmp_path):
    style = str(_picture(tmp_path / "s.png"))

    def needed(**options):
        return GatysStep.weights_needed(GatysOptions(style=style, **options))

    assert needed() == ["lossnet/vgg19"] and needed(network="vgg16") == ["lossnet/vgg16"]
    assert needed(network="inception") == [] and needed(random_weights=True) == []
    assert needed(weights=str(tmp_path / "vgg_conv.pth")) == []
    _install("adain/vgg")  # the VGG-19 setup falls back on (vgg_normalised.pth)
    assert needed() == ["adain/vgg"] and needed(network="vgg16") == ["lossnet/vgg16"]
    _install("lossnet/vgg19")
    assert needed() == ["lossnet/vgg19"]


def test_fast_style_needs_only_a_registered_net(tmp_path):
    def needed(**options):
        return FastStyleStep.weights_needed(FastStyleOptions(**options))

    assert needed(weights="fast_style/hubble_cpu") == ["fast_style/hubble_cpu"]
    assert needed(weights="cin26") == [] and needed(weights=str(tmp_path / "net.pt")) == []
    assert needed(random_weights=True) == []


def test_stylenat_needs_the_release_of_its_config_given_on_the_input():
    needed = StyleNATGenerator.weights_needed(StyleNATOptions())
    assert needed == ["stylenat/ffhq256"] and needed[0].option == "in the input's `weights:` key"
    assert StyleNATGenerator.weights_needed(StyleNATOptions(config="ffhq1024")) == ["stylenat/ffhq1024"]
    assert StyleNATGenerator.weights_needed(StyleNATOptions(weights="/x/FFHQ256_940k_flip.pt")) == []
    assert StyleNATGenerator.weights_needed(StyleNATOptions(random_weights=True)) == []
    message = wm.missing_message(wm.lookup(needed[0]), needed[0].option)
    assert message.endswith("or give its path in the input's `weights:` key")


@pytest.mark.parametrize("options, names", [
    ({}, ["paint_transformer/model"]),
    ({"weights": "random"}, []),
    ({"weights": "paint_transformer/official"}, ["paint_transformer/official"]),
    ({"weights": {"model": "/x/model.pth"}}, []),
    ({"weights": "/x/model.pth", "brushes": "official"},
     ["paint_transformer/brush_vertical", "paint_transformer/brush_horizontal"]),
    ({"brushes": ["v.png", "h.png"]}, ["paint_transformer/model"]),
])
def test_paint_transformer_needs_its_model_and_official_brushes(options, names):
    assert PaintTransformerStep.weights_needed(PaintTransformerOptions(**options)) == names


def test_paint_transformer_missing_official_brushes_name_the_brushes_option(monkeypatch, tmp_path):
    """Setup says the same as validate: the brushes go in `brushes:`, not in `weights:`."""
    from stylefarm.errors import WeightsError
    from stylefarm.plugins.paint_transformer import loading

    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path / "cache"))
    with pytest.raises(WeightsError) as err:
        loading.load_brushes("official", official_weights=True)
    assert "`brushes: [/path/to/brush_large_vertical.png" in str(err.value)
    assert "`weights:`" not in str(err.value)


def test_validate_imports_no_torch(tmp_path):
    """Listing the files of every built-in step stays a plain-Python look-up (validate is fast)."""
    _picture(tmp_path / "s.png")
    code = f"""
import sys
from stylefarm.api import load_workflow
plan = load_workflow({str(tmp_path / 'wf.yaml')!r})
print([name for call in plan.chain for name in call.cls.weights_needed(call.options)])
print('torch' in sys.modules)
"""
    (tmp_path / "wf.yaml").write_text("""version: 1
inputs: [{generate: gradient, width: 16, height: 16}]
steps:
  - {use: adain, with: {style: s.png}}
  - {use: gatys, with: {style: s.png}}
  - {use: fast_style, with: {weights: fast_style/hubble_cpu, style: hubble}}
  - {use: paint_transformer, with: {brushes: official}}
  - {use: cin26, with: {style: 3}}
output: {dir: out}
""")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'fast_style/hubble_cpu'" in out and "'lossnet/vgg19'" in out and "'paint_transformer/brush_vertical'" in out
    assert out.splitlines()[-1] == "False"


# --- checkpoints read without torch ---------------------------------------------------------------

@pytest.mark.parametrize("zipped", [True, False])
def test_outline_gives_shapes_without_torch_in_both_file_formats(tmp_path, zipped):
    path = tmp_path / "net.pt"
    torch.save({"config": {"styles": ["a"]}, "state_dict": {"g": torch.zeros(2, 3, dtype=torch.float16)},
                "p": torch.nn.Parameter(torch.ones(4))}, path, _use_new_zipfile_serialization=zipped)
    outline = wm.read_outline(path)
    assert outline["config"] == {"styles": ["a"]}
    assert outline["state_dict"]["g"].shape == (2, 3) and outline["p"].shape == (4,)


def test_outline_runs_no_pickled_code_and_gives_up_on_foreign_files(tmp_path):
    touched = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (touched.write_text, ("x",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02 not a checkpoint")
    assert wm.read_outline(tmp_path / "evil.pt") is None and not touched.exists()
    assert wm.read_outline(tmp_path / "junk.pt") is None and wm.read_outline(tmp_path / "none.pt") is None
