"""Opt-in `torch.compile` for a plugin's network, with a safe fall-back to eager mode.

Why: small-channel conv nets (cin26, magenta) are memory-bound in eager mode on CPU; inductor
fuses pad + norm + relu into a few loops and prepacks the conv weights ("freezing"), about
2x per frame at 1024 px on a 2-core CPU. The price is a one-off compile per frame size
(~50 s there), so it is worth it for video and long batches, not for a handful of images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("stylefarm.compile")


class Compiled:
    """Calls `module` through `torch.compile`; the first failure (no C compiler, an unsupported
    op) logs one warning and the module runs eagerly from then on. Same outputs either way."""

    def __init__(self, module: Any, name: str):
        import torch

        self.module, self.name = module, name
        self.compiled: Callable | None = torch.compile(module, dynamic=False, options={"freezing": True})

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as exc:  # compile errors surface at the first call
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                log.warning("%s: torch.compile failed (%s: %s); running eagerly", self.name, type(exc).__name__,
                            first)
                self.compiled = None
        return self.module(*args)


def maybe_compile(module: Any, enabled: bool, name: str) -> Callable:
    """`module` itself, or a `Compiled` wrapper when the step's `compile` option is on."""
    return Compiled(module, name) if enabled else module
