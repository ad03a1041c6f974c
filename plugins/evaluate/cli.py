"""`stylefarm eval OUTPUT --source INPUT`: temporal stability and fidelity of a stylized video."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click


def default_report(output: str, suffix: str) -> Path:
    """`out/clip_styled.mp4` -> `out/clip_styled.eval.json`; a folder or pattern -> beside it."""
    path = Path(output)
    if any(ch in path.name for ch in "%#*?["):
        stem = re.split(r"[%#*?\[]", path.name)[0].rstrip("._-") or "frames"
        return path.parent / f"{stem}.eval{suffix}"
    if path.is_dir():
        return path.parent / f"{path.name}.eval{suffix}"
    return path.with_name(f"{path.stem}.eval{suffix}")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.6g}"


def print_table(result: dict) -> None:
    click.echo(f"frames {result['frames']}  pairs {result['pairs']}  shots {len(result['shots'])}")
    for key in ("e_warp", "frame_diff", "input_frame_diff", "ssim", "content_loss", "style_loss"):
        click.echo(f"  {key:<18} {_fmt(result[key])}")
    if result.get("vgg"):
        click.echo(f"  vgg: {result['vgg']}")
    click.echo("  shot  first  last  frames  e_warp")
    for n, shot in enumerate(result["shots"], start=1):
        click.echo(f"  {n:>4}  {shot['first']:>5}  {shot['last']:>4}  {shot['frames']:>6}  {_fmt(shot['e_warp'])}")


@click.command("eval", short_help="Temporal stability of a stylized video (E_warp, SSIM).")
@click.argument("output")
@click.option("--source", required=True, help="the input video / frames the OUTPUT was made from")
@click.option("--style", default=None, type=click.Path(exists=True, dir_okay=False),
              help="style image: adds style loss")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="where to write the JSON (default: beside OUTPUT, NAME.eval.json)")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="per-frame PNG plot (default: beside OUTPUT, NAME.eval.png)")
@click.option("--max-frames", type=click.IntRange(min=2), default=None, help="evaluate the first N frames only")
@click.option("--flow-size", type=click.IntRange(min=16), default=None,
              help="longer side for the flow (default: full resolution, the protocol)")
@click.option("--vgg", default=None, help="VGG-19 file (vgg_normalised.pth or torchvision); default: installed "
              "adain/vgg, else random weights (labelled)")
@click.option("--loss-size", type=click.IntRange(min=32), default=256, show_default=True,
              help="longer side at which VGG losses are computed")
@click.option("--no-perceptual", is_flag=True, help="skip the VGG content/style losses (faster)")
def eval_command(output, source, style, json_path, plot_path, max_frames, flow_size, vgg, loss_size, no_perceptual):
    """Warping error (E_warp, Lai et al. 2018), frame difference, SSIM and VGG losses of OUTPUT.

    OUTPUT and --source are video files, numbered sequences (shot.%04d.png), folders of frames
    or globs; frame t of OUTPUT must be made from frame t of the source.

    \b
    Example:
      stylefarm run workflows/video_temporal.yaml
      stylefarm eval out/video_temporal/testsrc_temporal.mp4 --source workflows/media/testsrc.mp4 --max-frames 24
    """
    from stylefarm.errors import InputError

    from .api import evaluate
    from .plot import plot_per_frame

    try:
        result = evaluate(output, source, style, max_frames=max_frames, perceptual=not no_perceptual, vgg=vgg,
                          loss_size=loss_size, flow_max_side=flow_size)
    except ValueError as exc:  # StylefarmError goes to the CLI's own one-line handler and exit code
        raise InputError(str(exc).splitlines()[0]) from None
    if result.get("unpaired") and max_frames is None:
        raise InputError(f"{output} and {source} differ in length ({result['unpaired']}): frame t of the output is "
                         "scored against frame t of the source, so an output made from a range would be compared "
                         f"with other pictures; give the source the same frames, or --max-frames {result['frames']} "
                         "to score the first pairs anyway")
    print_table(result)
    json_file = Path(json_path) if json_path else default_report(output, ".json")
    json_file.parent.mkdir(parents=True, exist_ok=True)
    json_file.write_text(json.dumps(result, indent=1))
    plot_file = plot_per_frame({Path(output).name: result}, Path(plot_path) if plot_path else
                               default_report(output, ".png"))
    click.echo(f"wrote {json_file} and {plot_file}")
