"""stylefarm host: plugin discovery, workflows, sources, sinks and executors.

Kept import-light on purpose: torch, ray and dask are imported only where they are used,
so `stylefarm --help` and `stylefarm plugins` start fast.
"""

__version__ = "0.1.0"


def load_workflow(path, overrides=None):
    """Load and validate a workflow file; see `pipeline.api`."""
    from .api import load_workflow as _load

    return _load(path, overrides)


def run_workflow(path, overrides=None, **kwargs):
    """Run a workflow file and return its run report; see `pipeline.api`."""
    from .api import run_workflow as _run

    return _run(path, overrides, **kwargs)
