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

from .ops import dilation, erosion

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
    resized = F.interpolate(brushes.to(param.dtype), (H, W))
    brush = resized[(param[:, 3] <= param[:, 2]).long()]
    grid = F.affine_grid(stroke_warp(param, H, W), [n, 1, H, W], align_corners=False)
    if soft:
        both = F.grid_sample(torch.cat([brush, (brush > 0).to(brush.dtype)], 1), grid, align_corners=False)
        brush, alpha = both[:, :1], both[:, 1:]
    else:
        brush = F.grid_sample(brush, grid, align_corners=False)
        alpha = (brush > 0).to(brush.dtype)
    foreground = brush * param[:, 5:8, None, None]
    return dilation(foreground), erosion(alpha)


def composite(canvas: torch.Tensor, fg: torch.Tensor, alpha: torch.Tensor, decision: torch.Tensor) -> torch.Tensor:
    """Paint one stroke over `canvas`; `decision` (0/1, broadcastable) switches it on."""
    return fg * alpha * decision + canvas * (1 - alpha * decision)


def composite_sequence(canvas: torch.Tensor, fgs: torch.Tensor, alphas: torch.Tensor, decisions: torch.Tensor):
    """Paint strokes [B,S,...] over canvases [B,3,H,W] in order (later strokes on top)."""
    for i in range(fgs.shape[1]):
        canvas = composite(canvas, fgs[:, i], alphas[:, i], decisions[:, i].view(-1, 1, 1, 1))
    return canvas


def _render_active(param: torch.Tensor, active: torch.Tensor, py: int, px: int, brushes: torch.Tensor):
    """Render only the strokes that are on; the others get empty layers (as officially)."""
    fg = param.new_zeros(param.shape[0], 3, py, px)
    alpha = param.new_zeros(param.shape[0], 1, py, px)
    if bool(active.any()):
        fg[active], alpha[active] = param2stroke(param[active], py, px, brushes)
    return fg, alpha


def _paint_group(view: torch.Tensor, param, decision, brushes, serial: bool, on_stroke: Callable[[], None] | None):
    """Paint the strokes of a set of non-overlapping windows tiling `view`, in stroke order."""
    b, _, hh, ww = view.shape
    ny, nx, s = param.shape[1:4]
    py, px = hh // ny, ww // nx
    patches = view.reshape(b, 3, ny, py, nx, px).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, py, px)
    flat_p, flat_d = param.reshape(-1, s, param.shape[-1]), decision.reshape(-1, s)

    def write_back() -> None:
        view.copy_(patches.view(b, ny, nx, 3, py, px).permute(0, 3, 1, 4, 2, 5).reshape(view.shape))

    if not serial:  # one big render call, like the official parallel renderer
        fg, al = _render_active(flat_p.reshape(-1, flat_p.shape[-1]), flat_d.reshape(-1), py, px, brushes)
        fg, al = fg.view(-1, s, 3, py, px), al.view(-1, s, 1, py, px)
    for i in range(s):
        if serial:  # one stroke per window at a time: bounded memory
            fgi, ali = _render_active(flat_p[:, i], flat_d[:, i], py, px, brushes)
        else:
            fgi, ali = fg[:, i], al[:, i]
        patches = composite(patches, fgi, ali, flat_d[:, i].to(patches.dtype).view(-1, 1, 1, 1))
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
    this is the official order, hence the official result. `serial` trades speed for memory
    (same pixels). `hook(padded_canvas)` is called after each stroke index of each group.
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
        _paint_group(view, param[:, oy::2, ox::2], decision[:, oy::2, ox::2].bool(), brushes, serial, on_stroke)
    return padded[:, :, py // 4 : py // 4 + H, px // 4 : px // 4 + W]
