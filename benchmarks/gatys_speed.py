"""Gatys speed: iterations/s of our `gatys` step vs a bare torch loop of the same losses, and vs
neural-style-pt's own loop run from a scratch checkout, same VGG-19, same device, same losses.

    .venv/bin/python benchmarks/gatys_speed.py                      # 256 and 512 px, ~10 min on 1 busy core
    .venv/bin/python benchmarks/gatys_speed.py --quick              # 128 px only, one repeat
    .venv/bin/python benchmarks/gatys_speed.py --neural-style-pt scratch/gatys/neural-style-pt

RANDOM WEIGHTS: every side loads the same seeded VGG-19 saved under torchvision's key names, the
format neural-style-pt's converted Caffe models use (speed does not depend on the weight values).
The losses are neural-style's: content relu4_2 x 5, style relu1_1..relu5_1 x 100, Gram / (C*H*W),
mean squared errors, L-BFGS with both tolerances off; TV off on every side (neural-style-pt's TV
is the L1 version, ours the squared one; this way all three sides compute exactly the same loss).
neural-style-pt imports torchvision only for its image transforms, which is not installed here:
its `neural_style.py` is executed unmodified except that `import torchvision.transforms` finds a
15-line stand-in for the five transforms it uses (PIL resize, to-tensor, lambda, normalise,
to-PIL); CaffeLoader.py is imported as is. Its save of the final image stays in (a few ms).
Rate = (N2 - N1) / (t(N2) - t(N1)): two runs per side with different iteration counts, so setup,
image reading and target capture cancel (N1 >= 2: with N = 1 neural-style-pt's outer loop calls
L-BFGS twice and evaluates twice); t by this process's CPU time (the ratios we report: on a
shared machine wall time swings several x between runs) and by wall clock. Sides rotate order each
repeat; medians reported.
Writes benchmarks/results/gatys_speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import platform
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stylefarm.images import encode_image, read_image  # noqa: E402
from stylefarm.item import Item  # noqa: E402
from stylefarm.plugins._lossnet import vgg_modules, vgg_names  # noqa: E402
from stylefarm.plugins._vgg import randomize_convs  # noqa: E402

MEDIA = REPO / "workflows" / "media"
OUT = REPO / "benchmarks" / "results" / "gatys_speed.json"
CONTENT_LAYERS, STYLE_LAYERS = ("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_WEIGHT, STYLE_WEIGHT = 5.0, 100.0
CAFFE_MEAN = (103.939, 116.779, 123.68)


def random_vgg(path: Path) -> None:
    """Seeded random VGG-19 convs under torchvision keys (`features.N.weight`)."""
    feats = torch.nn.Sequential(*vgg_modules("vgg19", len(vgg_names("vgg19")), False, False, "max"))
    randomize_convs([feats], seed=0)
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)


def make_inputs(folder: Path, size: int) -> tuple[Path, Path]:
    """Square demo content and style PNGs of `size` px (every side reads the same 8-bit files)."""
    from stylefarm.images import resize

    paths = []
    for name, src in (("content", MEDIA / "chelsea.jpg"), ("style", MEDIA / "style" / "hubble_deep_field.jpg")):
        image = read_image(src)[0]
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = resize(image[top:top + side, left:left + side], size, size)
        path = folder / f"{name}{size}.png"
        path.write_bytes(encode_image(".png", square, None, 8))
        paths.append(path)
    return paths[0], paths[1]


def ours(weights: Path, content: Path, style: Path, size: int) -> Callable[[int], float]:
    """Our step: setup once; each call runs `process` on one item for n iterations (returns loss)."""
    from stylefarm.plugins.gatys.step import GatysOptions, GatysStep

    def run(n: int) -> float:
        opts = GatysOptions(style=str(style), weights=str(weights), preprocess="caffe", content_size=size,
                            style_size=size, tv_weight=0, init="content", iterations=n)
        step = GatysStep(opts)
        step.setup("cpu")
        item = Item(source=str(content), index=0, image=read_image(content)[0])
        return float(step.process([item])[0].meta["gatys"]["loss"]["total"])

    return run


def bare(weights: Path, content: Path, style: Path) -> Callable[[int], float]:
    """The same losses in a plain loop: one nn.Sequential, hooks-free taps, L-BFGS."""
    names = vgg_names("vgg19")
    depth = max(names.index(n) for n in CONTENT_LAYERS + STYLE_LAYERS) + 1
    net = torch.nn.Sequential(*vgg_modules("vgg19", depth, False, False, "max")).eval()
    state = torch.load(weights, weights_only=True)
    net.load_state_dict({k[len("features."):]: v for k, v in state.items() if int(k.split(".")[1]) < depth})
    net.requires_grad_(False)
    mean = torch.tensor(CAFFE_MEAN).view(1, 3, 1, 1)

    def feats(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, x = {}, x.flip(1) * 255.0 - mean
        for name, layer in zip(names, net):
            x = layer(x)
            out[name] = x
        return out

    def gram(f: torch.Tensor) -> torch.Tensor:
        flat = f.flatten(2)
        return flat @ flat.transpose(1, 2) / f[0].numel()

    def run(n: int) -> float:
        c = torch.from_numpy(read_image(content)[0]).permute(2, 0, 1)[None].contiguous()
        s = torch.from_numpy(read_image(style)[0]).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            ct = {k: feats(c)[k] for k in CONTENT_LAYERS}
            st = {k: gram(v) for k, v in feats(s).items() if k in STYLE_LAYERS}
        x = c.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], max_iter=n, max_eval=n, tolerance_grad=-1, tolerance_change=-1)
        last = [0.0]

        def closure():
            opt.zero_grad()
            f = feats(x)
            loss = sum(CONTENT_WEIGHT * torch.mean((f[k] - ct[k]) ** 2) for k in CONTENT_LAYERS)
            loss = loss + sum(STYLE_WEIGHT * torch.mean((gram(f[k]) - st[k]) ** 2) for k in STYLE_LAYERS)
            loss.backward()
            last[0] = float(loss)
            return loss

        opt.step(closure)
        return last[0]

    return run


def transforms_stub() -> types.ModuleType:
    """The five torchvision transforms neural_style.py calls, on PIL images / CHW tensors."""
    from PIL import Image

    t = types.ModuleType("torchvision.transforms")
    t.Compose = lambda fs: (lambda x: [x := f(x) for f in fs][-1])
    t.Resize = lambda hw: (lambda im: im.resize((hw[1], hw[0]), Image.BILINEAR))
    t.ToTensor = lambda: (lambda im: torch.from_numpy(np.asarray(im, np.float32) / 255.0).permute(2, 0, 1).contiguous())
    t.Lambda = lambda f: f
    t.Normalize = lambda mean, std: (lambda x: (x - torch.tensor(mean).view(-1, 1, 1))
                                     / torch.tensor(std).view(-1, 1, 1))
    # like torchvision: scale to bytes (integer tensors drop autograd), HWC array
    t.ToPILImage = lambda: (lambda x: Image.fromarray(x.mul(255).byte().permute(1, 2, 0).numpy()))
    return t


def neural_style_pt(folder: Path, weights: Path, content: Path, style: Path, size: int,
                    work: Path) -> Callable[[int], float]:
    """neural_style.py's `main` from the checkout (argparse line dropped: we set `params`)."""
    root = folder.resolve()
    sys.path.insert(0, str(root))
    package = types.ModuleType("torchvision")
    package.transforms = transforms_stub()
    sys.modules.setdefault("torchvision", package)
    sys.modules.setdefault("torchvision.transforms", package.transforms)
    tree = ast.parse((root / "neural_style.py").read_text())
    body = [node for node in tree.body if not isinstance(node, ast.If)
            and not (isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "params")]
    scope: dict = {"__name__": "neural_style_bench"}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(root / "neural_style.py"), "exec"), scope)
    defaults = vars(scope["parser"].parse_args([]))

    def run(n: int) -> float:
        scope["params"] = argparse.Namespace(**{**defaults, "style_image": str(style), "content_image": str(content),
                                                "image_size": size, "gpu": "c", "model_file": str(weights),
                                                "disable_check": True, "tv_weight": 0.0, "num_iterations": n,
                                                "init": "image", "print_iter": 0, "save_iter": 0,
                                                "output_image": str(work / "nspt.png")})
        with contextlib.redirect_stdout(io.StringIO()):  # it prints every layer and loss
            scope["main"]()
        return float("nan")

    return run


