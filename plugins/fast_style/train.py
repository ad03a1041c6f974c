"""Training feed-forward style nets: Johnson et al.'s recipe (pytorch/examples) and Magenta's (Dumoulin et al.).

Loss for a content crop x, its stylization y = net(x, style s) and loss network phi:
    content_weight * sum_l w_l MSE(phi_l(y), phi_l(x))
  + style_weight   * sum_l w_l MSE(G_l(y), G_l(style image s))        (G: Gram matrix, `gram_norm`)
  + tv_weight      * mean squared neighbour difference of y
Each step draws one style for the whole batch (uniformly among the styles being trained).

`add_style` (Dumoulin et al.'s fine-tuning, Magenta's `image_stylization_finetune`): a new row
is appended to every conditional-IN table and only that row is trained; every other tensor keeps
its bits (their gradients are masked to zero and Adam leaves zero-gradient entries untouched).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from stylefarm.errors import Cancelled, StylefarmError, uninterrupted
from stylefarm.plugins._cin import PRESETS, NetConfig, TransformerNet
from stylefarm.plugins._training import ArgumentError, CancelledAndSaved, differences, refuse_other_setup, taken

# Magenta's VGG-16 sees 0..255 pixels minus the mean (no std): its features are ~255*0.226 = 57.6x
# those of torchvision's VGG-16 on ImageNet-normalised input, so its weights are rescaled by
# that factor squared (content, Gram/HW) and to the fourth (squared Gram differences).
_MAGENTA_SCALE = 255 * 0.226


@dataclass
class Recipe:
    """Loss and optimiser settings; the presets are the official recipes' defaults."""

    loss_net: str = "vgg16"
    content_layers: dict[str, float] = field(default_factory=lambda: {"relu2_2": 1.0})
    style_layers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), 1.0))
    content_weight: float = 1e5
    style_weight: float = 1e10
    tv_weight: float = 0.0
    gram_norm: str = "chw"
    pool: str = "max"
    lr: float = 1e-3
    batch_size: int = 4
    crop: int = 256
    style_size: int = 0  # short side of the style images; 0 = as they are (pytorch/examples default)
    net: str = "johnson"


# A resume must keep the settings that define the net and its loss; these may change (and are taken).
RUN_TIME = ("lr", "batch_size", "crop")
FLAGS = {"loss_net": "--loss-net", "content_layers": "--preset/--loss-net (content layers)",
         "style_layers": "--preset/--loss-net (style layers)", "gram_norm": "--preset (Gram normalisation)",
         "pool": "--preset (pooling)", "crop": "--crop", "batch_size": "--batch-size"}


def _flag(key: str) -> str:
    return FLAGS.get(key, "--" + key.replace("_", "-"))


RECIPES: dict[str, Recipe] = {
    # pytorch/examples fast_neural_style: VGG-16 relu2_2 content 1e5, four style layers 1e10, Gram / CHW
    "johnson": Recipe(),
    # Magenta image_stylization_train: conv3 content 1, conv1..conv4 style 1e-4, Gram / HW, avg pooling,
    # batch 16, square style images at the image size
    "magenta": Recipe(content_layers={"relu3_3": 1.0}, content_weight=1.0 * _MAGENTA_SCALE**2,
                      style_weight=1e-4 * _MAGENTA_SCALE**4, gram_norm="hw", pool="avg", batch_size=16,
                      style_size=256, net="magenta"),
}
# Layers and weights when --loss-net differs from the preset's own network. `inception` (the MobileNetV2
# style trunk at hand offline): per-layer weights ~ 1 / mean(G_style^2) (Gram / CHW) measured on the demo
# style, so each layer counts about equally; content : style set so that returning the content unchanged
# costs ~2x a typical stylization's content loss (scratch/fast_style/calib.py).
LOSS_NET_DEFAULTS: dict[str, dict] = {
    "vgg19": {"content_layers": {"relu4_2": 1.0}, "style_layers": dict.fromkeys(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), 1.0), "gram_norm": "chw"},
    "inception": {"content_layers": {"block9": 1.0}, "content_weight": 1.0, "style_weight": 20.0, "gram_norm": "chw",
                  "style_layers": {"stem": 40.0, "block2": 5.0, "block5": 3.0, "block9": 5.0, "block12": 30.0}},
}


