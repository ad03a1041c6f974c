"""`stylefarm train fast-style`: train a feed-forward style net, or add styles to one (e.g. cin26)."""

from __future__ import annotations

from pathlib import Path

import click

from stylefarm.plugins._training import COUNT, NON_NEGATIVE, POSITIVE, ZERO_OR_MORE

PATHS = click.Path(exists=True, path_type=Path)
SIZE = click.IntRange(min=16)  # px: below this the net's two stride-2 convs leave nothing


@click.command("fast-style")
@click.option("--content", "content", multiple=True, required=True, type=PATHS,
              help="content images: a folder (searched recursively), image files or videos; repeatable")
@click.option("--style", "styles", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="style image; repeat for a multi-style (conditional IN) net")
@click.option("--add-style", "add_styles", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="with --base: new style image(s); only their gamma/beta rows are trained")
@click.option("--base", default=None, help="net to extend with --add-style: cin26, fast_style/<name> or a file")
@click.option("--preset", type=click.Choice(["johnson", "magenta"]), default="johnson", show_default=True,
              help="recipe: johnson = pytorch/examples (VGG-16, 1e5/1e10, Gram/CHW); magenta = image_stylization")
@click.option("--loss-net", type=click.Choice(["vgg16", "vgg19", "inception"]), default=None,
              help="loss network (default: the preset's, vgg16); inception = MobileNetV2 style trunk, offline")
@click.option("--loss-net-weights", default=None, help="loss network file or weights-manager name")
@click.option("--net", type=click.Choice(["johnson", "magenta", "cin26"]), default=None,
              help="layout of a fresh net (default: the preset's; cin26 = width 32, 6 blocks: ~20x cheaper)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/fast_style"),
              show_default=True, help="checkpoint (last.pt), previews and the exported net")
@click.option("--name", default=None, help="name of the trained net (default: the first style's file stem)")
@click.option("--install/--no-install", default=True, show_default=True,
              help="also install the net in the weights cache as fast_style/NAME")
@click.option("--crop", type=SIZE, default=None, help="square training crops in px (preset: 256)")
@click.option("--batch-size", type=COUNT, default=None, help="preset: johnson 4, magenta 16")
@click.option("--lr", type=POSITIVE, default=None, help="Adam learning rate (preset: 1e-3)")
@click.option("--content-weight", type=NON_NEGATIVE, default=None)
@click.option("--style-weight", type=NON_NEGATIVE, default=None)
@click.option("--tv-weight", type=NON_NEGATIVE, default=None, help="total variation weight (preset: 0)")
@click.option("--style-size", type=ZERO_OR_MORE, default=None, help="short side of style images; 0 = as is")
@click.option("--max-steps", type=COUNT, default=40000, show_default=True, help="total steps (resume counts on)")
@click.option("--max-minutes", type=NON_NEGATIVE, default=0.0, help="time budget of this run; 0 = none")
@click.option("--checkpoint-every", type=COUNT, default=200, show_default=True)
@click.option("--preview-every", type=ZERO_OR_MORE, default=500, show_default=True, help="0 = no previews")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda[:N] or auto")
@click.option("--threads", type=ZERO_OR_MORE, default=0, help="torch CPU threads (0 = torch default)")
@click.option("--fresh", is_flag=True, help="ignore a checkpoint in --out instead of resuming")
@click.option("--seed", type=int, default=42, show_default=True)
def train_command(**kw) -> None:
    """Train a feed-forward style net on any images; resumes from OUT/last.pt.

    \b
    Examples:
      stylefarm train fast-style --content photos/ --style starry.jpg --max-minutes 60
      stylefarm train fast-style --content clip.mp4 --style a.jpg --style b.jpg --preset magenta
      stylefarm train fast-style --content photos/ --base cin26 --add-style my_style.jpg --crop 192

    Writes OUT/NAME.pt (fp16; use it as the fast_style step's `weights:`, or `fast_style/NAME` once
    installed), OUT/last.pt (resume state) and OUT/preview_*.png (content | stylized per style).

    Rerunning with the same OUT resumes (bit-exact on CPU with the same settings and
    --threads); another style file, net layout or loss setting is refused
    (--fresh starts over), a new --lr, --crop or --batch-size is taken and said so. SIGINT/SIGTERM
    finish the current step, save last.pt and exit 130/143.
    """
    from stylefarm.errors import StylefarmError
    from stylefarm.plugins._training import saved_on_signals

    try:
        with saved_on_signals():
            _train(**kw)
    except StylefarmError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = exc.exit_code  # 2: the arguments or inputs, 1: the environment (a missing file)
        raise error from None


