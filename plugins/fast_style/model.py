"""fast_style networks: the configurable Johnson / Magenta / cin26 family (shared with cin26) and its file formats.

The network itself lives in `plugins/_cin.py` because `cin26` runs one configuration of it.
Here: what a trained-net file holds and how foreign state dicts map onto our keys.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from stylefarm.errors import WeightsError
from stylefarm.plugins._cin import PRESETS, CondInstanceNorm, NetConfig, TransformerNet, infer_config
from stylefarm.plugins.fast_style.step import is_pytorch_examples

__all__ = ["PRESETS", "CondInstanceNorm", "NetConfig", "TransformerNet", "build", "from_pytorch_examples",
           "net_file", "parse_net_file"]

FORMAT = "stylefarm.fast_style/1"


def net_file(net: TransformerNet, half: bool = True, recipe: dict | None = None) -> dict:
    """The dict a trained net is saved as: fp16 tensors (small), its config and style names."""
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in net.state_dict().items()}
    return {"format": FORMAT, "state_dict": state, "config": net.config.to_dict(), "recipe": recipe or {}}


def from_pytorch_examples(state: dict) -> dict[str, torch.Tensor]:
    """pytorch/examples `TransformerNet` keys -> ours (their pre-norm conv biases cancel in the norm)."""
    renames = {"conv1": "contract.0", "conv2": "contract.1", "conv3": "contract.2",
               "deconv1": "expand.0", "deconv2": "expand.1", "deconv3": "expand.2"}
    norms = {"in1": "contract.0", "in2": "contract.1", "in3": "contract.2", "in4": "expand.0", "in5": "expand.1"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if re.search(r"running_(mean|var)$|num_batches_tracked$", key):
            continue  # old checkpoints carry unused instance-norm buffers (the official script drops them too)
        res = re.fullmatch(r"res(\d)\.(conv|in)(\d)\.(.+)", key)
        if res:
            block, kind, index, rest = int(res[1]) - 1, res[2], int(res[3]) - 1, res[4]
            prefix = f"res.{block}.{index}"
            _put(out, prefix, "conv" if kind == "conv" else "in", rest, value)
            continue
        head, _, rest = key.partition(".")
        if head in renames:
            _put(out, renames[head], "conv", rest, value)
        elif head in norms:
            _put(out, norms[head], "in", rest, value)
        else:
            raise WeightsError(f"pytorch/examples checkpoint has an unexpected key {key!r}")
    return out


def _put(out: dict, prefix: str, kind: str, rest: str, value: torch.Tensor) -> None:
    if kind == "conv":
        if rest == "conv2d.weight":
            out[f"{prefix}.w"] = value
        elif rest == "conv2d.bias" and prefix == "expand.2":
            out[f"{prefix}.b"] = value  # only the last conv has no norm after it
    elif rest in ("weight", "bias"):
        out[f"{prefix}.norm.{'gamma' if rest == 'weight' else 'beta'}"] = value[None]


def parse_net_file(data: dict, where: str) -> tuple[NetConfig, dict[str, torch.Tensor]]:
    """(config, state dict) from any accepted file: ours, a bare state dict, or pytorch/examples."""
    if data.get("format") == FORMAT or ("state_dict" in data and "config" in data):
        return NetConfig.from_dict(data["config"]), {k: v.float() for k, v in data["state_dict"].items()}
    if is_pytorch_examples(data):
        return replace(PRESETS["johnson"], pixel_scale=255.0), from_pytorch_examples(data)
    if "contract.0.w" in data:
        try:
            return infer_config(data), {k: v.float() for k, v in data.items()}
        except (KeyError, IndexError) as exc:
            raise WeightsError(f"weights {where}: incomplete fast_style state dict (missing {exc})") from None
    keys = ", ".join(list(data)[:4])
    raise WeightsError(f"weights {where} are not a fast_style net (keys {keys}...): train one with "
                       "`stylefarm train fast-style`, or pass a pytorch/examples fast_neural_style .pth")


def build(config: NetConfig, state: dict[str, torch.Tensor], where: str) -> TransformerNet:
    """The network of `config` with `state` loaded; a mismatch names the keys and the config that would fit."""
    net = TransformerNet(config)
    ours = net.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = sorted(k for k in set(ours) & set(state) if ours[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        detail = "; ".join(f"{label}: {', '.join(keys[:3])}" for label, keys in
                           (("missing", missing), ("unexpected", unexpected), ("other shape", shapes)) if keys)
        try:
            fits = _describe(infer_config(state))
        except (KeyError, IndexError):
            fits = "none of ours"
        raise WeightsError(f"weights {where} do not fit the configured net ({_describe(config)}): {detail}; "
                           f"the file fits {fits}")
    net.load_state_dict(state)
    return net


def _describe(cfg: NetConfig) -> str:
    name = next((n for n, p in PRESETS.items() if p.widths == cfg.widths and p.blocks == cfg.blocks
                 and p.expand == cfg.expand and p.out_norm == cfg.out_norm), "custom")
    return (f"{name}: widths {list(cfg.widths)}, {cfg.blocks} blocks, expand {list(cfg.expand)}, "
            f"{cfg.num_styles} style(s), out_norm {cfg.out_norm}")