def rate(run: Callable[[int], float], n1: int, n2: int) -> tuple[float, float, float]:
    """Iterations per second from two runs (fixed costs cancel): by wall clock and by this process's
    CPU time (one torch thread, so CPU time is the compute; it barely moves when other jobs share
    the cores, which wall time does by several x), and the longer run's final loss."""
    clocks = []
    loss = float("nan")
    for n in (n1, n2):
        wall, cpu = time.perf_counter(), time.process_time()
        loss = run(n)
        clocks.append((time.perf_counter() - wall, time.process_time() - cpu))
    (w1, c1), (w2, c2) = clocks
    return (n2 - n1) / max(w2 - w1, 1e-9), (n2 - n1) / max(c2 - c1, 1e-9), loss


def bench_size(work: Path, weights: Path, size: int, counts: tuple[int, int], repeats: int,
               nspt: Path | None) -> dict:
    content, style = make_inputs(work, size)
    sides = {"gatys": ours(weights, content, style, size), "bare": bare(weights, content, style)}
    if nspt is not None:
        sides["neural_style_pt"] = neural_style_pt(nspt, weights, content, style, size, work)
    for run in sides.values():  # first calls pay lazy imports and allocator warm-up
        run(1)
    rates: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in sides}
    losses: dict[str, float] = {}
    names = list(sides)
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            wall, cpu, loss = rate(sides[name], *counts)
            rates[name]["wall"].append(wall)
            rates[name]["cpu"].append(cpu)
            losses[name] = loss
    med = {k: {clock: statistics.median(v[clock]) for clock in v} for k, v in rates.items()}
    row = {"size": size, "iterations": list(counts), "repeats": repeats, "iterations_per_second": med,
           "samples": rates, "final_loss": losses,
           "ratio_gatys_over_bare": {c: med["gatys"][c] / med["bare"][c] for c in ("cpu", "wall")}}
    if nspt is not None:
        row["ratio_gatys_over_neural_style_pt"] = {c: med["gatys"][c] / med["neural_style_pt"][c]
                                                   for c in ("cpu", "wall")}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--neural-style-pt", type=Path, default=None, help="scratch checkout of neural-style-pt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="only these sizes (256, 512)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per size (default 3 at 256, 2 at 512)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    plan = [(128, (2, 10), 1)] if args.quick else [(256, (2, 8), 3), (512, (2, 5), 2)]
    plan = [(size, counts, args.repeats or reps) for size, counts, reps in plan if size in (args.sizes or [size])]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = work / "vgg19-random.pth"  # neural-style-pt picks the architecture from "vgg" + "19"
        random_vgg(weights)
        rows = [bench_size(work, weights, size, counts, reps, args.neural_style_pt) for size, counts, reps in plan]
    result = {"benchmark": "gatys_speed", "device": "cpu", "threads": args.threads, "torch": torch.__version__,
              "machine": platform.platform(), "processor": platform.processor(), "random_weights": True,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows,
              "goal": "gatys/bare >= 0.95; gatys/neural_style_pt >= 1.0 (CPU-time rates)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\ngatys iterations/s (CPU, RANDOM WEIGHTS; median; by CPU time, wall clock in brackets)")
    for r in rows:
        ips = r["iterations_per_second"]
        cells = "  ".join(f"{k} {v['cpu']:.3f} [{v['wall']:.3f}]" for k, v in ips.items())
        ratios = [("gatys/bare", r["ratio_gatys_over_bare"])]
        if "ratio_gatys_over_neural_style_pt" in r:
            ratios.append(("gatys/nspt", r["ratio_gatys_over_neural_style_pt"]))
        extra = "  ".join(f"{n} {v['cpu']:.3f} [{v['wall']:.3f}]" for n, v in ratios)
        print(f"{r['size']:>5} px  {cells}  {extra}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
