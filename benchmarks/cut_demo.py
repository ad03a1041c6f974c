"""The offline CUT / QS-Attn demo: recipe (data), training command, and what training achieved.

    .venv/bin/python benchmarks/cut_demo.py data  --work scratch/cut/demo   # domain A / B folders
    .venv/bin/python benchmarks/cut_demo.py train --work scratch/cut/demo   # stylefarm train cut ...
    .venv/bin/python benchmarks/cut_demo.py eval  --work scratch/cut/demo   # -> results/cut_demo.json

Recipe (project-made, unpaired): domain A = the four shipped demo photos (max side 320);
domain B = the same photos rendered by the built-in `cin26` style 19 (through `stylefarm run`).
Training sees random 64 px crops (of the photos resized to 160 x 160) of A and of B, drawn
independently (random B index, separate crops and flips): no pairing is used.
Evaluation translates held-out photos (../shared media, when present) and the demo photos and
compares each output with the cin26 rendering of the same photo - a paired target used ONLY
for measuring - and with the input:
- colour: |mean| + |std| difference per RGB channel (0..1 scale), to the paired target and to
  the pooled statistics of domain B;
- vgg_rand: mean/std distance of VGG-19 features relu1_1..relu3_1 with RANDOM (seeded He) weights
  (no pretrained VGG offline), to the paired target;
- ssim / edges: SSIM of the grey images and the correlation of Sobel magnitudes, vs the input.
Rows: trained generator, the untrained one (same init as training), the input itself, the target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
STYLEFARM = Path(sys.executable).parent / "stylefarm"
OUT = REPO / "benchmarks" / "results" / "cut_demo.json"
SHARED = REPO.parent / "shared" / "media" / "images" / "content"
STYLE = 19
TRAIN_ARGS = ["--mode", "qsattn", "--qs-mode", "global", "--ngf", "16", "--n-blocks", "6", "--ndf", "32",
              "--load-size", "160", "--crop-size", "64", "--num-patches", "64", "--n-epochs", "150",
              "--n-epochs-decay", "150", "--max-minutes", "24", "--threads", "1", "--print-every", "50",
              "--preview-every", "100", "--save-every", "50"]
RECIPE = """version: 1
inputs:
  - glob: {media}/*.jpg
steps:
  - use: resize
    id: A
    with: {{max_side: 320}}
    save: true
  - use: cin26
    id: B
    with: {{style: [{style}]}}
    save: true
output:
  dir: {data}
  pattern: "{{step}}/{{input.stem}}.png"
execution: {{backend: local, device: cpu, batch_size: 1}}
"""


def make_data(work: Path) -> None:
    """Domain folders work/data/A and work/data/B through the stylefarm CLI."""
    work.mkdir(parents=True, exist_ok=True)
    recipe = work / "recipe.yaml"
    recipe.write_text(RECIPE.format(media=REPO / "workflows" / "media", style=STYLE, data=work / "data"))
    subprocess.run([str(STYLEFARM), "run", str(recipe), "--force"], check=True)


def train(work: Path) -> None:
    subprocess.run([str(STYLEFARM), "train", "cut", "--a", str(work / "data" / "A"), "--b", str(work / "data" / "B"),
                    "--out", str(work / "run"), *TRAIN_ARGS], check=True)


# ---------------------------------------------------------------- metrics
def grey(image: np.ndarray) -> np.ndarray:
    return (image @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two grey [0, 1] images (Gaussian window 11, sigma 1.5, Wang et al. constants)."""
    import cv2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    return float((((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))).mean())


def edge_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of Sobel gradient magnitudes."""
    import cv2

    def mag(x):
        return np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1)).ravel()

    return float(np.corrcoef(mag(a), mag(b))[0, 1])


def colour_stats(images: list[np.ndarray]) -> np.ndarray:
    pixels = np.concatenate([im.reshape(-1, 3) for im in images])
    return np.concatenate([pixels.mean(0), pixels.std(0)])


def colour_distance(image: np.ndarray, stats: np.ndarray) -> float:
    return float(np.abs(colour_stats([image]) - stats).sum() / 3)


class RandomVGG:
    """VGG-19 to relu3_1 with RANDOM seeded weights: a texture statistic, not a perceptual metric."""

    def __init__(self):
        from stylefarm.plugins._vgg import VGGEncoder, randomize_convs

        self.net = VGGEncoder(("relu1_1", "relu2_1", "relu3_1")).eval()
        randomize_convs([self.net])

    def stats(self, image: np.ndarray) -> list:
        import torch

        with torch.no_grad():
            feats = self.net(torch.from_numpy(image).permute(2, 0, 1)[None])
        return [(f.mean((2, 3)), f.std((2, 3))) for f in feats]

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(sum(((ma - mb).pow(2).mean() + (sa - sb).pow(2).mean()).sqrt()
                         for (ma, sa), (mb, sb) in zip(self.stats(a), self.stats(b))))


# ---------------------------------------------------------------- evaluation
def eval_images(size: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    from stylefarm.images import read_image
    from stylefarm.plugins.cut.ops import pil_resize

    def load(paths):
        out = []
        for p in paths:
            image = read_image(p)[0]
            h, w = image.shape[:2]
            s = size / max(h, w)
            out.append((p.stem, pil_resize(image, round(w * s / 4) * 4, round(h * s / 4) * 4, eight_bit=True)))
        return out

    sets = {"demo_photos_seen_in_training": load(sorted((REPO / "workflows" / "media").glob("*.jpg")))}
    if SHARED.is_dir():
        sets["held_out_shared_photos"] = load(sorted(SHARED.glob("*.jpg")))
    return sets


def translators(run: Path, export: Path | None):
    """name -> function(image) for the trained and the untrained generator (plus cin26 targets)."""
    import torch

    from stylefarm.plugins.cut.model import ResnetGenerator
    from stylefarm.plugins.cut.ops import to_images, to_input
    from stylefarm.plugins.cut.train import init_weights

    def wrap(net):
        net.eval()
        return lambda im: to_images(net(to_input([im])))[0]

    trained = ResnetGenerator(16, 6)
    path = export if export and export.is_file() else run / "latest_net_G.pth"
    trained.load_state_dict({k: v.float() for k, v in torch.load(path, weights_only=True).items()})
    torch.manual_seed(0)
    untrained = ResnetGenerator(16, 6)
    init_weights(untrained, 0.02)  # the training's starting point (official xavier, gain 0.02)
    return {"trained": wrap(trained), "untrained": wrap(untrained)}, str(path)


def cin26_target():
    from stylefarm.plugins.cin26.step import CIN26Step

    step = CIN26Step(CIN26Step.Options(style=[STYLE], max_size=0))
    step.setup("cpu")
    return lambda im: step.stylize(im, step.styles[0])


def score(rows: dict, name: str, out: np.ndarray, image: np.ndarray, target: np.ndarray, b_stats, vgg) -> None:
    g_out, g_in = grey(out), grey(image)
    row = rows.setdefault(name, {"colour_to_target": [], "colour_to_domain_B": [], "vgg_rand_to_target": [],
                                 "ssim_vs_input": [], "edges_vs_input": []})
    row["colour_to_target"].append(colour_distance(out, colour_stats([target])))
    row["colour_to_domain_B"].append(colour_distance(out, b_stats))
    row["vgg_rand_to_target"].append(vgg.distance(out, target))
    row["ssim_vs_input"].append(ssim(g_out, g_in))
    row["edges_vs_input"].append(edge_agreement(g_out, g_in))


def evaluate(work: Path, export: Path | None, size: int) -> dict:
    import torch

    from stylefarm.images import read_image

    torch.set_num_threads(1)
    nets, weights = translators(work / "run", export)
    target_of, vgg = cin26_target(), RandomVGG()
    b_stats = colour_stats([read_image(p)[0] for p in sorted((work / "data" / "B").glob("*.png"))])
    result = {}
    with torch.no_grad():
        for set_name, images in eval_images(size).items():
            rows: dict = {}
            for _, image in images:
                target = np.clip(target_of(image), 0, 1)
                outs = {**{k: f(image) for k, f in nets.items()}, "input_itself": image, "cin26_target": target}
                for name, out in outs.items():
                    score(rows, name, out, image, target, b_stats, vgg)
            means = {n: {k: round(float(np.mean(v)), 4) for k, v in r.items()} for n, r in rows.items()}
            result[set_name] = {"images": len(images), "mean": means}
    return {"weights": weights, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["data", "train", "eval"])
    parser.add_argument("--work", type=Path, default=REPO / "scratch" / "cut" / "demo")
    parser.add_argument("--export", type=Path, default=None, help="fp16 generator to evaluate instead of run/")
    parser.add_argument("--size", type=int, default=256, help="longer side of the evaluation images")
    args = parser.parse_args()
    args.work = args.work.resolve()  # the recipe's output dir would otherwise resolve against its own folder
    if args.what == "data":
        make_data(args.work)
    elif args.what == "train":
        train(args.work)
    else:
        figures = evaluate(args.work, args.export, args.size)
        state_file = args.work / "run" / "train_state.pt"
        meta = {}
        if state_file.is_file():
            import torch

            saved = torch.load(state_file, weights_only=True)
            meta = {"iterations": saved["state"]["total_iters"], "minutes": round(saved["state"]["elapsed"] / 60, 1),
                    "config": saved["config"]}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({"benchmark": "cut_demo", "date": time.strftime("%Y-%m-%d %H:%M"),
                                   "train_args": TRAIN_ARGS, "training": meta, "figures": figures,
                                   "note": "vgg_rand = VGG-19 features with RANDOM weights (no pretrained VGG "
                                           "offline); lower distances = closer to domain B; higher ssim/edges = "
                                           "more content kept"}, indent=2))
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
