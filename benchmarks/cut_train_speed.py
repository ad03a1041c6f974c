"""Training seconds per iteration: `stylefarm train cut` (CUTTrainer.step) vs the official model's
`optimize_parameters`, same config, same input tensors, same torch, same CPU threads.

    .venv/bin/python benchmarks/cut_train_speed.py --official scratch/cut/official \
        --official-qs scratch/cut/official_qs        # scratch checkouts (never committed)

The official `train.py` itself cannot run here: its data loader imports torchvision, which is not
installed. So both sides are timed without a data loader on the same fixed random A/B crops:
the official side builds its options with `TrainOptions().parse()` and its model with
`create_model`, runs `data_dependent_initialize` + `setup`, then times `set_input` +
`optimize_parameters`. Stubs needed to import the official code on CPU (scratch copy only): an
empty `torchvision` module (used by neither timed path); in the QS-Attn copy `mlp.cuda()` guarded
by `if gpu_ids` and `// len(gpu_ids)` -> `// max(len(gpu_ids), 1)` (both crash without a GPU).
Each side runs in its own process (both repos have top-level `models`, `options`, `util`);
sides alternate, twice each. Config (CPU-sized, identical both sides): resnet_6blocks, ngf 16,
ndf 16, crop 128, 256 patches, batch 1, CUT / QS-Attn global defaults otherwise.
Writes benchmarks/results/cut_train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "cut_train_speed.json"
CONFIG = {"ngf": 16, "n_blocks": 6, "ndf": 16, "crop": 128, "num_patches": 256}


def _inputs():
    import torch

    gen = torch.Generator().manual_seed(0)
    size = CONFIG["crop"]
    return torch.rand(1, 3, size, size, generator=gen) * 2 - 1, torch.rand(1, 3, size, size, generator=gen) * 2 - 1


def time_ours(mode: str, iters: int) -> list[float]:
    sys.path.insert(0, str(REPO))
    from stylefarm.plugins.cut.train import CUTTrainer, TrainConfig

    cfg = TrainConfig.for_mode(mode, ngf=CONFIG["ngf"], n_blocks=CONFIG["n_blocks"], ndf=CONFIG["ndf"],
                               crop_size=CONFIG["crop"], num_patches=CONFIG["num_patches"])
    trainer = CUTTrainer(cfg)
    a, b = _inputs()
    trainer.step(a, b)  # warm-up, as the official side's data_dependent_initialize
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        trainer.step(a, b)
        times.append(time.perf_counter() - start)
    return times


def time_official(folder: Path, mode: str, iters: int) -> list[float]:
    sys.modules["torchvision"] = types.ModuleType("torchvision")  # imported at module level, unused here
    sys.modules["torchvision.transforms"] = types.ModuleType("torchvision.transforms")
    sys.path.insert(0, str(folder.resolve()))
    tmp = tempfile.mkdtemp()
    model_args = ["--model", "cut", "--CUT_mode", "CUT"] if mode == "cut" else ["--model", "qs", "--QS_mode", "global"]
    sys.argv = ["train.py", "--dataroot", tmp, "--gpu_ids", "-1", "--checkpoints_dir", tmp, "--name", "bench",
                "--netG", "resnet_6blocks", "--ngf", str(CONFIG["ngf"]), "--ndf", str(CONFIG["ndf"]),
                "--crop_size", str(CONFIG["crop"]), "--num_patches", str(CONFIG["num_patches"]), *model_args]
    from models import create_model
    from options.train_options import TrainOptions

    opt = TrainOptions().parse()
    model = create_model(opt)
    a, b = _inputs()
    data = {"A": a, "B": b, "A_paths": ["a"], "B_paths": ["b"]}
    if mode == "cut":
        model.data_dependent_initialize(data)
    else:
        model.set_input(data)
        model.data_dependent_initialize()
    model.setup(opt)
    model.set_input(data)
    model.optimize_parameters()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        model.set_input(data)
        model.optimize_parameters()
        times.append(time.perf_counter() - start)
    return times


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder = Path(args.folder) if args.folder else None
    times = time_ours(args.mode, args.iters) if args.side == "ours" else time_official(folder, args.mode, args.iters)
    print("TIMES " + json.dumps(times), flush=True)


def run_side(side: str, mode: str, folder: str | None, iters: int, threads: int) -> list[float]:
    cmd = [sys.executable, __file__, "--child", "--side", side, "--mode", mode, "--iters", str(iters),
           "--threads", str(threads)] + (["--folder", folder] if folder else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TIMES ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} {mode} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1][6:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default=str(REPO / "scratch" / "cut" / "official"))
    parser.add_argument("--official-qs", default=str(REPO / "scratch" / "cut" / "official_qs"))
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="cut", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = []
    for mode, folder in (("cut", args.official), ("qsattn", args.official_qs)):
        samples: dict[str, list[float]] = {"ours": [], "official": []}
        for rnd in range(args.rounds):
            for side in (("ours", "official") if rnd % 2 == 0 else ("official", "ours")):
                samples[side] += run_side(side, mode, folder if side == "official" else None, args.iters, args.threads)
        med = {k: statistics.median(v) for k, v in samples.items()}
        rows.append({"mode": mode, "seconds_per_iteration": med, "samples": samples,
                     "speedup_vs_official": med["official"] / med["ours"]})
        print(f"{mode}: ours {med['ours']:.3f} s/it, official {med['official']:.3f} s/it, "
              f"speed-up {rows[-1]['speedup_vs_official']:.2f}x", flush=True)
    import torch

    OUT.write_text(json.dumps({"benchmark": "cut_train_speed", "config": CONFIG, "threads": args.threads,
                               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
                               "goal": "speedup_vs_official >= 1.0", "rows": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
