"""Instance norm that keeps channels-last tensors channels-last, shared by the conv-net plugins.

Why: oneDNN's convolutions on CPU run 1.2-2.4x faster channels-last on the channel counts of
the feed-forward and CUT generators, but `F.instance_norm` on a channels-last tensor is about 4x
slower than on NCHW (it works in NCHW internally), `var_mean` over H and W is slower still, and
the batch-norm kernel's channels-last statistics sum serially in float32 (3.6e-4 off at 720p,
over cin26's 1e-4 parity bound). A channels-last image is an (H*W, C) matrix in memory, so here
the statistics are column sums and a centred second moment (no cancellation when the mean
dwarfs the spread), and scale and shift are one fused pass. Same values as `F.instance_norm`
within float32 rounding (tests/test_fast_style.py). Figures: benchmarks/README.md
("Channels-last eager nets").
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

EPS = 1e-5


def channels_last_float32(x: torch.Tensor) -> bool:
    """A float32 NCHW tensor in channels-last memory: what `instance_norm`'s own path is for
    (float16 sums of squares overflow; reduced precision keeps torch's norm)."""
    return x.dim() == 4 and x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)


def instance_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                  eps: float = EPS) -> torch.Tensor:
    """`F.instance_norm(x, weight=weight, bias=bias)` (per-channel affine, optional) in x's layout."""
    if not channels_last_float32(x):
        return F.instance_norm(x.contiguous(), weight=weight, bias=bias, eps=eps)
    n, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view for channels-last input
    mean = rows.sum(1).div_(h * w)
    centred = rows - mean[:, None]
    var = centred.mul_(centred).sum(1).div_(h * w)
    del centred
    scale = var.add_(eps).rsqrt_()
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return torch.addcmul(shift.view(n, c, 1, 1), x, scale.view(n, c, 1, 1))


class InstanceNorm(torch.nn.Module):
    """`nn.InstanceNorm2d(affine=False, track_running_stats=False)` via `instance_norm` (no state)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return instance_norm(x)
