"""Self-training on synthetic strokes (no dataset): the recipe of the paper, sized for CPUs.

Each sample: random background strokes make a canvas, random foreground strokes painted
over it make the target; the network sees (target, canvas) and must recover the
foreground strokes. Losses: L1 + Gaussian-Wasserstein on matched stroke shapes, BCE on
the on/off decision of every query, and L1 between re-rendered and target pixels.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .matching import linear_assignment
from .model import Painter, PainterConfig
from .ops import hard_decision, sample_colors
from .render import composite_sequence, param2stroke

PATCH = 32


@dataclass
class TrainConfig:
    """Hyper-parameters; loss weights are the official `lambda_*` defaults."""

    net: PainterConfig = field(default_factory=lambda: PainterConfig(
        hidden_dim=128, n_heads=4, n_enc_layers=2, n_dec_layers=2, dim_feedforward=512, dropout=0.0,
        param_act="sigmoid", anchors=True))
    batch_size: int = 32
    lr: float = 3e-4
    minutes: float = 60.0  # time budget; the learning rate follows a cosine over it
    max_steps: int = 10**9
    seed: int = 0
    lambda_pixel: float = 10.0
    lambda_gt: float = 1.0
    lambda_w: float = 10.0
    lambda_decision: float = 10.0
    lambda_recall: float = 10.0


def random_strokes(n: int, s: int, gen: torch.Generator) -> torch.Tensor:
    """[n,s,8] random strokes: w,h in [0.2,0.7] as officially, centres anywhere in [0.1,0.9]
    (official: [0.2,0.7], which leaves the bottom/right of patches to neighbours' strokes)."""
    p = torch.rand(n, s, 8, generator=gen)
    p[..., :2] = p[..., :2] * 0.8 + 0.1
    p[..., 2:4] = p[..., 2:4] * 0.5 + 0.2
    return p


def paint_strokes(canvas: torch.Tensor, strokes: torch.Tensor, on: torch.Tensor, brushes, soft=False):
    """Render [B,S,8] strokes at the canvas size and composite them in order."""
    b, s = strokes.shape[:2]
    H, W = canvas.shape[-2:]
    fg, al = param2stroke(strokes.reshape(b * s, 8), H, W, brushes, soft=soft)
    return composite_sequence(canvas, fg.view(b, s, 3, H, W), al.view(b, s, 1, H, W), on), al.view(b, s, -1)


def visible_decisions(alphas: torch.Tensor) -> torch.Tensor:
    """A stroke is dropped when it overlaps >= 75% of an earlier kept one (official rule)."""
    b, s, _ = alphas.shape
    keep = torch.ones(b, s)
    area = alphas.sum(-1) + 1e-5
    for i in range(s):
        for j in range(i):
            overlap = ((alphas[:, i] * alphas[:, j]).sum(-1) + 1e-5) / area[:, j]
            keep[:, i] *= ((overlap < 0.75) | (keep[:, j] == 0)).float()
    return keep


@torch.no_grad()
def synthetic_batch(batch: int, strokes: int, brushes: torch.Tensor, gen: torch.Generator):
    """(canvas, target, gt strokes [B,S,5], gt decisions [B,S]) for one training step."""
    quarter = max(batch // 4, 1)
    old = torch.zeros(quarter, 3, 2 * PATCH, 2 * PATCH)
    bg = random_strokes(quarter, strokes, gen)
    old, _ = paint_strokes(old, bg, torch.ones(quarter, strokes), brushes)
    old = old.view(quarter, 3, 2, PATCH, 2, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, PATCH, PATCH)[:batch]
    gt = random_strokes(old.shape[0], strokes, gen)
    b, s = gt.shape[:2]
    _, alphas = param2stroke(gt.reshape(b * s, 8), PATCH, PATCH, brushes)
    keep = visible_decisions(alphas.view(b, s, -1))
    target, _ = paint_strokes(old, gt, keep, brushes)
    return old, target, gt[..., :5], keep


def _sigma(w, h, theta):
    """Covariance of the Gaussian with half-axes w/2, h/2 rotated by theta (and its root)."""
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    diag = torch.diag_embed(torch.stack([w, h], -1) / 2)
    root = rot @ diag @ rot.transpose(-1, -2)
    return root @ root, root


def gaussian_w2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between strokes seen as 2-D Gaussians ([...,5] each).

    Unlike an L1 on theta, it knows that theta 0 and 1 are the same stroke.
    """
    sa, ra = _sigma(a[..., 2], a[..., 3], torch.pi * a[..., 4])
    sb, _ = _sigma(b[..., 2], b[..., 3], torch.pi * b[..., 4])
    m = ra @ sb @ ra
    tr, det = m[..., 0, 0] + m[..., 1, 1], (m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0])
    cross = torch.sqrt((tr + 2 * torch.sqrt(det.clamp_min(1e-12))).clamp_min(1e-12))
    trace_a = sa[..., 0, 0] + sa[..., 1, 1]
    trace_b = sb[..., 0, 0] + sb[..., 1, 1]
    return ((a[..., :2] - b[..., :2]) ** 2).sum(-1) + trace_a + trace_b - 2 * cross


@torch.no_grad()
def match_strokes(pred: torch.Tensor, logit: torch.Tensor, gt: torch.Tensor, keep: torch.Tensor):
    """Per sample, assign each kept ground-truth stroke one query (Hungarian, official cost)."""
    rows, cols = [], []
    for i in range(pred.shape[0]):
        valid = keep[i].nonzero().flatten()
        if len(valid) == 0:
            continue
        g = gt[i, valid]
        cost = torch.cdist(pred[i], g, p=1) + gaussian_w2(pred[i][:, None], g[None]) + (1 - logit[i])[:, None]
        r, c = linear_assignment(cost.cpu().numpy())
        rows.append(torch.as_tensor(r, device=pred.device) + i * pred.shape[1])
        cols.append(valid[torch.as_tensor(c, device=pred.device)] + i * pred.shape[1])
    if not rows:
        empty = torch.zeros(0, dtype=torch.long, device=pred.device)
        return empty, empty
    return torch.cat(rows), torch.cat(cols)


def training_losses(net: Painter, batch, brushes: torch.Tensor, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """All loss terms for one synthetic batch; 'total' is what gets minimised."""
    old, target, gt, keep = batch
    pred, logit = net(target, old)
    color = sample_colors(target, pred[..., :2])
    strokes = torch.cat([pred, color], -1)
    on = hard_decision(logit.squeeze(-1))
    rec, _ = paint_strokes(old, strokes, on, brushes, soft=True)
    r, c = match_strokes(pred.detach(), logit.detach().squeeze(-1), gt, keep)
    flat_pred, flat_gt = pred.reshape(-1, pred.shape[-1]), gt.reshape(-1, gt.shape[-1])
    paired = torch.zeros(flat_pred.shape[0], device=pred.device)
    paired[r] = 1.0
    recall = torch.tensor(cfg.lambda_recall, device=pred.device)
    loss = {
        "pixel": F.l1_loss(rec, target) * cfg.lambda_pixel,
        "gt": F.l1_loss(flat_pred[r], flat_gt[c]) * cfg.lambda_gt if len(r) else rec.sum() * 0,
        "w": gaussian_w2(flat_pred[r], flat_gt[c]).mean() * cfg.lambda_w if len(r) else rec.sum() * 0,
        "decision": F.binary_cross_entropy_with_logits(
            logit.reshape(-1), paired, pos_weight=recall) * cfg.lambda_decision,
    }
    loss["total"] = sum(loss.values())
    return loss, rec


def init_weights(net: Painter, gain: float = 0.02) -> None:
    """Official `init_type normal`: N(0, 0.02) convs/linears, BN weight N(1, 0.02)."""
    for mod in net.modules():
        if isinstance(mod, torch.nn.Conv2d | torch.nn.Linear):
            torch.nn.init.normal_(mod.weight, 0.0, gain)
            if mod.bias is not None:
                torch.nn.init.zeros_(mod.bias)
        elif isinstance(mod, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(mod.weight, 1.0, gain)
            torch.nn.init.zeros_(mod.bias)


def cosine_lr(base: float, frac: float, warmup: float = 0.02) -> float:
    """Learning rate at a fraction of the time budget: short warm-up, cosine to 5%."""
    if frac < warmup:
        return base * max(frac / warmup, 0.05)
    t = min((frac - warmup) / (1 - warmup), 1.0)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def export_weights(net: Painter, path: Path, half: bool = True) -> None:
    """Write the inference file the step loads: {'state_dict', 'config'}, fp16 to stay small."""
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu().clone() for k, v in net.state_dict().items()}
    config = {**net.config.to_dict(), "dropout": 0.0}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save({"state_dict": state, "config": config}, tmp)
    tmp.replace(path)


def preview_image(old, target, rec, n: int = 8) -> np.ndarray:
    """Rows of canvas | target | repainted, as uint8 HxWx3, for eyeballing progress."""
    rows = [torch.cat([old[i], target[i], rec[i]], -1) for i in range(min(n, old.shape[0]))]
    grid = F.interpolate(torch.cat(rows, -2)[None], scale_factor=4, mode="nearest")[0]
    return (grid.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@dataclass
class TrainState:
    step: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)


def save_checkpoint(path: Path, net, opt, state: TrainState, cfg: TrainConfig) -> None:
    """Everything needed to resume, written atomically (loads back on any device)."""
    tmp = path.with_suffix(".part")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "state": asdict(state),
                "train_config": {**asdict(cfg), "net": cfg.net.to_dict()}}, tmp)
    tmp.replace(path)


def config_from_dict(d: dict) -> TrainConfig:
    return TrainConfig(**{**d, "net": PainterConfig(**d["net"])})


def _resume(cfg: TrainConfig, ckpt: Path, resume: bool, log):
    """(config, state, saved checkpoint or None). On resume the checkpoint's network and
    recipe win, while the budget (minutes, max_steps) is the caller's: "train longer" works."""
    if not (resume and ckpt.is_file()):
        return cfg, TrainState(), None
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = TrainState(**saved["state"])
    log(f"resuming from {ckpt} at step {state.step} ({state.elapsed / 60:.1f} min done)")
    merged = {**saved["train_config"], "minutes": cfg.minutes, "max_steps": cfg.max_steps}
    return config_from_dict(merged), state, saved


def _record(state: TrainState, run_avg: dict, loss: dict, lr: float, minutes: float, log) -> None:
    """Smooth the loss terms; every 50 steps append them to the history and log a line."""
    for k, v in loss.items():
        value = v.item()
        run_avg[k] = 0.98 * run_avg.get(k, value) + 0.02 * value
    if state.step % 50:
        return
    names = sorted(run_avg)
    state.history.append([state.step, round(state.elapsed, 1)] + [round(run_avg[k], 5) for k in names])
    terms = " ".join(f"{k}={run_avg[k]:.4f}" for k in names)
    log(f"step {state.step} {state.elapsed / 60:.1f}/{minutes:.0f} min lr={lr:.2e} {terms}")


def train(cfg: TrainConfig, out: Path, brushes: torch.Tensor, resume: bool = True, log=print,
          save_every: int = 200, preview_every: int = 500, export: Path | None = None,
          device: str = "cpu") -> Painter:
    """Self-train until the time budget or step count is spent; resumable from out/last.pt.

    Synthetic data is drawn on the CPU (seeded generator, reproducible); the network and
    the losses run on `device`.
    """
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "last.pt"
    cfg, state, saved = _resume(cfg, ckpt, resume, log)
    torch.manual_seed(cfg.seed + state.step)
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + state.step)
    net = Painter(cfg.net)
    init_weights(net)
    net.to(device)
    dev_brushes = brushes.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    if saved is not None:
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
    net.train()
    budget = cfg.minutes * 60
    t0, run_avg = time.time() - state.elapsed, {}
    while state.elapsed < budget and state.step < cfg.max_steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(cfg.lr, state.elapsed / budget)
        batch = [t.to(device) for t in synthetic_batch(cfg.batch_size, cfg.net.total_strokes, brushes, gen)]
        loss, rec = training_losses(net, batch, dev_brushes, cfg)
        opt.zero_grad(set_to_none=True)
        loss["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        state.step += 1
        state.elapsed = time.time() - t0
        _record(state, run_avg, loss, opt.param_groups[0]["lr"], cfg.minutes, log)
        if state.step % save_every == 0:
            _save_all(ckpt, net, opt, state, cfg, export)
        if state.step % preview_every == 0:
            _save_preview(out / f"preview_{state.step:06d}.png", *(t.cpu() for t in (batch[0], batch[1], rec.detach())))
    _save_all(ckpt, net, opt, state, cfg, export)
    return net.cpu().eval()


def _save_all(ckpt: Path, net, opt, state, cfg, export: Path | None) -> None:
    save_checkpoint(ckpt, net, opt, state, cfg)
    if export is not None:
        export_weights(net, export)


def _save_preview(path: Path, old, target, rec) -> None:
    from PIL import Image

    Image.fromarray(preview_image(old, target, rec)).save(path)
