"""The `_convs` rewrites on and off, same networks, same process, interleaved.

    .venv/bin/python benchmarks/conv_rewrites.py            # ~3 min on 2 cores
    .venv/bin/python benchmarks/conv_rewrites.py --rounds 3

- AdaIN encoder + decoder, channels-last as the step runs them: `ConvStack` (pad + conv without
  the padded copy, upsample + pad + conv folded onto the small map) vs the same modules as a
  plain `nn.Sequential`, at 512 and 1024 px, one frame a call.
- The feed-forward nets (`_cin.TransformerNet`, johnson and cin26 layouts) at 1280x720, eager,
  with the upsampling convs folded and the full-size 9x9 convs border-fixed vs plain
  (`_cin.FOLD_MIN_PIXELS` and `BORDER_FIX_MIN_PIXELS` raised past any map).

Random weights (speed does not depend on them). Reports min and median seconds per frame and
the max abs difference between the two paths. Writes benchmarks/results/conv_rewrites.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from stylefarm.plugins import _cin
from stylefarm.plugins._vgg import randomize_convs
from stylefarm.plugins.adain import model

OUT = Path(__file__).resolve().parent / "results" / "conv_rewrites.json"
CL = torch.channels_last


def adain_pair() -> tuple[Callable, Callable]:
    enc, dec = model.encoder(), model.Decoder()
    randomize_convs([enc, dec])
    enc, dec = enc.eval().to(memory_format=CL), dec.eval().to(memory_format=CL)
    plain_enc, plain_dec = nn.Sequential(*enc.layers), nn.Sequential(*dec)
    return (lambda x: dec(enc(x)[0])), (lambda x: plain_dec(plain_enc(x)))


def cin_pair(preset: str) -> tuple[Callable, Callable]:
    torch.manual_seed(0)
    net = _cin.TransformerNet(_cin.PRESETS[preset]).eval()
    folded_from, fixed_from = _cin.FOLD_MIN_PIXELS, _cin.BORDER_FIX_MIN_PIXELS

    def plain(x: torch.Tensor) -> torch.Tensor:
        _cin.FOLD_MIN_PIXELS = _cin.BORDER_FIX_MIN_PIXELS = 10**12
        try:
            return net(x)
        finally:
            _cin.FOLD_MIN_PIXELS, _cin.BORDER_FIX_MIN_PIXELS = folded_from, fixed_from

    return net, plain


def measure(name: str, pair: tuple[Callable, Callable], x: torch.Tensor, rounds: int) -> dict:
    times: dict[str, list[float]] = {"rewritten": [], "plain": []}
    with torch.inference_mode():
        outs = [fn(x) for fn in pair]  # warm-up (oneDNN primitives) and the outputs compared
        for _ in range(rounds):
            for side, fn in zip(times, pair):
                start = time.perf_counter()
                fn(x)
                times[side].append(time.perf_counter() - start)
    row = {"case": name, "input": list(x.shape), "max_abs_diff": float((outs[0] - outs[1]).abs().max()),
           "output_max_abs": float(outs[1].abs().max()), "samples": times,
           **{f"{side}_min_s": min(t) for side, t in times.items()},
           **{f"{side}_median_s": statistics.median(t) for side, t in times.items()}}
    row["speedup_median"] = row["plain_median_s"] / row["rewritten_median_s"]
    print(f"{name:>14} {row['rewritten_min_s']:7.3f} {row['plain_min_s']:7.3f} {row['rewritten_median_s']:7.3f} "
          f"{row['plain_median_s']:7.3f} {row['speedup_median']:6.2f}x  diff {row['max_abs_diff']:.1e}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    print(f"{'case':>14} {'min new':>7} {'min old':>7} {'med new':>7} {'med old':>7} {'ratio':>7}")
    cases = [("adain 512", adain_pair(), torch.rand(1, 3, 512, 512).contiguous(memory_format=CL)),
             ("adain 1024", adain_pair(), torch.rand(1, 3, 1024, 1024).contiguous(memory_format=CL)),
             ("johnson 720p", cin_pair("johnson"), torch.rand(1, 3, 720, 1280)),
             ("cin26 720p", cin_pair("cin26"), torch.rand(1, 3, 720, 1280))]
    rows = [measure(name, pair, x, args.rounds if "1024" not in name else max(2, args.rounds // 2))
            for name, pair, x in cases]
    report = {"benchmark": "conv_rewrites", "device": "cpu", "torch_threads": torch.get_num_threads(),
              "torch": torch.__version__, "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
