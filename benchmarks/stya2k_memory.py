"""Peak memory and time: StyA2K's chunked all-to-key attention vs. an all-to-all attention layer.

Each configuration runs in its own child process so its peak RSS is its own. Both layers work
on relu3_1-like features (256 channels, 1/4 of the image side; the largest level StyA2K
attends on) against a 512x512 style. All-to-all attention materialises a
(content pixels x style pixels) score matrix per head; all-to-key only (pixels x style regions)
and (pixels x region size), in chunks. Random weights: this measures cost, not quality.

    python benchmarks/stya2k_memory.py                       # the table (512 .. 4K)
    python benchmarks/stya2k_memory.py --one a2k --width 3840 --height 2160 --full-model
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

SIZES = [(512, 512), (1024, 1024), (2048, 2048), (3840, 2160)]
CHANNELS, HEADS, STYLE = 256, 8, 512


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def all_to_all_gib(width: int, height: int) -> float:
    """Score + softmax matrices of one single-head all-to-all layer, float32."""
    content, style = (width // 4) * (height // 4), (STYLE // 4) ** 2
    return 2 * content * style * 4 / 2**30


def all_to_all(q, k, v):
    """Single-head attention of every content pixel over every style pixel (SANet/AdaAttN-like)."""
    import torch

    b, c, h, w = q.shape
    scores = torch.softmax(torch.einsum("bcn,bcm->bnm", q.reshape(b, c, -1), k.reshape(b, c, -1)), dim=-1)
    return torch.einsum("bnm,bcm->bcn", scores, v.reshape(b, c, -1)).reshape(b, c, h, w)


def run_layer(kind: str, width: int, height: int) -> None:
    import torch

    from stylefarm.plugins.stya2k.model import A2K

    torch.manual_seed(0)
    content = torch.rand(1, CHANNELS, height // 4, width // 4)
    style = torch.rand(1, CHANNELS, STYLE // 4, STYLE // 4)
    with torch.inference_mode():
        if kind == "a2k":
            layer = A2K(CHANNELS, region=8).eval()
            layer(content, layer.style_keys(style))
        else:
            all_to_all(content, style, style)


def run_full_model(width: int, height: int) -> None:
    import torch

    from stylefarm.plugins._vgg import randomize_convs
    from stylefarm.plugins.stya2k.model import StyA2K

    model = StyA2K().eval()
    randomize_convs([model])
    with torch.inference_mode():
        keys = model.style_keys(torch.rand(1, 3, STYLE, STYLE))
        out = model(torch.rand(1, 3, height, width), keys)
    assert out.shape[-2:] == (height, width) and bool(torch.isfinite(out).all())


def child(args: argparse.Namespace) -> None:
    import torch  # noqa: F401  (import time is not part of the measurement)

    start = time.perf_counter()
    if args.full_model:
        run_full_model(args.width, args.height)
    else:
        run_layer(args.one, args.width, args.height)
    print(f"seconds {time.perf_counter() - start:.2f}")
    print(f"peak_rss_gib {peak_rss_gib():.3f}")


def measure(kind: str, width: int, height: int) -> tuple[str, str]:
    cmd = [sys.executable, __file__, "--one", kind, "--width", str(width), "--height", str(height)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        return "failed", (run.stderr.strip().splitlines() or ["?"])[-1][:60]
    lines = dict(line.split() for line in run.stdout.strip().splitlines()[-2:])
    return f"{float(lines['seconds']):.2f} s", f"{float(lines['peak_rss_gib']):.2f} GiB"


def table(limit_gib: float) -> None:
    print(f"relu3_1-level attention, {CHANNELS} ch, style {STYLE}px (A2K: {HEADS} heads, chunked; "
          "all-to-all: 1 head); peak RSS per process")
    print(f"{'content':>11} | {'A2K time':>9} {'A2K peak':>10} | {'all-to-all time':>15} {'peak':>10} "
          f"{'scores need':>11}")
    for width, height in SIZES:
        a_time, a_peak = measure("a2k", width, height)
        need = all_to_all_gib(width, height)
        if need > limit_gib:
            f_time, f_peak = "skipped", f"> {limit_gib:.0f} GiB"
        else:
            f_time, f_peak = measure("all2all", width, height)
        print(f"{width:>5}x{height:<5} | {a_time:>9} {a_peak:>10} | {f_time:>15} {f_peak:>10} {need:>8.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=["a2k", "all2all"], help="run one configuration (child mode)")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--full-model", action="store_true", help="whole StyA2K network, not one layer")
    parser.add_argument("--limit-gib", type=float, default=16.0,
                        help="skip all-to-all runs whose score matrices alone exceed this")
    args = parser.parse_args()
    if args.one:
        child(args)
    else:
        table(args.limit_gib)


if __name__ == "__main__":
    main()
