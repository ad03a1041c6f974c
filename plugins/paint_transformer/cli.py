"""`stylefarm train paint-transformer`: self-train a stroke predictor on synthetic strokes."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("paint-transformer")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/paint_transformer"), show_default=True,
              help="checkpoints (last.pt), previews and the exported weights go here")
@click.option("--minutes", type=float, default=60.0, show_default=True, help="time budget (learning rate follows it)")
@click.option("--max-steps", type=int, default=10**9, help="stop after this many steps")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--hidden", type=int, default=128, show_default=True, help="transformer width (official: 256)")
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
@click.option("--brushes", "brush_paths", nargs=2, type=click.Path(exists=True, dir_okay=False), default=None,
              help="train with these brushes (vertical.png horizontal.png) instead of the shipped ones")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] (data is drawn on the CPU)")
@click.option("--fresh", is_flag=True, help="ignore an existing checkpoint in --out instead of resuming")
@click.option("--seed", type=int, default=0, show_default=True)
def train_command(out_dir, minutes, max_steps, batch_size, hidden, lr, threads, brush_paths, device, fresh, seed):
    """Self-train Paint Transformer on random strokes; resumes from OUT/last.pt.

    Example: stylefarm train paint-transformer --minutes 60 --out runs/pt

    Writes OUT/paint_transformer_sf.pt (fp16, load it with the step's `weights:` option),
    OUT/last.pt (resume state) and OUT/preview_*.png (canvas | target | repainted).
    """
    import torch

    from .loading import pair, read_brush, shipped_brushes
    from .model import PainterConfig
    from .train import TrainConfig, train

    if threads:
        torch.set_num_threads(threads)
    heads = 8 if hidden >= 256 else 4
    net = PainterConfig(hidden_dim=hidden, n_heads=heads, n_enc_layers=2 if hidden < 256 else 3,
                        n_dec_layers=2 if hidden < 256 else 3, dim_feedforward=4 * hidden, dropout=0.0,
                        param_act="sigmoid", anchors=True)
    cfg = TrainConfig(net=net, batch_size=batch_size, lr=lr, minutes=minutes, max_steps=max_steps, seed=seed)
    brushes = pair(*(read_brush(Path(p)) for p in brush_paths)) if brush_paths else shipped_brushes()
    export = out_dir / "paint_transformer_sf.pt"
    train(cfg, out_dir, brushes, resume=not fresh, log=click.echo, export=export, device=device)
    click.echo(f"done: weights in {export}")
