"""CUT / FastCUT / QS-Attn training on unpaired folders, with the official recipe and file layout.

One iteration is the official `optimize_parameters`: G(A) (and G(B) for identity NCE), an LSGAN
step of the PatchGAN D, then one step of G and netF on GAN + PatchNCE. Checkpoints are the
official `latest_net_{G,D,F}.pth` state_dicts (a run here loads in the official test script and
vice versa); `train_state.pt` adds what the official code does not keep (optimizers, counters, and
the random streams: torch's (patch ids), the flip-equivariance draw, the data's order, B picks, crops
and flips), so a resume on CPU is bit-exact with an uninterrupted run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stylefarm.errors import Cancelled, WeightsError, uninterrupted
from stylefarm.plugins._training import (
    CancelledAndSaved,
    differences,
    random_state,
    refuse_other_setup,
    restore_random_state,
    taken,
)

from .data import UnpairedData
from .model import NLayerDiscriminator, PatchSampleF, ResnetGenerator, fitting_config, mismatch_summary
from .ops import patch_nce_loss

MODE_DEFAULTS = {  # official per-mode defaults (cut_model.py / qs_model.py)
    "cut": {"nce_idt": True, "lambda_NCE": 1.0, "flip_equivariance": False, "n_epochs": 200, "n_epochs_decay": 200},
    "fastcut": {"nce_idt": False, "lambda_NCE": 10.0, "flip_equivariance": True, "n_epochs": 150,
                "n_epochs_decay": 50},
    "qsattn": {"nce_idt": True, "lambda_NCE": 1.0, "flip_equivariance": False, "n_epochs": 200,
               "n_epochs_decay": 200},
}
# A resume keeps what defines the networks and their losses; the run-time settings may change (and are taken).
RUN_TIME = ("lr", "batch_size", "load_size", "crop_size", "no_flip", "n_epochs", "n_epochs_decay")
LOSS_KEYS = ("lambda_GAN", "lambda_NCE", "nce_idt", "flip_equivariance", "num_patches", "nce_T", "beta1", "beta2")
NET_FILES = {"G": "latest_net_G.pth", "D": "latest_net_D.pth", "F": "latest_net_F.pth"}
STATE_FILE = "train_state.pt"
NOT_BIT_EXACT = ("note: {} has no random-number state (written by an older stylefarm): this resume continues the "
                 "run but is not bit-exact with an uninterrupted one")


@dataclass
class TrainConfig:
    """Official option names and defaults (train_options.py, base_options.py, cut_model.py)."""

    mode: str = "cut"
    qs_mode: str = "global"
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    n_layers_D: int = 3
    norm: str = "instance"
    load_size: int = 286
    crop_size: int = 256
    no_flip: bool = False
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_epochs: int = 200
    n_epochs_decay: int = 200
    lambda_GAN: float = 1.0
    lambda_NCE: float = 1.0
    nce_idt: bool = True
    flip_equivariance: bool = False
    nce_layers: list[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])
    num_patches: int = 256
    nce_T: float = 0.07
    netF_nc: int = 256
    init_gain: float = 0.02
    seed: int = 0

    @classmethod
    def for_mode(cls, mode: str, **overrides) -> TrainConfig:
        """Mode defaults, then the caller's explicit (not None) overrides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{"mode": mode, **MODE_DEFAULTS[mode], **given})

    def model(self) -> dict:
        """What a resume must keep: the networks and the losses they are trained on."""
        return {**self.architecture(), **{k: getattr(self, k) for k in LOSS_KEYS}}

    def architecture(self) -> dict:
        keys = ("mode", "qs_mode", "ngf", "n_blocks", "ndf", "n_layers_D", "norm", "nce_layers", "netF_nc")
        return {k: getattr(self, k) for k in keys}


@dataclass
class TrainState:
    epoch: int = 1
    epoch_iter: int = 0
    total_iters: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)  # [total_iters, elapsed, {loss: value}]