def recipe_for(preset: str, loss_net: str | None = None, **overrides) -> Recipe:
    """A preset, adapted to another loss network, with explicit overrides (None = keep)."""
    if preset not in RECIPES:
        raise StylefarmError(f"unknown preset {preset!r}; choose {', '.join(RECIPES)}")
    recipe = replace(RECIPES[preset])
    if loss_net and loss_net != recipe.loss_net:
        if loss_net not in LOSS_NET_DEFAULTS:
            raise StylefarmError(f"unknown loss network {loss_net!r}; choose vgg16, vgg19 or inception")
        recipe = replace(recipe, loss_net=loss_net, **LOSS_NET_DEFAULTS[loss_net])
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TrainState:
    step: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)


@dataclass
class TrainJob:
    """What to train: a fresh net (styles -> rows) or new rows on a base net (`add_style`)."""

    content: list[Path]
    styles: list[Path]
    out: Path
    recipe: Recipe = field(default_factory=Recipe)
    base: TransformerNet | None = None  # add_style: the net to extend
    max_steps: int = 40000
    max_minutes: float = 0.0  # 0 = no time limit
    checkpoint_every: int = 200
    preview_every: int = 500
    log_every: int = 50
    device: str = "cpu"
    seed: int = 42
    loss_net_weights: str | None = None
    random_loss_net: bool = False  # TEST ONLY
    style_names: list[str] = field(default_factory=list)
    export: Path | None = None  # where the fp16 inference file goes at the end (and at checkpoints)


def new_net(recipe: Recipe, names: list[str], seed: int) -> TransformerNet:
    """A fresh net of the recipe's layout with one style row per style image."""
    torch.manual_seed(seed)
    return TransformerNet(PRESETS[recipe.net].with_styles(names))


def add_style_rows(base: TransformerNet, names: list[str]) -> tuple[TransformerNet, int]:
    """A copy of `base` with one more conditional-IN row per new style, started at the mean row
    (a blend of the known styles); returns it and the index of the first new row."""
    first = base.config.num_styles
    net = TransformerNet(base.config.with_styles(base.config.style_names() + names))
    state = base.state_dict()
    grown = {key: torch.cat([old, old.mean(0, keepdim=True).expand(len(names), -1)])
             if key.endswith((".gamma", ".beta")) else old for key, old in state.items()}
    net.load_state_dict(grown)
    return net, first


def trainable(net: TransformerNet, first_new_row: int | None) -> list[torch.nn.Parameter]:
    """All parameters, or (add_style) only the CIN tables with every row before `first_new_row` masked."""
    if first_new_row is None:
        return list(net.parameters())
    net.requires_grad_(False)
    params = []
    for norm in net.norms():
        for p in (norm.gamma, norm.beta):
            p.requires_grad_(True)
            mask = torch.zeros_like(p)
            mask[first_new_row:] = 1.0
            p.register_hook(lambda g, m=mask: g * m)
            params.append(p)
    return params


class Losses:
    """The loss network, the style targets and the weighted loss terms of one recipe."""

    def __init__(self, recipe: Recipe, style_images: list[np.ndarray], device: str,
                 weights: str | None = None, random_weights: bool = False):
        from stylefarm.plugins._lossnet import gram, load_lossnet

        self.recipe = recipe
        layers = tuple(dict.fromkeys([*recipe.content_layers, *recipe.style_layers]))
        self.net = load_lossnet(recipe.loss_net, weights, layers, random_weights, device, pool=recipe.pool,
                                hints=("with --loss-net-weights", "`--loss-net inception`"))
        self.targets = []
        with torch.no_grad():
            for image in style_images:
                x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)
                feats = self.net(x)
                self.targets.append({k: gram(feats[k], recipe.gram_norm) for k in recipe.style_layers})

    def __call__(self, x: torch.Tensor, y: torch.Tensor, style: int) -> dict[str, torch.Tensor]:
        from stylefarm.plugins._lossnet import content_loss, style_loss, tv_loss

        r = self.recipe
        with torch.no_grad():
            fx = self.net.tapped(x, tuple(r.content_layers))
        fy = self.net(y)
        terms = {
            "content": r.content_weight * content_loss(fy, fx, r.content_layers),
            "style": r.style_weight * style_loss(fy, self.targets[style], "gram", r.style_layers, r.gram_norm),
        }
        if r.tv_weight:
            terms["tv"] = r.tv_weight * tv_loss(y) / y.numel()
        terms["total"] = sum(terms.values())
        return terms


def one_hot(row: int, num_styles: int, batch: int, device) -> torch.Tensor:
    out = torch.zeros(batch, num_styles, device=device)
    out[:, row] = 1.0
    return out


