"""Reflection-padded convs without the padded copy, and nearest-upsampled 3x3 ones on the small map.

The VGG nets (AdaIN, StyA2K: `_vgg.ConvStack`) and the feed-forward nets (`_cin.ConvLayer`)
are built of `conv(reflect_pad(x))` and `conv(reflect_pad(upsample_2x_nearest(x)))`. Profiled
at 1024 px on CPU, AdaIN's reflection pads took 16% of the time and its upsamplings 3%, each a
full copy of a large feature map, and the convs right after an upsampling did 2.25x the
arithmetic they need. The same maths, computed another way:

- `reflect_conv`: the conv with zero padding, then its p-pixel border recomputed from
  reflected strips (3x3 in the VGG nets, 3x3 and 9x9 in the feed-forward nets). Bit-identical
  in our tests.
- `upsample_reflect_conv`: a 3x3 window on a 2x-nearest-upsampled image sees only 2x2 distinct
  small-map pixels, so the taps landing on the same one are summed first: four 2x2 convs on
  the small map, one per output pixel phase. 2.25x fewer multiply-adds, no upsampled copy;
  rounding differs by ~1e-7 relative (closer to float64 than the plain path).

Both are differentiable. Untested on CUDA (same code; no GPU run yet).

In eager CPU inference (float32, channels-last, no autograd, not being traced) the ReLU after
a conv runs inside oneDNN's conv (`mkldnn._convolution_pointwise`, the op inductor emits for
the same fusion) instead of as a pass over the map: the same pixels (max abs difference 0.0 on
the AdaIN networks), AdaIN 1.02x per frame at 512 and 1024 px. Row strips (conv + ReLU + pool,
and the phase conv, each strip finished while in cache) measured 1.10x only with glibc's
default malloc; with the pipeline's steady allocator (`stylefarm.allocator`) they gained
nothing, so they are not here (benchmarks/README.md, "ReLU inside the conv").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Below these map sizes the plain ops are faster (per layer, 64-512 channels, 2 CPU threads):
# a reflection pad's copy costs less than the border convs that replace it under ~256 x 256;
# the folded upsampling conv wins from a 32 x 32 small map up (1.5-2.3x there).
BORDER_FIX_MIN_PIXELS = 256 * 256
FOLD_MIN_PIXELS = 32 * 32

_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))

_POINTWISE = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


def fused_cpu(x: torch.Tensor) -> bool:
    """Whether the ReLU may run inside oneDNN's conv for `x`: eager float32 channels-last CPU
    inference, where it was measured (autograd and tracing get the plain ops)."""
    return (_POINTWISE is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.is_grad_enabled() and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last) and not torch.compiler.is_compiling())


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
          relu_inside: bool) -> torch.Tensor:
    """conv2d (stride 1); with `relu_inside` (`fused_cpu` inputs only) oneDNN's conv + ReLU."""
    if relu_inside:
        return _POINTWISE(x, weight, bias, [padding, padding], [1, 1], [1, 1], 1, "relu", [None], "")
    return F.conv2d(x, weight, bias, padding=padding)


def reflect_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 relu: bool = False) -> torch.Tensor:
    """`conv2d(pad(x, p, "reflect"), weight, bias)` for an odd k x k kernel (p = k // 2, stride 1),
    without the padded copy (x larger than 2p x 2p); then ReLU if `relu`."""
    n, p = x.shape[0], weight.shape[-1] // 2
    inside = relu and fused_cpu(x)  # else ReLU after the border is written (autograd sees the writes)
    out = _conv(x, weight, bias, p, inside)  # right everywhere but the p-pixel border
    # the border's outputs read the first (last) 2p rows reflected by p: for p = 1 the padded
    # map's first three rows are [1, 0, 1], its last three [h-2, h-1, h-2]
    top = F.pad(x[:, :, :2 * p], (p, p, p, 0), mode="reflect")
    bottom = F.pad(x[:, :, -2 * p:], (p, p, 0, p), mode="reflect")
    left = F.pad(x[..., :2 * p], (p, 0, p, p), mode="reflect")
    right = F.pad(x[..., -2 * p:], (0, p, p, p), mode="reflect")
    rows = _conv(torch.cat([top, bottom]), weight, bias, 0, inside)
    cols = _conv(torch.cat([left, right]), weight, bias, 0, inside)
    out[:, :, :p], out[:, :, -p:] = rows[:n], rows[n:]
    out[..., :p], out[..., -p:] = cols[:n], cols[n:]
    return out.relu_() if relu and not inside else out


def _fold(kernel: torch.Tensor, dim: int, odd: bool) -> torch.Tensor:
    """Three taps along `dim` to two: even phase (w0, w1+w2), odd phase (w0+w1, w2)."""
    w0, w1, w2 = (kernel.select(dim, k) for k in range(3))
    return torch.stack([w0 + w1, w2] if odd else [w0, w1 + w2], dim)


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(4*out, in, 2, 2): a 3x3 kernel folded for output phases (0,0), (0,1), (1,0), (1,1).

    On a 2x-nearest-upsampled, reflect-padded map an even output row reads small-map rows
    (i-1, i, i) and an odd one (i, i, i+1), with the small map edge-replicated.
    """
    w = weight.float()
    return torch.cat([_fold(_fold(w, 2, a), 3, b) for a, b in _PHASES]).to(weight.dtype)


def upsample_reflect_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          relu: bool = False) -> torch.Tensor:
    """`conv2d(pad(upsample_2x_nearest(x), 1, "reflect"), weight, bias)` computed on the small map;
    then ReLU if `relu`."""
    n, _, h, w = x.shape
    out_ch = weight.shape[0]
    nhwc = x.is_contiguous(memory_format=torch.channels_last)
    if not nhwc and torch.compiler.is_compiling():
        # inductor (torch 2.13) fails to lower the NCHW phase interleave below ("vr must not be
        # None for symbol"): compiled NCHW graphs keep the plain ops, which it fuses itself
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        out = F.conv2d(F.pad(up, (1, 1, 1, 1), mode="reflect"), weight, bias)
        return out.relu_() if relu else out
    kernels = phase_kernels(weight)
    if nhwc:
        kernels = kernels.contiguous(memory_format=torch.channels_last)
    inside = relu and fused_cpu(x)
    y = _conv(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, None if bias is None else bias.repeat(4),
              0, inside)  # (n, 4*out, h+1, w+1); the ReLU commutes with the interleave below
    if relu and not inside:
        y.relu_()
    phases = [y[:, k * out_ch:(k + 1) * out_ch, a:a + h, b:b + w] for k, (a, b) in enumerate(_PHASES)]
    # interleave the phases into memory of the input's layout, through one (n, out, h, 2, w, 2) view
    buf = x.new_empty(n, h, 2, w, 2, out_ch) if nhwc else x.new_empty(n, out_ch, h, 2, w, 2)
    grid = buf.permute(0, 5, 1, 2, 3, 4) if nhwc else buf
    for (a, b), p in zip(_PHASES, phases):
        grid[:, :, :, a, :, b] = p
    return buf.view(n, 2 * h, 2 * w, out_ch).permute(0, 3, 1, 2) if nhwc else buf.view(n, out_ch, 2 * h, 2 * w)
