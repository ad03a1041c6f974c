"""Int8 QDQ ONNX graphs of Magenta arbitrary stylization -> float torch state_dicts.

Every Conv in the exported graphs reads its weight and bias through a DequantizeLinear of an
initializer; we dequantize those ((q - zero_point) * scale, per output channel) and rename the
TF scope of each conv to our module path. The graphs also round activations to int8
(QuantizeLinear/DequantizeLinear pairs); `activation_table` reads each pair's scale and zero
point under its tensor name, and the converted file carries them as `qdq/<name>` entries so
the model can round at the same places (`model.ActivationQuant`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from stylefarm.errors import WeightsError
from stylefarm.plugins._cin import converted_path, package_model_path
from stylefarm.plugins._inception import dequantized_convs
from stylefarm.weights import load_state_dict

FILES = {"predict": "arbitrary_predict.onnx", "transform": "arbitrary_transform.onnx"}
_RENAMES = [
    (r"^MobilenetV2/Conv$", "stem"),
    (r"^MobilenetV2/Conv_1$", "head"),
    (r"^mobilenet_conv/Conv$", "bottleneck"),
    (r"^MobilenetV2/expanded_conv/(\w+)$", lambda m: f"blocks.0.{m[1]}"),
    (r"^MobilenetV2/expanded_conv_(\d+)/(\w+)$", lambda m: f"blocks.{m[1]}.{m[2]}"),
    (r"^transformer/contract/conv(\d)$", lambda m: f"contract.{int(m[1]) - 1}"),
    (r"^transformer/residual/residual(\d)/conv(\d)$", lambda m: f"residual.{int(m[1]) - 1}.{int(m[2]) - 1}.conv"),
    (r"^transformer/expand/conv(\d)/conv$", lambda m: f"expand.{int(m[1]) - 1}.conv"),
    (r"^style_params/transformer/residual/residual(\d)/conv(\d)/StyleNorm/(Conv(?:_1)?)$",
     lambda m: f"residual.{int(m[1]) - 1}.{int(m[2]) - 1}.norm.{_NORM[m[3]]}"),
    (r"^style_params/transformer/expand/conv(\d)/conv/StyleNorm/(Conv(?:_1)?)$",
     lambda m: f"expand.{int(m[1]) - 1}.norm.{_NORM[m[2]]}"),
]
QDQ_PREFIX = "qdq/"
_NORM = {"Conv": "beta", "Conv_1": "gamma"}  # graph: scale = rsqrt(var) * Conv_1, shift = Conv - mean * scale


def module_name(tf_scope: str) -> str:
    """TF scope of a conv (e.g. `transformer/residual/residual2/conv1`) -> our module path."""
    for pattern, repl in _RENAMES:
        match = re.match(pattern, tf_scope)
        if match:
            return repl if isinstance(repl, str) else repl(match)
    raise WeightsError(f"unexpected layer {tf_scope!r} in the Magenta ONNX graph (new package version?)")


def activation_table(onnx_path: Path) -> dict[str, tuple[float, int]]:
    """{tensor name: (scale, zero point)} of every QuantizeLinear on an activation (not a weight)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    table = {}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in arrays:
            zero = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else 0
            table[node.output[0]] = (float(arrays[node.input[1]]), int(zero))
    return table


def split_activation_table(state: dict) -> tuple[dict, dict[str, tuple[float, int]]]:
    """Converted file -> (weights for load_state_dict, activation table for ActivationQuant)."""
    weights = {k: v for k, v in state.items() if not k.startswith(QDQ_PREFIX)}
    table = {k[len(QDQ_PREFIX):]: (float(v[0]), int(v[1])) for k, v in state.items() if k.startswith(QDQ_PREFIX)}
    return weights, table


def to_state_dict(convs: dict) -> dict:
    """Rename to our modules; 1x1 style projections become Linear layers."""
    import torch

    state = {}
    for scope, (weight, bias) in convs.items():
        name = module_name(scope)
        if ".norm." in name:
            weight = weight[:, :, 0, 0]
        state[f"{name}.weight"] = torch.from_numpy(weight.copy())
        state[f"{name}.bias"] = torch.from_numpy(bias.reshape(-1).copy())
    return state


def load_magenta_state(role: str, override: str | None = None) -> dict:
    """State dict (weights + `qdq/` activation table) for `predict` or `transform`: .onnx/.pt or the package."""
    import torch

    path = Path(override).expanduser() if override else package_model_path(FILES[role])
    if not path.is_file():
        raise WeightsError(f"magenta_arbitrary {role} weights not found: {path}")
    if path.suffix.lower() != ".onnx":
        return load_state_dict(path, f"magenta_arbitrary/{role}")
    dest = converted_path(path, f"magenta_{role}_qdq")  # `_qdq`: files made before the table was kept
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(f".{os.getpid()}.part")
        state = to_state_dict(dequantized_convs(path))
        for name, (scale, zero) in activation_table(path).items():
            state[QDQ_PREFIX + name] = torch.tensor([scale, zero], dtype=torch.float64)
        torch.save(state, tmp)
        os.replace(tmp, dest)
    return load_state_dict(dest, f"magenta_arbitrary/{role}", check_hash=False)