def train(job: TrainJob, resume: bool = True, log=print, progress: bool = False) -> TransformerNet:
    """Train until `max_steps` (in total) or `max_minutes` (this run) are spent; resumes from OUT/last.pt.

    Writes OUT/last.pt (resume state, fp32, with the random streams: a resume on CPU is bit-exact) at every
    checkpoint and at the end, and OUT/preview_<step>.png (content | stylized, one row per trained style)
    every `preview_every` steps.
    """
    from stylefarm.plugins._training import restore_random_state
    from stylefarm.plugins.fast_style.data import ContentSampler, read_style

    job.out.mkdir(parents=True, exist_ok=True)
    ckpt = job.out / "last.pt"
    saved = _load_checkpoint(ckpt, job, log) if resume and ckpt.is_file() else None
    recipe = job.recipe  # a resume checked that the model-defining fields are the checkpoint's
    names = saved["style_names"] if saved else (job.style_names or [p.stem for p in job.styles])
    net, first = _initial_net(job, recipe, names, saved)
    net.to(job.device).train()
    sampler = ContentSampler(job.content, recipe.crop, job.seed)
    losses = Losses(recipe, [read_style(p, recipe.style_size) for p in job.styles], job.device,
                    job.loss_net_weights, job.random_loss_net)
    opt = torch.optim.Adam(trainable(net, first), lr=recipe.lr)
    state = TrainState()
    if saved:
        opt.load_state_dict(saved["optimizer"])
        for group in opt.param_groups:  # a new --lr is taken (the resume line said so)
            group["lr"] = recipe.lr
        sampler.restore(saved["sampler"])  # crops, flips and the style of each batch: all drawn from it
        if "rng" in saved:  # torch's streams (nothing in the loop draws from them today; older files lack them)
            restore_random_state(saved["rng"], {}, job.device)
        state = TrainState(**saved["state"])
    loop = _Loop(job, recipe, net, first, sampler, losses, opt, state, log, progress)
    try:
        loop.run()
    except Cancelled as exc:  # SIGINT/SIGTERM after a finished step: keep it, say how to go on
        loop.close()
        loop.save(ckpt)
        raise CancelledAndSaved(exc.signum, f"cancelled by {exc.signal} at step {state.step}: saved {ckpt}"
                                f"{f' and {job.export}' if job.export else ''}; rerun the same command to resume"
                                ) from None
    loop.save(ckpt)
    return net.eval()


def export(net: TransformerNet, path: Path, recipe: Recipe) -> Path:
    """The file the step loads (fp16: a Johnson net is 3.4 MB), written atomically."""
    from stylefarm.plugins.fast_style.model import net_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save(net_file(net, half=True, recipe=asdict(recipe)), tmp)
    tmp.replace(path)
    return path


def _initial_net(job: TrainJob, recipe: Recipe, names: list[str], saved: dict | None):
    """(net, first trained row or None): from the checkpoint, from a base net plus new rows, or fresh."""
    if saved:
        net = TransformerNet(NetConfig.from_dict(saved["config"]))
        net.load_state_dict(saved["net"])
        return net, saved["first_new_row"]
    if job.base is not None:
        return add_style_rows(job.base, names)
    return new_net(recipe, names, job.seed), None


