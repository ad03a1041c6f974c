"""`stylefarm train cut`: CUT / FastCUT / QS-Attn on two unpaired folders (official defaults)."""

from __future__ import annotations

from pathlib import Path

import click

from stylefarm.plugins._training import COUNT, NON_NEGATIVE, POSITIVE, ZERO_OR_MORE

DIR = click.Path(file_okay=False, path_type=Path)


@click.command("cut")
@click.option("--a", "dir_a", type=DIR, required=True, help="domain A: images and/or videos (source)")
@click.option("--b", "dir_b", type=DIR, required=True, help="domain B: images and/or videos (target look)")
@click.option("--out", type=DIR, default=Path("runs/cut"), show_default=True,
              help="checkpoints (latest_net_G/D/F.pth, train_state.pt) and previews")
@click.option("--mode", type=click.Choice(["cut", "fastcut", "qsattn"]), default="cut", show_default=True)
@click.option("--qs-mode", type=click.Choice(["global", "local", "local_global"]), default="global",
              show_default=True, help="QS-Attn attention (only with --mode qsattn)")
@click.option("--ngf", type=COUNT, default=64, show_default=True)
@click.option("--n-blocks", type=COUNT, default=9, show_default=True, help="ResNet blocks (9 = resnet_9blocks)")
@click.option("--ndf", type=COUNT, default=64, show_default=True)
@click.option("--load-size", type=click.IntRange(min=4), default=286, show_default=True)
@click.option("--crop-size", type=click.IntRange(min=4), default=256, show_default=True)
@click.option("--no-flip", is_flag=True, help="no random horizontal flips")
@click.option("--batch-size", type=COUNT, default=1, show_default=True)
@click.option("--lr", type=POSITIVE, default=2e-4, show_default=True)
@click.option("--n-epochs", type=COUNT, default=None, help="epochs at the initial lr (default 200; FastCUT 150)")
@click.option("--n-epochs-decay", type=ZERO_OR_MORE, default=None,
              help="epochs of linear decay (default 200; FastCUT 50)")
@click.option("--lambda-nce", type=NON_NEGATIVE, default=None, help="default 1 (CUT, QS-Attn), 10 (FastCUT)")
@click.option("--nce-idt/--no-nce-idt", default=None, help="identity NCE on G(B) (default: on except FastCUT)")
@click.option("--num-patches", type=COUNT, default=256, show_default=True)
@click.option("--nce-t", type=POSITIVE, default=0.07, show_default=True)
@click.option("--max-minutes", type=NON_NEGATIVE, default=0.0,
              help="stop (and save) after this much training time")
@click.option("--max-iters", type=ZERO_OR_MORE, default=0, help="stop after this many iterations in total")
@click.option("--preview-every", type=ZERO_OR_MORE, default=500, show_default=True,
              help="iterations between previews")
@click.option("--save-every", type=ZERO_OR_MORE, default=500, show_default=True,
              help="iterations between checkpoints")
@click.option("--print-every", type=COUNT, default=100, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N]")
@click.option("--threads", type=ZERO_OR_MORE, default=0, help="torch CPU threads (0 = torch default)")
@click.option("--video-frames", type=COUNT, default=200, show_default=True, help="frames sampled per video file")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="start over instead of resuming from --out")
@click.option("--register", "register_as", default=None, metavar="NAME",
              help="afterwards copy latest_net_G.pth into the weights cache as cut/NAME (step option model: cut/NAME)")
def train_command(dir_a, dir_b, out, mode, qs_mode, ngf, n_blocks, ndf, load_size, crop_size, no_flip, batch_size,
                  lr, n_epochs, n_epochs_decay, lambda_nce, nce_idt, num_patches, nce_t, max_minutes, max_iters,
                  preview_every, save_every, print_every, device, threads, video_frames, seed, fresh, register_as):
    """Train a CUT, FastCUT or QS-Attn translator from unpaired folders A and B; resumes from --out.

    Example: stylefarm train cut --mode qsattn --a photos/ --b paintings/ --out runs/p2p --max-minutes 60

    Defaults are the official ones (load 286, crop 256, Adam 2e-4 (0.5, 0.999), batch 1, LSGAN,
    PatchGAN D, 256 patches on layers 0,4,8,12,16, nce_T 0.07). The generator file
    OUT/latest_net_G.pth works in the `cut` step (`weights: {G: OUT/latest_net_G.pth}`, same ngf/n_blocks)
    and in the official test.py.

    Rerunning with the same --out resumes (bit-exact on CPU with the same settings and
    --threads); another network or loss setting is refused (--fresh starts
    over), a new --lr, --batch-size, --load-size/--crop-size, --no-flip or epoch count is taken and said
    so. SIGINT/SIGTERM finish the current iteration, save the checkpoint and exit 130/143.
    """
    import torch

    from stylefarm.plugins._training import saved_on_signals

    from .data import ImageFolder, UnpairedData
    from .train import LoopLimits, TrainConfig, train

    if load_size < crop_size or crop_size % 4:
        raise click.BadParameter(f"--crop-size {crop_size} must be a multiple of 4 and at most --load-size "
                                 f"{load_size}", param_hint="--crop-size")
    if register_as:
        _check_register_name(register_as)
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig.for_mode(mode, qs_mode=qs_mode, ngf=ngf, n_blocks=n_blocks, ndf=ndf, load_size=load_size,
                               crop_size=crop_size, no_flip=no_flip, batch_size=batch_size, lr=lr, n_epochs=n_epochs,
                               n_epochs_decay=n_epochs_decay, lambda_NCE=lambda_nce, nce_idt=nce_idt,
                               num_patches=num_patches, nce_T=nce_t, seed=seed)
    a, b = ImageFolder(dir_a, "--a", video_frames), ImageFolder(dir_b, "--b", video_frames)
    data = UnpairedData(a, b, batch_size, crop_size, not no_flip, seed)
    click.echo(f"{mode}: {len(a)} A / {len(b)} B frames, {len(data)} iterations per epoch -> {out}")
    limits = LoopLimits(max_minutes, max_iters, save_every, preview_every, print_every)
    with saved_on_signals():
        state = train(cfg, data, out, limits, device=device, fresh=fresh, log=click.echo)
    click.echo(f"done: {state.total_iters} iterations, {state.elapsed / 60:.1f} min; "
               f"generator {out / 'latest_net_G.pth'}")
    if register_as:
        _register(out, register_as)


def _check_register_name(name: str) -> None:
    """Before training: a plain word that no plugin registers as cut/NAME (re-registering your own is fine)."""
    from stylefarm.plugins._training import ArgumentError, check_weights_name

    from . import _trained_models

    if name in ("G", "demo"):  # reserved even where the demo file is not installed
        raise ArgumentError(f"--register {name!r}: cut/{name} is a reserved weights name; choose another --register")
    check_weights_name("--register", "cut", name, {w.name for w in _trained_models()})


def _register(out: Path, name: str) -> None:
    """Make the trained generator the weights-manager entry cut/NAME (the name was checked before training)."""
    import shutil

    from stylefarm.weights import cache_dir

    dest = cache_dir() / f"cut__{name}" / "latest_net_G.pth"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(out / "latest_net_G.pth", tmp)
    tmp.replace(dest)
    click.echo(f"registered as cut/{name} ({dest}); use it with `model: cut/{name}`")
