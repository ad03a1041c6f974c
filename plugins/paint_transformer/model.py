"""Paint Transformer stroke predictor (Liu et al., ICCV 2021).

Two small CNNs encode the target patch and the current canvas, a transformer decodes a
fixed set of learned stroke queries, and two heads give each stroke's shape
`[x, y, w, h, theta]` and an on/off logit. Module names equal the official PyTorch code's,
so its `model.pth` loads as is.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PainterConfig:
    """Network size. The defaults are the official model; `param_act` "sigmoid" bounds the
    shape head to (0, 1), which our short self-training needs (the official head is linear)."""

    param_per_stroke: int = 5
    total_strokes: int = 8
    hidden_dim: int = 256
    n_heads: int = 8
    n_enc_layers: int = 3
    n_dec_layers: int = 3
    dim_feedforward: int = 2048
    dropout: float = 0.1
    param_act: str = "none"
    anchors: bool = False  # per-query default strokes on a grid (needs param_act "sigmoid")

    def to_dict(self) -> dict:
        return asdict(self)


def _encoder() -> nn.Sequential:
    """3 conv blocks, 32x32 -> 8x8x128; index layout fixed by the official key names."""
    layers: list[nn.Module] = []
    for cin, cout, stride in ((3, 32, 1), (32, 64, 2), (64, 128, 2)):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride), nn.BatchNorm2d(cout), nn.ReLU(True)]
    return nn.Sequential(*layers)


def anchor_grid(strokes: int) -> torch.Tensor:
    """Pre-sigmoid default strokes [S,5]: centres on a grid over the patch, 0.45-wide boxes.

    Starting every query at its own place (as anchor-based DETR variants do) avoids the
    slow early phase where all queries predict the mean stroke, which matters when
    training gets an hour of CPU rather than days of GPU.
    """
    g = math.ceil(math.sqrt(strokes))
    cells = torch.arange(strokes)
    xy = torch.stack([(cells % g + 0.5) / g, (cells // g + 0.5) / g], dim=1)
    wh = torch.full((strokes, 2), 0.45)
    p = torch.cat([xy, wh, torch.full((strokes, 1), 0.5)], dim=1)
    return torch.log(p / (1 - p))


class Painter(nn.Module):
    """Predicts `total_strokes` strokes for a 32x32 patch given the canvas painted so far."""

    def __init__(self, config: PainterConfig | None = None):
        super().__init__()
        cfg = self.config = config or PainterConfig()
        hid = cfg.hidden_dim
        self.enc_img = _encoder()
        self.enc_canvas = _encoder()
        self.conv = nn.Conv2d(128 * 2, hid, 1)
        with warnings.catch_warnings():  # torch nags about nested tensors for sequence-first layouts
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(
                hid, cfg.n_heads, cfg.n_enc_layers, cfg.n_dec_layers, cfg.dim_feedforward, cfg.dropout
            )
        self.linear_param = nn.Sequential(
            nn.Linear(hid, hid), nn.ReLU(True), nn.Linear(hid, hid), nn.ReLU(True), nn.Linear(hid, cfg.param_per_stroke)
        )
        self.linear_decider = nn.Linear(hid, 1)
        self.query_pos = nn.Parameter(torch.rand(cfg.total_strokes, hid))
        self.row_embed = nn.Parameter(torch.rand(8, hid // 2))
        self.col_embed = nn.Parameter(torch.rand(8, hid // 2))
        if cfg.anchors:
            self.register_buffer("anchors", anchor_grid(cfg.total_strokes))

    def forward(self, img: torch.Tensor, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """img, canvas [B,3,32,32] -> stroke shapes [B,S,5] and decision logits [B,S,1]."""
        b = img.shape[0]
        feat = self.conv(torch.cat([self.enc_img(img), self.enc_canvas(canvas)], dim=1))
        h, w = feat.shape[-2:]
        pos = torch.cat(
            [self.col_embed[:w].unsqueeze(0).repeat(h, 1, 1), self.row_embed[:h].unsqueeze(1).repeat(1, w, 1)],
            dim=-1,
        ).flatten(0, 1)
        src = pos.unsqueeze(1) + feat.flatten(2).permute(2, 0, 1)  # sequence-first, as nn.Transformer wants
        queries = self.query_pos.unsqueeze(1).repeat(1, b, 1)
        hidden = self.transformer(src, queries).permute(1, 0, 2)
        param = self.linear_param(hidden)
        if self.config.anchors:
            param = param + self.anchors
        if self.config.param_act == "sigmoid":
            param = torch.sigmoid(param)
        return param, self.linear_decider(hidden)


def config_from_state(state: dict[str, torch.Tensor], meta: dict | None = None) -> PainterConfig:
    """Network size read from a state_dict's shapes (official files carry no config)."""
    meta = dict(meta or {})
    enc = {k.split(".")[3] for k in state if k.startswith("transformer.encoder.layers.")}
    dec = {k.split(".")[3] for k in state if k.startswith("transformer.decoder.layers.")}
    shape = {
        "param_per_stroke": state["linear_param.4.weight"].shape[0],
        "total_strokes": state["query_pos"].shape[0],
        "hidden_dim": state["conv.weight"].shape[0],
        "n_enc_layers": len(enc),
        "n_dec_layers": len(dec),
        "dim_feedforward": state["transformer.encoder.layers.0.linear1.weight"].shape[0],
    }
    return PainterConfig(**{**meta, **shape})


def split_checkpoint(obj: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, config dict) from an official `model.pth` or a stylefarm weights file."""
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return obj["state_dict"], dict(obj.get("config") or {})
    return obj, {}


def build_painter(obj: dict) -> Painter:
    """A float32 Painter in eval mode holding the weights of `obj` (see `split_checkpoint`)."""
    state, meta = split_checkpoint(obj)
    net = Painter(config_from_state(state, meta))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return net.eval()