def _train(content, styles, add_styles, base, preset, loss_net, loss_net_weights, net, out_dir, name, install,
           crop, batch_size, lr, content_weight, style_weight, tv_weight, style_size, max_steps, max_minutes,
           checkpoint_every, preview_every, device, threads, fresh, seed) -> None:
    import torch

    from stylefarm.plugins.fast_style.train import TrainJob, recipe_for, train

    _check_arguments(styles, add_styles, base, net)
    name = _net_name(name, list(add_styles or styles), install)
    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"  # untested on CUDA here (no GPU on this machine)
    images = list(add_styles or styles)
    recipe = recipe_for(preset, loss_net, crop=crop, batch_size=batch_size, lr=lr, content_weight=content_weight,
                        style_weight=style_weight, tv_weight=tv_weight, style_size=style_size, net=net)
    base_net = _load_base(base) if base else None
    job = TrainJob(content=list(content), styles=images, out=out_dir, recipe=recipe, base=base_net,
                   max_steps=max_steps, max_minutes=max_minutes, checkpoint_every=checkpoint_every,
                   preview_every=preview_every, device=device, seed=seed, loss_net_weights=loss_net_weights,
                   style_names=style_names(images, base_net.config.style_names() if base_net else []),
                   export=out_dir / f"{name}.pt")
    trained = train(job, resume=not fresh, log=click.echo, progress=_tty())
    click.echo(f"done: {job.export} ({job.export.stat().st_size / 1e6:.1f} MB, styles "
               f"{', '.join(trained.config.style_names())})")
    if install:
        from stylefarm.plugins.fast_style import install_net

        click.echo(f"installed as weights `fast_style/{name}`: {install_net(name, job.export, trained.config)}")


def _check_arguments(styles: tuple[Path, ...], add_styles: tuple[Path, ...], base: str | None, net: str | None) -> None:
    """Refuse, before anything loads, a command that cannot mean one training run."""
    from stylefarm.plugins._training import ArgumentError
    from stylefarm.plugins.fast_style.train import style_ids

    if bool(base) != bool(add_styles) or (base and styles) or not (styles or add_styles):
        raise ArgumentError("give --style IMAGE (a new net), or --base NET with --add-style IMAGE (extend a net)")
    if base and net:
        raise ArgumentError(f"--net {net} with --base {base}: the base net has its own layout; leave out --net")
    images = list(add_styles or styles)
    ids = style_ids(images)
    for i, key in enumerate(ids):
        if key in ids[:i]:
            raise ArgumentError(f"style {images[i]} is given twice (same picture as {images[ids.index(key)]}); "
                                "give each style once")


def _net_name(name: str | None, images: list[Path], install: bool) -> str:
    """--name, or the first style's stem as a plain word; with --install not a name another net ships under."""
    from stylefarm.plugins._training import check_weights_name, plain_name
    from stylefarm.plugins.fast_style import SHIPPED, installed_nets

    name = name or plain_name(images[0].stem)
    own = {w.name for w in installed_nets()} - {w.name for w in SHIPPED}  # retraining your own net replaces it
    check_weights_name("--name", "fast_style", name, own if install else {f"fast_style/{name}"})
    return name


def style_names(images: list[Path], taken: list[str]) -> list[str]:
    """File stems as style names, `_2`, `_3` added where two files (or a base net's style) share a stem."""
    names: list[str] = []
    for path in images:
        name, n = path.stem, 1
        while name in names or name in taken:
            n += 1
            name = f"{path.stem}_{n}"
        names.append(name)
    return names


def _load_base(base: str):
    """The net that --add-style extends, loaded exactly as the step loads `weights:`."""
    from stylefarm.plugins.fast_style.step import FastStyleOptions, load_net

    return load_net(FastStyleOptions(weights=base)).float()


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()
