"""StyleNAT tensor maths: neighbourhood attention in pure torch, the blur upsampler, the
sinusoidal positional grid, latent interpolation and the official seed -> z recipe.

Neighbourhood attention follows NATTEN's definition (per axis, query index i, length L,
kernel k, dilation d): keys come from i's dilation group (positions with the same i mod d,
L_g of them); with i' = i div d the window in that group starts at clamp(i' - k div 2, 0,
L_g - k) and holds k positions spaced d apart, so at the borders the window is *shifted* to
stay inside the map (never padded or masked). The bias of a key is
rpb[h, (key - query) / d + k - 1] per axis. Memory grows linearly with the pixels (tiles of
queries against their key blocks, in bounded chunks), never an (H*W) x (H*W) matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHUNK_ELEMENTS = 1 << 24  # elements of the largest temporary per chunk (64 MiB in float32)
TILE = 8  # queries per tile side in the tiled path


def neighbourhood_index(length: int, kernel: int, dilation: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(key positions [L, k], bias positions [L, k]) of every query along one axis."""
    if kernel < 1 or kernel % 2 == 0 or dilation < 1:
        raise ValueError(f"neighbourhood attention needs an odd kernel >= 1 and dilation >= 1 "
                         f"(got kernel {kernel}, dilation {dilation})")
    if length < kernel * dilation:
        raise ValueError(f"neighbourhood attention needs length >= kernel * dilation "
                         f"(got {length} < {kernel} * {dilation})")
    i = torch.arange(length, device=device)
    group, inner = i % dilation, i // dilation
    group_len = (length - group + dilation - 1) // dilation
    start = torch.minimum((inner - kernel // 2).clamp(min=0), group_len - kernel)
    offsets = torch.arange(kernel, device=device)
    keys = (start[:, None] + offsets) * dilation + group[:, None]
    bias = start[:, None] + offsets - inner[:, None] + kernel - 1
    return keys, bias


def _natten():
    """NATTEN's unfused ops with rpb (the 0.17 API StyleNAT targets), or None."""
    try:
        from natten.functional import na2d_av, na2d_qk
    except Exception:  # not installed, or an API generation without these ops
        return None
    return na2d_qk, na2d_av


def natten_available() -> bool:
    return _natten() is not None


def na2d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: int, dilation: int = 1,
         rpb: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """Neighbourhood attention on [B, heads, H, W, D] tensors (q already scaled) -> same shape.

    `backend`: "torch" (pure torch), "natten" (requires NATTEN) or "auto" (NATTEN when present).
    """
    ops = _natten() if backend in ("auto", "natten") else None
    if backend == "natten" and ops is None:
        raise RuntimeError("na2d backend 'natten' requested but natten.functional.na2d_qk/na2d_av are not available")
    if ops is not None:
        attn = ops[0](q, k, kernel_size=kernel, dilation=dilation, rpb=rpb).softmax(dim=-1)
        return ops[1](attn, v, kernel_size=kernel, dilation=dilation)
    return na2d_torch(q, k, v, kernel, dilation, rpb)


def na2d_torch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: int, dilation: int = 1,
               rpb: torch.Tensor | None = None, chunk_elements: int = CHUNK_ELEMENTS, tile: int = TILE) -> torch.Tensor:
    """Pure-torch neighbourhood attention (see the module docstring).

    Sizes divisible by the dilation fold the dilation groups into the batch (each group is a
    dilation-1 problem on its own sub-grid) and run tiled matrix products; other sizes use the
    gather path. Both are exact; the tiled one is several times faster on CPU."""
    b, heads, h, w, d = q.shape
    neighbourhood_index(h, kernel, dilation)  # validates sizes for both paths
    neighbourhood_index(w, kernel, dilation)
    sub_h, sub_w = h // dilation, w // dilation
    tiles = [_tile(sub_h, tile), _tile(sub_w, tile)]
    if h % dilation or w % dilation or None in tiles or min(tiles) <= kernel // 2:
        return na2d_gather(q, k, v, kernel, dilation, rpb, chunk_elements)
    if dilation == 1:
        return _na_tiled(q, k, v, kernel, rpb, tile, chunk_elements)

    def fold(x: torch.Tensor) -> torch.Tensor:  # [b, heads, h, w, d] -> [b * dil^2, heads, h/dil, w/dil, d]
        x = x.reshape(b, heads, sub_h, dilation, sub_w, dilation, d).permute(0, 3, 5, 1, 2, 4, 6)
        return x.reshape(b * dilation * dilation, heads, sub_h, sub_w, d)

    out = _na_tiled(fold(q), fold(k), fold(v), kernel, rpb, tile, chunk_elements)
    out = out.view(b, dilation, dilation, heads, sub_h, sub_w, d).permute(0, 3, 4, 1, 5, 2, 6)
    return out.reshape(b, heads, h, w, d)


def _tile(length: int, tile: int) -> int | None:
    size = min(tile, length)
    return size if length % size == 0 else None


def _tile_axis(length: int, kernel: int, tile: int, device) -> tuple[list, torch.Tensor, torch.Tensor]:
    """Per axis, for tiles of `tile` queries whose key block starts `kernel // 2` before the tile
    (zero padding outside the map): runs of tiles sharing one window pattern [(first, end,
    pattern)], and per pattern [tile, span] whether each block key is in each query's window and
    its bias index. Interior tiles share one pattern; the border tiles get their own."""
    pad = _pad(length, kernel, tile)
    i = torch.arange(length, device=device)
    start = (i - kernel // 2).clamp(min=0).clamp(max=length - kernel)  # window start (shifted at borders)
    keys = i[::tile, None] - pad + torch.arange(tile + 2 * pad, device=device)  # [n_tiles, span]
    rel = keys[:, None, :] - start.view(-1, tile)[:, :, None]  # key - window start
    valid = (rel >= 0) & (rel < kernel)
    bias = (keys[:, None, :] - i.view(-1, tile)[:, :, None] + kernel - 1).clamp(0, 2 * kernel - 2)
    runs, patterns = [], []
    for t in range(keys.shape[0]):
        if t and torch.equal(valid[t], valid[t - 1]) and torch.equal(bias[t], bias[t - 1]):
            runs[-1][1] = t + 1
            continue
        runs.append([t, t + 1, len(patterns)])
        patterns.append(t)
    return runs, valid[patterns], bias[patterns]


def _pad(length: int, kernel: int, tile: int) -> int:
    """Block margin: none when one tile spans the axis (its block is the whole axis)."""
    return 0 if tile == length else kernel // 2


def _bias_table(rpb: torch.Tensor | None, rows: tuple, cols: tuple, dtype) -> torch.Tensor:
    """[heads or 1, row patterns, col patterns, th * tw, sh * sw]: bias inside windows, -inf outside."""
    (r_ok, r_bias), (c_ok, c_bias) = rows, cols
    ok = r_ok[:, None, :, None, :, None] & c_ok[None, :, None, :, None, :]  # [pr, pc, th, tw, sh, sw]
    if rpb is None:
        table = torch.zeros(ok.shape, dtype=dtype, device=ok.device)[None]
    else:
        table = rpb[:, r_bias[:, None, :, None, :, None], c_bias[None, :, None, :, None, :]]
    table = table.masked_fill(~ok, float("-inf"))
    pr, pc, th, tw, sh, sw = ok.shape
    return table.reshape(table.shape[0], pr, pc, th * tw, sh * sw)


def _na_tiled(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: int, rpb: torch.Tensor | None,
              tile: int, chunk_elements: int) -> torch.Tensor:
    """Dilation-1 NA by tiles: each tile of queries attends densely to the key block covering all
    its windows, with -inf outside each query's window, so the work is matrix products."""
    n, heads, h, w, d = q.shape
    th, tw = _tile(h, tile), _tile(w, tile)
    row_runs, *row_pat = _tile_axis(h, kernel, th, q.device)
    col_runs, *col_pat = _tile_axis(w, kernel, tw, q.device)
    table = _bias_table(rpb, row_pat, col_pat, q.dtype)
    nh, nw = h // th, w // tw
    qt = q.reshape(n, heads, nh, th, nw, tw, d).permute(0, 1, 2, 4, 3, 5, 6).reshape(n, heads, nh, nw, th * tw, d)
    kb, vb = _blocks(k, kernel, th, tw), _blocks(v, kernel, th, tw)
    out = torch.empty_like(qt)
    per_row = heads * nw * table.shape[-2] * table.shape[-1]  # logits of one tile row of one map
    rows_step = max(1, chunk_elements // (n * per_row))
    maps_step = n if rows_step > 1 else max(1, chunk_elements // per_row)  # big folded batches: split it too
    for m0 in range(0, n, maps_step):
        m = slice(m0, m0 + maps_step)
        for r0 in range(0, nh, rows_step):
            r1 = min(nh, r0 + rows_step)
            logits = torch.matmul(qt[m, :, r0:r1], kb[m, :, r0:r1].transpose(-1, -2))
            _add_bias(logits, table, row_runs, col_runs, r0, r1)
            out[m, :, r0:r1] = torch.matmul(logits.softmax(dim=-1), vb[m, :, r0:r1])
    return out.view(n, heads, nh, nw, th, tw, d).permute(0, 1, 2, 4, 3, 5, 6).reshape(n, heads, h, w, d)


def _add_bias(logits: torch.Tensor, table: torch.Tensor, row_runs: list, col_runs: list, r0: int, r1: int) -> None:
    """Add each run of same-pattern tiles its bias/mask pattern (broadcast, nothing materialised)."""
    for a0, a1, pr in row_runs:
        a0, a1 = max(a0, r0) - r0, min(a1, r1) - r0
        for c0, c1, pc in col_runs:
            if a0 < a1:
                logits[:, :, a0:a1, c0:c1] += table[:, pr, pc, None, None]


def _blocks(x: torch.Tensor, kernel: int, th: int, tw: int) -> torch.Tensor:
    """[n, heads, H, W, d] -> key blocks [n, heads, n_row_tiles, n_col_tiles, span_h * span_w, d]:
    strided windows of the zero-padded map (one copy); padding is masked out by the bias table."""
    n, heads, h, w, d = x.shape
    ph, pw = _pad(h, kernel, th), _pad(w, kernel, tw)
    padded = F.pad(x, (0, 0, pw, pw, ph, ph)) if ph or pw else x
    blocks = padded.unfold(2, th + 2 * ph, th).unfold(3, tw + 2 * pw, tw)  # [n, heads, nh, nw, d, sh, sw]
    return blocks.permute(0, 1, 2, 3, 5, 6, 4).reshape(n, heads, h // th, w // tw, -1, d)


def na2d_gather(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: int, dilation: int = 1,
                rpb: torch.Tensor | None = None, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """NA for any size: keys gathered per kernel row for a chunk of query rows."""
    b, heads, h, w, d = q.shape
    rows, row_bias = neighbourhood_index(h, kernel, dilation, q.device)
    cols, col_bias = neighbourhood_index(w, kernel, dilation, q.device)
    step = max(1, chunk_elements // max(1, b * heads * w * kernel * d))
    out = torch.empty_like(q)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        bias = None
        if rpb is not None:  # [heads, n, W, k, k]
            bias = rpb[:, row_bias[r0:r1, None, :, None], col_bias[None, :, None, :]]
        out[:, :, r0:r1] = _na_rows(q[:, :, r0:r1], k, v, rows[r0:r1], cols, bias)
    return out


def _na_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
             bias: torch.Tensor | None) -> torch.Tensor:
    """Attention of a block of query rows; keys gathered one kernel row at a time."""
    b, heads, n, w, d = q.shape
    kernel = rows.shape[1]
    flat_cols = cols.reshape(-1)
    logits = q.new_empty(b, heads, n, w, kernel, kernel)
    for a in range(kernel):
        keys = k.index_select(2, rows[:, a]).index_select(3, flat_cols).view(b, heads, n, w, kernel, d)
        logits[..., a, :] = torch.matmul(keys, q.unsqueeze(-1)).squeeze(-1)
    if bias is not None:
        logits += bias
    attn = logits.view(b, heads, n, w, kernel * kernel).softmax(dim=-1).view_as(logits)
    out = torch.zeros_like(q)
    for a in range(kernel):
        values = v.index_select(2, rows[:, a]).index_select(3, flat_cols).view(b, heads, n, w, kernel, d)
        out += torch.matmul(attn[..., a, :].unsqueeze(-2), values).squeeze(-2)
    return out


def na2d_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: int, dilation: int = 1,
                   rpb: torch.Tensor | None = None) -> torch.Tensor:
    """Brute-force NA, one query at a time, straight from the definition (tests only: slow)."""
    b, heads, h, w, d = q.shape
    out = torch.empty_like(q)
    half = kernel // 2
    for i in range(h):
        for j in range(w):
            ki = _window(i, h, kernel, dilation, half)
            kj = _window(j, w, kernel, dilation, half)
            keys = k[:, :, ki][:, :, :, kj].reshape(b, heads, -1, d)
            values = v[:, :, ki][:, :, :, kj].reshape(b, heads, -1, d)
            logit = (keys * q[:, :, i, j, None, :]).sum(-1)
            if rpb is not None:
                bi = [(x - i) // dilation + kernel - 1 for x in ki]
                bj = [(y - j) // dilation + kernel - 1 for y in kj]
                logit = logit + rpb[:, bi][:, :, bj].reshape(heads, -1)
            out[:, :, i, j] = (logit.softmax(-1)[..., None] * values).sum(-2)
    return out


def _window(i: int, length: int, kernel: int, dilation: int, half: int) -> list[int]:
    """Key positions of query i: its dilation group, window shifted inside at the borders."""
    members = list(range(i % dilation, length, dilation))
    pos = members.index(i)
    start = min(max(pos - half, 0), len(members) - kernel)
    return members[start:start + kernel]


def blur_upsample(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """upfirdn2d(up=2, pad=(2, 1)) with the [1,3,3,1] outer-product kernel (x4): StyleGAN2's skip upsampler."""
    b, c, h, w = x.shape
    up = x.new_zeros(b * c, 1, h, 2, w, 2)
    up[:, :, :, 0, :, 0] = x.reshape(b * c, 1, h, w)
    up = F.pad(up.view(b * c, 1, 2 * h, 2 * w), (2, 1, 2, 1))
    out = F.conv2d(up, torch.flip(kernel, (0, 1))[None, None].to(x.dtype))
    return out.view(b, c, 2 * h, 2 * w)


def sinusoidal_grid(channels: int, height: int, width: int, device=None) -> torch.Tensor:
    """[channels, H, W]: first half encodes the column, second half the row (positions from 1).

    Computed in float32 like the official table (float64 differs by ~1e-5 at 256 px)."""
    e = channels // 2
    half = e // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=device) * -(math.log(10000) / (half - 1)))

    def axis(n: int) -> torch.Tensor:  # [e, n]
        angles = torch.arange(1, n + 1, dtype=torch.float32, device=device)[:, None] * freq[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).t()

    cols, rows = axis(width), axis(height)
    return torch.cat([cols[:, None, :].expand(e, height, width), rows[:, :, None].expand(e, height, width)], dim=0)


def unnormalize(image: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised [B, 3, H, W] -> RGB (x * std + mean per channel, as the official `unnormalize`)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return image * std + mean


def seed_latents(seed: int, batch: int, style_dim: int) -> torch.Tensor:
    """The official inference's z: `manual_seed(seed)` then one `randn(batch, style_dim)` (CPU).

    A private generator gives the same numbers without touching the global RNG."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(batch, style_dim, generator=gen)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation along the last axis (keyframes are returned exactly at t = 0, 1)."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    an, bn = F.normalize(a.double(), dim=-1), F.normalize(b.double(), dim=-1)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-7:  # (anti)parallel: fall back to a straight line
        return lerp(a, b, t)
    out = (torch.sin((1 - t) * omega) / so) * a.double() + (torch.sin(t * omega) / so) * b.double()
    return out.to(a.dtype)


def truncate(w: torch.Tensor, w_mean: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick: pull w towards the mean latent (psi = 1: unchanged, 0: the mean)."""
    return w_mean + psi * (w - w_mean)
