"""Parameter-free differentiable stroke renderer.

A stroke is `[x, y, w, h, theta, r, g, b]` in patch-relative units (theta in half turns).
A brush image is affinely warped onto the canvas with `grid_sample`, coloured, and
composited in order with its alpha. The geometry follows the official Paint Transformer
renderer so official weights paint the same picture; any pair of brush images works.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .ops import dilation, eroded_mask, erosion

StrokeHook = Callable[[torch.Tensor], None]


def stroke_warp(param: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Affine matrices [n,2,3] mapping canvas coordinates into each stroke's brush frame."""
    x0, y0, w, h, theta = param[:, :5].unbind(1)
    sin_t, cos_t = torch.sin(torch.pi * theta), torch.cos(torch.pi * theta)
    # Same operation order as the official renderer: alpha is a hard threshold of the
    # sampled brush, so one-ulp differences in the grid would flip border pixels.
    row0 = [cos_t / w, sin_t * H / (W * w), (1 - 2 * x0) * cos_t / w + (1 - 2 * y0) * sin_t * H / (W * w)]
    row1 = [-sin_t * W / (H * h), cos_t / h, (1 - 2 * y0) * cos_t / h - (1 - 2 * x0) * sin_t * W / (H * h)]
    return torch.stack([torch.stack(row0, dim=1), torch.stack(row1, dim=1)], dim=1)


