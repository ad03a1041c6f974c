"""`stylefarm train fast-style` steps/s vs a bare loop of pytorch/examples fast_neural_style's recipe (goal >= 1.0x).

    .venv/bin/python benchmarks/fast_style_train_speed.py [--crop 256] [--batch 4] [--steps 5] [--rounds 2] \
        [--official-net scratch/fast_style/official/transformer_net.py]

The official script needs torchvision (its VGG-16 wrapper and data loading), which cannot be
installed here, so the bare loop is written from its facts: Johnson TransformerNet on 0..255
pixels, VGG-16 on ImageNet-normalised y/255 and x/255 (all four style layers computed for both,
as the script does), MSE content loss at relu2_2 x 1e5, Gram/(C*H*W) MSE x 1e10, Adam 1e-3.
`--official-net` runs the official `transformer_net.py` (torch only; from a scratch checkout) in
the bare loop instead of our net. Same VGG-16 layout (random weights: same compute), same thread
count, same device. The bare loop gets ready-made random batches (no JPEG decoding); ours crops
from in-memory images, so the comparison is conservative for us. Time is this process's CPU time
(one thread), so other jobs on a shared machine barely count.
Writes benchmarks/results/fast_style_train_speed.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from stylefarm.plugins._lossnet import LossNet
from stylefarm.plugins.fast_style.train import TrainJob, recipe_for, train

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO / "workflows" / "media"
RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def official_net(path: Path | None):
    """(callable on 0..255 pixels, its parameters): the official TransformerNet, or ours in the same units."""
    if path is None:
        from stylefarm.plugins._cin import PRESETS, TransformerNet

        ours = TransformerNet(PRESETS["johnson"])
        return (lambda x: ours(x / 255.0) * 255.0), ours.parameters()
    spec = importlib.util.spec_from_file_location("official_transformer_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.TransformerNet()
    return net, net.parameters()


def bare_loop(crop: int, batch: int, steps: int, net_path: Path | None) -> float:
    """Seconds per step of the official recipe's loop, written plainly (after one warm-up step)."""
    net, params = official_net(net_path)
    vgg = LossNet("vgg16", LAYERS, random_weights=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    opt = torch.optim.Adam(params, 1e-3)

    def run_vgg(img):  # the official Vgg16 wrapper returns the four relu outputs
        out = vgg.tapped(img, LAYERS)
        return [out[name] for name in LAYERS]

    def gram(f):
        b, c, h, w = f.shape
        flat = f.reshape(b, c, h * w)
        return flat.bmm(flat.transpose(1, 2)) / (c * h * w)

    style = torch.rand(1, 3, crop, crop) * 255
    with torch.no_grad():
        gram_style = [gram(f) for f in run_vgg(((style / 255) - mean) / std)]
    batches = [torch.rand(batch, 3, crop, crop) * 255 for _ in range(steps + 1)]
    start = 0.0
    for i, x in enumerate(batches):
        if i == 1:
            start = time.process_time()
        opt.zero_grad()
        y = net(x)
        fy, fx = run_vgg((y / 255 - mean) / std), run_vgg((x / 255 - mean) / std)
        content = 1e5 * F.mse_loss(fy[1], fx[1])
        style_loss = sum(F.mse_loss(gram(a), g.expand_as(gram(a))) for a, g in zip(fy, gram_style))
        (content + 1e10 * style_loss).backward()
        opt.step()
    return (time.process_time() - start) / steps


def our_loop(crop: int, batch: int, steps: int) -> float:
    """CPU seconds per step of `train()` (Johnson preset, random VGG-16): a run of 1 + steps minus a run of 1
    (same setup, same first step), so setup and the warm-up step cancel."""
    def run(n: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            job = TrainJob(content=[MEDIA / "astronaut.jpg", MEDIA / "chelsea.jpg", MEDIA / "coffee.jpg"],
                           styles=[MEDIA / "style" / "hubble_deep_field.jpg"], out=Path(tmp),
                           recipe=recipe_for("johnson", crop=crop, batch_size=batch), max_steps=n,
                           checkpoint_every=10**9, preview_every=0, log_every=10**9, random_loss_net=True)
            start = time.process_time()
            train(job, resume=False, log=lambda _: None)
            return time.process_time() - start

    return (run(steps + 1) - run(1)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--official-net", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours, bare = [], []
    for _ in range(args.rounds):  # alternate, so machine noise hits both
        ours.append(our_loop(args.crop, args.batch, args.steps))
        bare.append(bare_loop(args.crop, args.batch, args.steps, args.official_net))
        print(f"ours {1 / ours[-1]:.3f} steps/s, bare {1 / bare[-1]:.3f} steps/s", flush=True)
    ratios = [b / o for o, b in zip(ours, bare, strict=True)]
    row = {"crop": args.crop, "batch": args.batch, "steps": args.steps, "threads": args.threads,
           "bare_net": str(args.official_net) if args.official_net else "ours (same layout)",
           "ours_steps_per_s": 1 / statistics.median(ours), "bare_steps_per_s": 1 / statistics.median(bare),
           "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "goal": 1.0}
    print(f"ratio ours/bare {row['ratio_median']:.3f} (min {row['ratio_min']:.3f}, goal >= 1.0)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "fast_style_train_speed.json"
    out.write_text(json.dumps({"benchmark": "fast_style_train_speed", "machine": platform.node(),
                               "torch": torch.__version__, "results": [row]}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