def init_weights(net: torch.nn.Module, gain: float) -> None:
    """Official default `--init_type xavier --init_gain 0.02` (biases 0, BatchNorm N(1, gain))."""
    for mod in net.modules():
        name = type(mod).__name__
        if hasattr(mod, "weight") and ("Conv" in name or "Linear" in name):
            torch.nn.init.xavier_normal_(mod.weight, gain=gain)
            if getattr(mod, "bias", None) is not None:
                torch.nn.init.zeros_(mod.bias)
        elif "BatchNorm2d" in name:
            torch.nn.init.normal_(mod.weight, 1.0, gain)
            torch.nn.init.zeros_(mod.bias)


class CUTTrainer:
    """The three networks, their optimizers and one official training iteration."""

    def __init__(self, cfg: TrainConfig, device: str = "cpu"):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)
        self.G = ResnetGenerator(cfg.ngf, cfg.n_blocks, cfg.norm)
        self.D = NLayerDiscriminator(cfg.ndf, cfg.n_layers_D, cfg.norm)
        with torch.no_grad():
            channels = [f.shape[1] for f in self.G.encode(torch.zeros(1, 3, 64, 64), cfg.nce_layers)]
        qs = cfg.qs_mode if cfg.mode == "qsattn" else None
        self.F = PatchSampleF(channels, cfg.netF_nc, qs_mode=qs)
        for net in (self.G, self.D, self.F):
            init_weights(net, cfg.init_gain)
            net.to(device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt = {name: torch.optim.Adam(getattr(self, name).parameters(), lr=cfg.lr, betas=betas)
                    for name in ("G", "D", "F")}
        self.rng = np.random.default_rng(cfg.seed)  # the flip-equivariance draw; patch ids use torch's generator

    def lr_factor(self, epoch: int) -> float:
        """Official linear policy: constant for n_epochs, then linearly to ~0 over n_epochs_decay."""
        return 1.0 - max(0, epoch - self.cfg.n_epochs) / float(self.cfg.n_epochs_decay + 1)

    def set_lr(self, epoch: int) -> None:
        for opt in self.opt.values():
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr * self.lr_factor(epoch)

    def nce_loss(self, src: torch.Tensor, tgt: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between G's features of the source and of its translation, averaged over layers."""
        cfg = self.cfg
        feat_q = self.G.encode(tgt, cfg.nce_layers)
        if flipped:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        if cfg.mode == "qsattn":  # QS attention rows come from the source features and carry gradients
            feat_k = self.G.encode(src, cfg.nce_layers)
        else:  # CUT detaches the keys inside the loss: no graph needed (same values, same gradients)
            with torch.no_grad():
                feat_k = self.G.encode(src, cfg.nce_layers)
        k_pool, selection = self.F(feat_k, cfg.num_patches)
        q_pool, _ = self.F(feat_q, cfg.num_patches, selection)
        total = sum(patch_nce_loss(q, k, src.shape[0], cfg.nce_T).mean() * cfg.lambda_NCE
                    for q, k in zip(q_pool, k_pool))
        return total / len(cfg.nce_layers)

    def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """One official iteration (D step, then G+F step); returns the loss values."""
        cfg = self.cfg
        real_a, real_b = real_a.to(self.device), real_b.to(self.device)
        real = torch.cat([real_a, real_b]) if cfg.nce_idt else real_a
        flipped = cfg.flip_equivariance and self.rng.random() < 0.5
        fake = self.G(torch.flip(real, [3]) if flipped else real)
        fake_b = fake[: real_a.shape[0]]
        losses = self._d_step(fake_b, real_b)
        self.D.requires_grad_(False)
        self.opt["G"].zero_grad(set_to_none=True)
        self.opt["F"].zero_grad(set_to_none=True)
        pred = self.D(fake_b)
        loss_gan = F.mse_loss(pred, torch.ones_like(pred)) * cfg.lambda_GAN
        loss_nce = self.nce_loss(real_a, fake_b, flipped)
        losses.update(G_GAN=loss_gan.item(), NCE=loss_nce.item())
        if cfg.nce_idt:
            loss_nce_y = self.nce_loss(real_b, fake[real_a.shape[0]:], flipped)
            losses["NCE_Y"] = loss_nce_y.item()
            loss_nce = (loss_nce + loss_nce_y) * 0.5
        loss_g = loss_gan + loss_nce
        loss_g.backward()
        self.opt["G"].step()
        self.opt["F"].step()
        losses["G"] = loss_g.item()
        self.last = (real_a.detach(), fake_b.detach(), real_b.detach())
        return losses

    def _d_step(self, fake_b: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        """LSGAN discriminator update: fakes to 0, reals to 1, averaged."""
        self.D.requires_grad_(True)
        self.opt["D"].zero_grad(set_to_none=True)
        pred_fake = self.D(fake_b.detach())
        pred_real = self.D(real_b)
        loss_fake = F.mse_loss(pred_fake, torch.zeros_like(pred_fake))
        loss_real = F.mse_loss(pred_real, torch.ones_like(pred_real))
        ((loss_fake + loss_real) * 0.5).backward()
        self.opt["D"].step()
        return {"D_real": loss_real.item(), "D_fake": loss_fake.item()}


# ---------------------------------------------------------------- checkpoints
def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_checkpoint(out: Path, trainer: CUTTrainer, state: TrainState, data: UnpairedData) -> None:
    """Official layout (CPU state_dicts, official keys) plus our resume state, random streams included."""
    out.mkdir(parents=True, exist_ok=True)
    for name, filename in NET_FILES.items():
        net = getattr(trainer, name)
        _atomic_save({k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, out / filename)
    _atomic_save({"config": asdict(trainer.cfg), "state": asdict(state),
                  "optimizers": {k: o.state_dict() for k, o in trainer.opt.items()},
                  "rng": random_state(trainer.device, {"flip": trainer.rng}), "data": data.state()}, out / STATE_FILE)


def _load_net(net: torch.nn.Module, path: Path, name: str, cfg: TrainConfig) -> None:
    """Strict load with a one-line error naming the mismatch (and the fitting G config)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        hint = ""
        if name == "G":
            fits = fitting_config(state)
            hint = "; it fits " + (", ".join(f"--{k.replace('_', '-')} {v}" for k, v in fits.items())
                                   if fits else "no CUT generator config")
        raise WeightsError(f"checkpoint {path} does not fit net{name} of this run (mode {cfg.mode}, ngf {cfg.ngf}, "
                           f"n_blocks {cfg.n_blocks}): {mismatch_summary(state, expected)}{hint}")
    net.load_state_dict(state, strict=True)


def _flag(key: str) -> str:
    return "--" + key.lower().replace("_", "-")


def resume(out: Path, trainer: CUTTrainer, data: UnpairedData, log=print) -> TrainState:
    """Continue from out/: networks from the official files, counters, optimizers and random streams from
    train_state.pt.

    Another network or loss setup is refused in one line; new run-time settings (lr, sizes, epochs)
    are taken and said so. Official checkpoints without our state file are a starting point (epoch 1);
    a state file without random streams (older stylefarm) resumes, with a note that it is not bit-exact.
    """
    if not (out / NET_FILES["G"]).is_file():
        return TrainState()
    saved = None
    if (out / STATE_FILE).is_file():
        saved = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)
        before, now = saved["config"], asdict(trainer.cfg)
        refuse_other_setup(str(out), differences(before, now, trainer.cfg.model(), _flag))
    for name, filename in NET_FILES.items():
        if (out / filename).is_file():
            _load_net(getattr(trainer, name), out / filename, name, trainer.cfg)
    if saved is None:
        return TrainState()
    for name, opt in trainer.opt.items():
        opt.load_state_dict(saved["optimizers"][name])
    if "rng" in saved:
        restore_random_state(saved["rng"], {"flip": trainer.rng}, trainer.device)
        data.restore(saved["data"])
    else:
        log(NOT_BIT_EXACT.format(out / STATE_FILE))
    state = TrainState(**{f.name: saved["state"][f.name] for f in fields(TrainState)})
    log(f"resuming {out} at epoch {state.epoch}, iteration {state.total_iters} (--fresh to start over)"
        f"{taken(before, now, RUN_TIME, _flag)}")
    return state


def export_generator(out: Path, dest: Path, half: bool = True) -> Path:
    """Copy latest_net_G.pth to `dest`, in float16 when `half` (what the package ships)."""
    state = torch.load(out / NET_FILES["G"], map_location="cpu", weights_only=True)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(state, dest)
    return dest


# ---------------------------------------------------------------- loop
@dataclass
class LoopLimits:
    max_minutes: float = 0.0  # 0 = no time budget
    max_iters: int = 0  # 0 = until the last epoch
    save_every: int = 500
    preview_every: int = 500
    print_every: int = 100


def _preview(path: Path, trainer: CUTTrainer) -> None:
    """real_A | fake_B | real_B of the last iteration, first image of the batch."""
    from PIL import Image

    row = torch.cat([t[0] for t in trainer.last], dim=2)
    pixels = ((row.clamp(-1, 1) + 1) / 2 * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(pixels).save(path)


def _log_line(state: TrainState, losses: dict[str, float], window: list[float], epochs: int) -> str:
    speed = np.mean(window) if window else 0.0
    terms = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
    return f"epoch {state.epoch}/{epochs} iter {state.total_iters} ({speed:.2f} s/it) {terms}"


def train(cfg: TrainConfig, data: UnpairedData, out: Path, limits: LoopLimits, device: str = "cpu",
          fresh: bool = False, log=print) -> TrainState:
    """Train until the last epoch, `max_iters` or `max_minutes`; resumable from `out`."""
    from tqdm import tqdm

    trainer = CUTTrainer(cfg, device)
    state = TrainState() if fresh else resume(out, trainer, data, log)
    epochs = cfg.n_epochs + cfg.n_epochs_decay
    bar = tqdm(total=limits.max_iters or epochs * len(data), initial=state.total_iters, unit="it",
               disable=None, leave=False)
    try:
        _loop(trainer, data, out, state, limits, epochs, bar, log)
    except Cancelled as exc:  # SIGINT/SIGTERM after a finished iteration: keep it, say how to go on
        bar.close()
        save_checkpoint(out, trainer, state, data)
        raise CancelledAndSaved(exc.signum, f"cancelled by {exc.signal} at iteration {state.total_iters}: saved "
                                f"{out / NET_FILES['G']} and {STATE_FILE}; rerun the same command to resume") from None
    bar.close()
    save_checkpoint(out, trainer, state, data)
    return state


def _loop(trainer: CUTTrainer, data: UnpairedData, out: Path, state: TrainState, limits: LoopLimits, epochs: int,
          bar, log) -> None:
    """Epochs until the last, or a budget; a signal waits for the iteration (and its checkpoint) to end.

    The batch is drawn inside the iteration's uninterruptible section: a checkpoint never holds random
    streams advanced by a batch that was not trained on (a resume would then not be bit-exact)."""
    cfg = trainer.cfg
    t0, window, stop = time.time() - state.elapsed, [], False
    while state.epoch <= epochs and not stop:
        trainer.set_lr(state.epoch)
        load = cfg.crop_size if state.epoch > cfg.n_epochs else cfg.load_size  # official fine-tuning phase
        batches = data.epoch(load, skip=state.epoch_iter)
        while not stop:
            with uninterrupted():
                batch = next(batches, None)
                if batch is None:
                    break
                tick = time.time()
                losses = trainer.step(*batch)
                state.total_iters += 1
                state.epoch_iter += 1
                state.elapsed = time.time() - t0
                window = (window + [time.time() - tick])[-20:]
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                stop = _after_iteration(out, trainer, data, state, losses, window, limits, epochs, log)
        if not stop:
            with uninterrupted():  # both counters or neither
                state.epoch, state.epoch_iter = state.epoch + 1, 0


def _after_iteration(out, trainer, data, state, losses, window, limits: LoopLimits, epochs: int, log) -> bool:
    """History, log line, checkpoint and preview; True when a budget is spent."""
    if state.total_iters <= 200 or state.total_iters % limits.print_every == 0:  # bounded size on long runs
        state.history.append([state.total_iters, round(state.elapsed, 2), {k: round(v, 5) for k, v in losses.items()}])
    if state.total_iters % limits.print_every == 0:
        log(_log_line(state, losses, window, epochs))
    if limits.save_every and state.total_iters % limits.save_every == 0:
        save_checkpoint(out, trainer, state, data)
    if limits.preview_every and state.total_iters % limits.preview_every == 0:
        out.mkdir(parents=True, exist_ok=True)
        _preview(out / f"preview_{state.total_iters:06d}.png", trainer)
    if limits.max_iters and state.total_iters >= limits.max_iters:
        return True
    return bool(limits.max_minutes) and state.elapsed >= limits.max_minutes * 60
