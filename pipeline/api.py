"""Python API for people scripting around stylefarm.

    from stylefarm.api import load_workflow, run_workflow
    plan = load_workflow("workflows/quickstart.yaml", overrides=["execution.batch_size=2"])
    report = run_workflow("workflows/quickstart.yaml", force=True)
    print(report["counts"])
"""

from __future__ import annotations

import os
from pathlib import Path

from .plan import Plan, build_plan
from .runner import Run
from .workflow import apply_override, read_yaml_file


def load_workflow(path: str | os.PathLike, overrides: list[str] | None = None) -> Plan:
    """Read, override (`a.b=value` strings) and validate a workflow; returns the Plan."""
    doc = read_yaml_file(path)
    if overrides:
        if not isinstance(doc.data, dict):
            doc.data = {}
        for assignment in overrides:
            apply_override(doc.data, assignment)
    return build_plan(doc, Path(path).resolve().parent)


def run_plan(plan: Plan, force: bool = False, progress: bool = False, item_filter=None) -> dict:
    """Run a Plan and return its report dict (also written to `<output>/.stylefarm/report.json`)."""
    return Run(plan, force=force, progress=progress, item_filter=item_filter).execute()


def run_workflow(path: str | os.PathLike, overrides: list[str] | None = None, force: bool = False,
                 progress: bool = False) -> dict:
    """Load and run a workflow file; returns the report dict."""
    return run_plan(load_workflow(path, overrides), force=force, progress=progress)
