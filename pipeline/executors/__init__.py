"""Executors schedule batches of items through a chain of steps. They know nothing of models.

`local` runs in-process (the default); `ray` and `dask` are imported only when asked for.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import WorkflowError
from ..workflow import ExecutionSpec
from .base import Executor

BACKENDS = {
    "local": "stylefarm.executors.local:LocalExecutor",
    "ray": "stylefarm.executors.ray_executor:RayExecutor",
    "dask": "stylefarm.executors.dask_executor:DaskExecutor",
}


def make_executor(execution: ExecutionSpec) -> Executor:
    target = BACKENDS.get(execution.backend)
    if target is None:
        raise WorkflowError(f"unknown backend {execution.backend!r}; expected one of {', '.join(BACKENDS)}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        extra = execution.backend
        raise WorkflowError(
            f"backend {extra!r} needs extra packages ({exc.name or exc}): pip install \"stylefarm[{extra}]\""
        ) from None
    return getattr(module, cls_name)(execution)