def style_ids(paths: list[Path]) -> list[str]:
    """What names a style file in a checkpoint: its content's sha256 (the same file by another path is the same)."""
    stats = [Path(p).stat() for p in paths]
    return [_sha256(str(Path(p).resolve()), st.st_size, st.st_mtime_ns) for p, st in zip(paths, stats)]


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Read once per file version: every checkpoint names its styles (a stat, not a re-read)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _load_checkpoint(ckpt: Path, job: TrainJob, log) -> dict:
    """The checkpoint, if this job continues it: same style files (by content), same net and loss; the
    run-time settings (lr, crop, batch size) may differ and the new ones are taken."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    if "style_sha256" in saved:
        same = saved["style_sha256"] == style_ids(job.styles)
    else:  # checkpoints before content ids: by resolved path
        same = [str(Path(p).resolve()) for p in saved["styles"]] == [str(p.resolve()) for p in job.styles]
    if not same:
        raise ArgumentError(f"{ckpt} trains other style files ({', '.join(map(str, saved['styles']))}), not "
                             f"{', '.join(map(str, job.styles))}: use another --out, or --fresh to start over")
    before, now = saved["recipe"], asdict(job.recipe)
    diffs = differences(before, now, [k for k in now if k not in RUN_TIME], _flag)
    if (saved["first_new_row"] is None) != (job.base is None):
        diffs.append("--base: " + ("none there, given now" if job.base is not None else "given there, none now"))
    refuse_other_setup(str(ckpt.parent), diffs)
    log(f"resuming from {ckpt} at step {saved['state']['step']} (--fresh to start over)"
        f"{taken(before, now, RUN_TIME, _flag)}")
    return saved


class _Loop:
    """The training loop's moving parts, so each piece stays short."""

    def __init__(self, job, recipe, net, first, sampler, losses, opt, state, log, progress):
        self.job, self.recipe, self.net, self.first = job, recipe, net, first  # first: None = all trained
        self.sampler, self.losses, self.opt, self.state, self.log = sampler, losses, opt, state, log
        self.rows = list(range(first or 0, net.config.num_styles))
        self.avg: dict[str, float] = {}
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=job.max_steps, initial=state.step, unit="step", dynamic_ncols=True)

    def run(self) -> None:
        """Steps until `max_steps` or the time budget; a signal waits for the step (and its checkpoint) to end."""
        job, state = self.job, self.state
        start = time.time()
        started_at = state.elapsed
        while state.step < job.max_steps:
            if job.max_minutes and time.time() - start >= job.max_minutes * 60:
                self.log(f"time budget of {job.max_minutes:g} min spent at step {state.step}")
                break
            with uninterrupted():
                terms = self.step()
                state.step += 1
                state.elapsed = started_at + time.time() - start
                self.record(terms)
                if state.step % job.checkpoint_every == 0:
                    self.save(job.out / "last.pt")
                if job.preview_every and state.step % job.preview_every == 0:
                    self.preview(job.out / f"preview_{state.step:06d}.png")
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def save(self, ckpt: Path) -> None:
        """The resume checkpoint and (when asked) the exported net, both atomic."""
        self.checkpoint(ckpt)
        if self.job.export is not None:
            export(self.net, self.job.export, self.recipe)

    def step(self) -> dict[str, float]:
        i = int(self.sampler.rng.integers(len(self.rows)))  # one style per batch
        x = self.sampler.batch(self.recipe.batch_size).to(self.job.device)
        y = self.net(x, one_hot(self.rows[i], self.net.config.num_styles, 1, x.device))  # one style per batch
        terms = self.losses(x, y, i)
        self.opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.opt.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def record(self, terms: dict[str, float]) -> None:
        """Running means of the loss terms; a history row and a log line every `log_every` steps."""
        for k, v in terms.items():
            self.avg[k] = v if k not in self.avg else 0.9 * self.avg[k] + 0.1 * v
        text = " ".join(f"{k}={v:.4g}" for k, v in self.avg.items())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        if self.state.step % self.job.log_every == 0 or self.state.step == 1:
            self.state.history.append({"step": self.state.step, "elapsed": round(self.state.elapsed, 1), **terms})
            if self.bar is None:
                self.log(f"step {self.state.step}/{self.job.max_steps} {self.state.elapsed / 60:.1f} min {text}")

    def checkpoint(self, path: Path) -> None:
        """Everything needed to resume, written atomically."""
        from stylefarm.plugins._training import random_state

        data = {"net": self.net.state_dict(), "config": self.net.config.to_dict(), "optimizer": self.opt.state_dict(),
                "state": asdict(self.state), "recipe": asdict(self.recipe), "sampler": self.sampler.state(),
                "rng": random_state(self.job.device, {}),
                "first_new_row": self.first, "styles": [str(p) for p in self.job.styles],
                "style_sha256": style_ids(self.job.styles),
                "style_names": self.net.config.style_names()[self.rows[0]:]}
        tmp = path.with_suffix(".part")
        torch.save(data, tmp)
        tmp.replace(path)

    def preview(self, path: Path) -> None:
        from stylefarm.images import atomic_write_bytes, encode_image

        atomic_write_bytes(path, encode_image(".png", preview_grid(self.net, self.sampler, self.rows), None, 8))


def preview_grid(net: TransformerNet, sampler, rows: list[int], n: int = 4) -> np.ndarray:
    """Rows of [content crops | stylized with each trained style]: fixed crops, so previews compare over time."""
    picks = [i * len(sampler) // n for i in range(min(n, len(sampler)))]
    crops = [_centre_crop(sampler.images[i], sampler.crop) for i in picks]
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy()).to(next(net.parameters()).device)
    lines = [np.concatenate(crops, axis=1)]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for row in rows:
            y = net(x, one_hot(row, net.config.num_styles, len(crops), x.device)).clamp(0, 1)
            lines.append(np.concatenate(list(y.permute(0, 2, 3, 1).cpu().numpy()), axis=1))
    net.train(was_training)
    return np.concatenate(lines, axis=0)


def _centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return image[y:y + size, x:x + size]
