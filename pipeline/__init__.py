"""stylefarm host: plugin discovery, workflows, sources, sinks and executors.

Plugin authors need only this package's top level::

    from stylefarm import Item, Step, StepOptions, hookimpl

Kept import-light on purpose: the public names load on first use, and torch, ray and dask
are imported only where they are used, so `stylefarm --help` and `stylefarm plugins` start fast.
"""

if __name__ != "stylefarm":  # the folder is pipeline/, the package is stylefarm: never both
    raise ImportError(f"the stylefarm host was imported as {__name__!r}; install the project "
                      "(pip install -e .) and import `stylefarm`")

__version__ = "0.1.0"

import os as _os

from .allocator import tune as _tune_allocator

_tune_allocator()  # one malloc arena, before any thread starts (allocator.py says why)
# numpy's OpenBLAS starts a thread per core at import that spins for ~0.1 s before it sleeps
# (2^28 cycles); on 2 cores that took 0.05 s of CPU from every job's start-up and its ffmpeg.
# 2^4 cycles: idle BLAS threads sleep at once and still wake for a big product. Before numpy.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

_PUBLIC = {
    "hookimpl": "hookspecs", "Step": "step", "StepOptions": "step", "InputPath": "step", "InputImage": "step",
    "OutputDir": "step", "OneOrList": "step",
    "Item": "item", "Batch": "item", "Source": "sources", "SourceOptions": "sources",
    "Sink": "sinks", "SinkOptions": "sinks", "WeightFile": "weights",
    "load_weights": "weights", "resolve_weights": "weights",
}
__all__ = ["load_workflow", "run_workflow", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        module = importlib.import_module(f".{_PUBLIC[name]}", __name__)
        value = getattr(module, {"resolve_weights": "resolve"}.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stylefarm' has no attribute {name!r}")


def load_workflow(path, overrides=None):
    """Load and validate a workflow file; see `stylefarm.api`."""
    from .api import load_workflow as _load

    return _load(path, overrides)


def run_workflow(path, overrides=None, **kwargs):
    """Run a workflow file and return its run report; see `stylefarm.api`."""
    from .api import run_workflow as _run

    return _run(path, overrides, **kwargs)
