"""What the train commands share: weights names they may take, the resume rule, and signals.

Resume rule (fast-style and cut alike): a rerun in the same output folder continues the run there.
Settings that define the model or its loss (the `model` keys) must be the same, else the rerun is
refused in one line naming the flags that differ; run-time settings (learning rate, crop and batch
size, schedule) may change and the new values are taken, said in the resume line.

Bit-exact resume: a checkpoint keeps the state of every random stream the loop draws from (`random_state`),
so on CPU (same torch, same thread count) k steps, then a rerun to N, give the bits of N steps in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import click

from stylefarm.errors import EXIT_INVALID, Cancelled, StylefarmError

COUNT = click.IntRange(min=1)  # the option types both train commands use
ZERO_OR_MORE = click.IntRange(min=0)
POSITIVE = click.FloatRange(min=0, min_open=True)
NON_NEGATIVE = click.FloatRange(min=0)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


class ArgumentError(StylefarmError):
    """The command line asks for something the trainer will not do; nothing was trained."""

    exit_code = EXIT_INVALID


class CancelledAndSaved(Cancelled):
    """SIGINT/SIGTERM stopped training after the checkpoint was saved; the message says where and how to resume."""

    def __init__(self, signum: int, message: str):
        super().__init__(signum)
        self.args = (message,)


def check_weights_name(flag: str, namespace: str, name: str, own: Iterable[str]) -> None:
    """Refuse (before training) a name that is not a plain word, or that a plugin already registers as
    `namespace/name` (a shipped net would be shadowed); `own` are names this command installed earlier."""
    from stylefarm.weights import registry

    if not _NAME.match(name):
        raise ArgumentError(f"{flag} {name!r}: use letters, digits, - and _ (starting with a letter or digit)")
    full = f"{namespace}/{name}"
    if full in registry() and full not in set(own):
        raise ArgumentError(f"{flag} {name!r}: {full} is already a registered weights name (`stylefarm weights` "
                            f"lists them); choose another {flag}")


def plain_name(stem: str) -> str:
    """A file stem as a weights name: other characters become `_`."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem).lstrip("_-") or "net"


def differences(before: Mapping, now: Mapping, keys: Iterable[str], flag: Callable[[str], str]) -> list[str]:
    """`--flag: A there, B now` for each key whose value differs (keys missing before are skipped)."""
    return [f"{flag(k)}: {_show(before[k])} there, {_show(now[k])} now"
            for k in keys if k in before and before[k] != now[k]]


def taken(before: Mapping, now: Mapping, keys: Iterable[str], flag: Callable[[str], str]) -> str:
    """'' or `; taking the new --lr 0.01 (was 0.001), ...` for run-time settings that changed."""
    changed = [f"{flag(k)} {_show(now[k])} (was {_show(before[k])})"
               for k in keys if k in before and before[k] != now[k]]
    return f"; taking the new {', '.join(changed)}" if changed else ""


def refuse_other_setup(where: str, diffs: list[str]) -> None:
    """The one-line refusal of a resume whose model-defining settings differ."""
    if diffs:
        raise ArgumentError(f"{where} holds a run with another setup ({'; '.join(diffs)}): use the same options, "
                            "another --out, or --fresh to start over")


def random_state(device, generators: Mapping[str, object]) -> dict:
    """The random streams of a training loop, for its checkpoint: torch's CPU generator, the run's CUDA
    device's on a CUDA run, and the loop's own numpy Generators by name (the loops draw nothing from
    Python's `random` or numpy's global state, and use no DataLoader)."""
    import torch

    state = {"torch": torch.get_rng_state(),
             "numpy": {name: gen.bit_generator.state for name, gen in generators.items()}}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state(device)  # that device only: no context on the other GPUs
    return state


def restore_random_state(saved: Mapping, generators: Mapping[str, object], device="cpu") -> None:
    """Put back what `random_state` kept (the CUDA stream when this run is on CUDA too)."""
    import torch

    torch.set_rng_state(saved["torch"])
    for name, gen in generators.items():
        gen.bit_generator.state = saved["numpy"][name]
    if "cuda" in saved and str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state(saved["cuda"], device)


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@contextmanager
def saved_on_signals() -> Iterator[None]:
    """SIGINT/SIGTERM end the current step, the trainer saves (`CancelledAndSaved`), and the command exits
    130/143 with the trainer's line; the previous handlers come back after, so a caller's process keeps its own."""
    import signal
    import threading

    import click

    if threading.current_thread() is not threading.main_thread():  # handlers can only be set in the main thread
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    from stylefarm.errors import cancel_on_signals

    cancel_on_signals()
    try:
        yield
    except Cancelled as exc:
        click.echo(str(exc) if isinstance(exc, CancelledAndSaved)
                   else f"cancelled by {exc.signal} before the first step: nothing new to save", err=True)
        raise SystemExit(exc.exit_code) from None
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