def _warped_brushes(param: torch.Tensor, H: int, W: int, brushes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each stroke's brush image warped onto its window [n,1,H,W], and the sampling grid."""
    resized = F.interpolate(brushes.to(param.dtype), (H, W))
    brush = resized.index_select(0, (param[:, 3] <= param[:, 2]).long())  # ~2.5x faster than resized[idx]
    return brush, affine_grid(stroke_warp(param, H, W), H, W)


def affine_grid(theta: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """`F.affine_grid(theta, [n, 1, H, W], align_corners=False)`, bit for bit, as ONE matrix
    product: strokes' rows [2n, 3] times the base grid [3, H*W], viewed [n, H, W, 2]. ATen's
    version runs n tiny products and writes the interleaved grid: 2.5x the time of this product
    plus the `grid_sample` that reads it (which takes the strided grid as it is). Each value is
    the same 3-term dot product; where this machine's matrix product rounds it otherwise (checked
    once per device, dtype and size), ATen's is used."""
    if theta.shape[0] == 0:
        return theta.new_zeros(0, H, W, 2)
    if not _same_as_aten(theta.device, theta.dtype, H, W):
        return F.affine_grid(theta, [theta.shape[0], 1, H, W], align_corners=False)
    return _grid_product(theta, H, W)


def _grid_product(theta: torch.Tensor, H: int, W: int) -> torch.Tensor:
    n = theta.shape[0]
    base = torch.stack([_steps(W, theta).expand(H, W), _steps(H, theta)[:, None].expand(H, W),
                        theta.new_ones(H, W)]).view(3, H * W)
    return (theta.reshape(n * 2, 3) @ base).view(n, 2, H, W).permute(0, 2, 3, 1)


def _steps(count: int, like: torch.Tensor) -> torch.Tensor:
    """ATen's `linspace_from_neg_one` (align_corners=False): the same operations, the same values."""
    if count <= 1:
        return like.new_zeros(1)
    return torch.linspace(-1, 1, count, dtype=like.dtype, device=like.device) * (count - 1) / count


_CHECKED: dict[tuple, bool] = {}


def _same_as_aten(device: torch.device, dtype: torch.dtype, H: int, W: int) -> bool:
    key = (str(device), dtype, H, W)
    if key not in _CHECKED:
        g = torch.Generator().manual_seed(0)  # two strokes: cheap next to one picture's grids
        probe = (torch.rand(2, 8, generator=g) * torch.tensor([1, 1, 0.5, 0.5, 2, 1, 1, 1]) + 0.02)
        with torch.no_grad():
            theta = stroke_warp(probe.to(device, dtype), H, W)
            _CHECKED[key] = torch.equal(_grid_product(theta, H, W),
                                        F.affine_grid(theta, [2, 1, H, W], align_corners=False))
    return _CHECKED[key]


def param2stroke(
    param: torch.Tensor, H: int, W: int, brushes: torch.Tensor, soft: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render strokes [n,8] to foregrounds [n,3,H,W] and alphas [n,1,H,W].

    `brushes` is [2,1,h,w]: index 0 is used when h > w (vertical), 1 otherwise. The hard
    alpha (`soft=False`) is what inference uses; training uses the bilinearly warped
    binary mask so the pixel loss has gradients with respect to the stroke geometry.
    """
    n = param.shape[0]
    if n == 0:
        return param.new_zeros(0, 3, H, W), param.new_zeros(0, 1, H, W)
    brush, grid = _warped_brushes(param, H, W, brushes)
    if soft:
        both = F.grid_sample(torch.cat([brush, (brush > 0).to(brush.dtype)], 1), grid, align_corners=False)
        brush, alpha = both[:, :1], both[:, 1:]
    else:
        brush = F.grid_sample(brush, grid, align_corners=False)
        alpha = (brush > 0).to(brush.dtype)
    foreground = brush * param[:, 5:8, None, None]
    return dilation(foreground), erosion(alpha)


def paint_strokes(canvas: torch.Tensor, param: torch.Tensor, brushes: torch.Tensor) -> torch.Tensor:
    """Paint one stroke [n,8] onto each of n windows [n,3,H,W] (inference, hard alpha).

    The same pixels as `composite(canvas, *param2stroke(param, ...), 1)`, bit for bit, with a
    third of the work: the alpha is 0 or 1, so compositing is a choice between stroke and
    canvas; and the colour is non-negative, so dilating the one-channel brush and then
    colouring it equals dilating the coloured stroke (rounding is monotonic). Negative
    colours (never predicted) take the general path.
    """
    H, W = canvas.shape[-2:]
    color = param[:, 5:8, None, None]
    if bool((color < 0).any()):
        fg, alpha = param2stroke(param, H, W, brushes)
        return composite(canvas, fg, alpha, torch.ones_like(alpha))
    brush = _sampled(param, H, W, brushes)
    on, fg = eroded_mask(brush > 0), dilation(brush) * color
    # into fg (1.4x faster than a new tensor), except where autograd needs fg itself
    return torch.where(on, fg, canvas, out=None if fg.requires_grad else fg)


def stroke_alpha(param: torch.Tensor, H: int, W: int, brushes: torch.Tensor) -> torch.Tensor:
    """The hard alphas [n,1,H,W] of strokes [n,>=5] alone (`param2stroke`'s second result
    without rendering the colours)."""
    if param.shape[0] == 0:
        return param.new_zeros(0, 1, H, W)
    brush = _sampled(param, H, W, brushes)
    return eroded_mask(brush > 0).to(brush.dtype)


def _sampled(param: torch.Tensor, H: int, W: int, brushes: torch.Tensor) -> torch.Tensor:
    brush, grid = _warped_brushes(param, H, W, brushes)
    return F.grid_sample(brush, grid, align_corners=False)


def composite(canvas: torch.Tensor, fg: torch.Tensor, alpha: torch.Tensor, decision: torch.Tensor) -> torch.Tensor:
    """Paint one stroke over `canvas`; `decision` (0/1, broadcastable) switches it on."""
    return fg * alpha * decision + canvas * (1 - alpha * decision)


def composite_sequence(canvas: torch.Tensor, fgs: torch.Tensor, alphas: torch.Tensor, decisions: torch.Tensor):
    """Paint strokes [B,S,...] over canvases [B,3,H,W] in order (later strokes on top)."""
    for i in range(fgs.shape[1]):
        canvas = composite(canvas, fgs[:, i], alphas[:, i], decisions[:, i].view(-1, 1, 1, 1))
    return canvas


def _paint_group(view: torch.Tensor, param, decision, brushes, on_stroke: Callable[[], None] | None):
    """Paint the strokes of a set of non-overlapping windows tiling `view`, in stroke order:
    stroke i of every window whose stroke i is on, then stroke i + 1 (windows of one group
    never overlap, so this is the official order)."""
    b, _, hh, ww = view.shape
    ny, nx, s = param.shape[1:4]
    py, px = hh // ny, ww // nx
    patches = view.reshape(b, 3, ny, py, nx, px).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, py, px)
    flat_p, flat_d = param.reshape(-1, s, param.shape[-1]), decision.reshape(-1, s)

    def write_back() -> None:
        view.copy_(patches.view(b, ny, nx, 3, py, px).permute(0, 3, 1, 4, 2, 5).reshape(view.shape))

    for i in range(s):
        active = flat_d[:, i].nonzero().squeeze(1)
        if active.numel() == patches.shape[0]:  # all on: no gather and scatter
            patches = paint_strokes(patches, flat_p[:, i], brushes)
        elif active.numel():
            patches[active] = paint_strokes(patches[active], flat_p[active, i], brushes)
        if on_stroke is not None:
            write_back()
            on_stroke()
    write_back()


def render_grid(
    param: torch.Tensor,
    decision: torch.Tensor,
    brushes: torch.Tensor,
    canvas: torch.Tensor,
    serial: bool = False,
    hook: StrokeHook | None = None,
) -> torch.Tensor:
    """Paint a grid of patch strokes [B,h,w,S,8] (on/off [B,h,w,S]) onto canvas [B,3,H,W].

    Stroke coordinates are relative to a window twice the cell size centred on each cell,
    so strokes may spill into neighbours. Windows are painted in four interleaved groups
    (even/even, odd/odd, odd/even, even/odd) so that windows of one group never overlap;
    this is the official order, hence the official result. Strokes are rendered one index at
    a time for the windows where they are on (the official parallel renderer draws all of them,
    off ones too, at once: same pixels, several GB at 1024 px); `serial` is kept for old
    workflows and changes nothing. `hook(padded_canvas)` is called after each stroke index of
    each group.
    """
    h, w = param.shape[1:3]
    H, W = canvas.shape[-2:]
    if (2 * H) % h or (2 * W) % w:
        raise ValueError(f"canvas {H}x{W} is not divisible into a {h}x{w} grid of half windows")
    py, px = 2 * H // h, 2 * W // w
    padded = F.pad(canvas, [px // 4, px // 4, py // 4, py // 4]).contiguous()
    for oy, ox in ((0, 0), (1, 1), (1, 0), (0, 1)):
        ny, nx = (h - oy + 1) // 2, (w - ox + 1) // 2
        if ny == 0 or nx == 0:
            continue
        y0, x0 = oy * py // 2, ox * px // 2
        view = padded[:, :, y0 : y0 + ny * py, x0 : x0 + nx * px]
        on_stroke = None if hook is None else (lambda: hook(padded))
        _paint_group(view, param[:, oy::2, ox::2], decision[:, oy::2, ox::2].bool(), brushes, on_stroke)
    return padded[:, :, py // 4 : py // 4 + H, px // 4 : px // 4 + W]
