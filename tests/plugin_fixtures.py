"""Throw-away third-party plugins for tests: a module plus a dist-info folder on a site path,
discovered through the `stylefarm` entry-point group exactly as an installed wheel would be."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest


def fake_distribution(root: Path, name: str, entry: str, module: str | None = None) -> None:
    """An installed distribution (dist-info on sys.path) whose `stylefarm` entry point is `entry`."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stylefarm]\n{entry}\n")
    if module:
        (root / f"{entry.split('=')[1].strip()}.py").write_text(module)


BAD_PACKAGED = '''
from stylefarm import hookimpl
from stylefarm.weights import WeightFile


@hookimpl
def stylefarm_register_weights():
    return [WeightFile(name="acmew_net/packaged", filename="p.pt", packaged="acme_stlyes:weights/p.pt"),
            WeightFile(name="acmew_net/module", filename="m.pt", packaged="acme_w:weights/m.pt"),
            WeightFile(name="acmew_net/plain", filename="plain.pt", url="https://example.invalid/plain.pt")]
'''
"""A plugin (module `acme_w`, distribution `acme-w`) with a typo in one `packaged=` package name,
a module (itself) where a package belongs in another, and one sound weights record."""


def bad_packaged_site(root: Path) -> Path:
    """A site folder holding the `acme-w` distribution of `BAD_PACKAGED`."""
    fake_distribution(root, "acme-w", "acme_w = acme_w", BAD_PACKAGED)
    return root


def host_with(monkeypatch: pytest.MonkeyPatch, site: Path):
    """A fresh host that also sees the distributions in `site`, installed as the process's host
    (the weights manager resolves through it); its `acme_*` modules are forgotten afterwards."""
    from stylefarm.host import PluginHost

    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    for module in [m for m in sys.modules if m.startswith("acme_")]:
        monkeypatch.delitem(sys.modules, module)
    host = PluginHost()
    for module in [m for m in sys.modules if m.startswith("acme_")]:
        monkeypatch.setitem(sys.modules, module, sys.modules.pop(module))  # recorded as new: undo removes it
    monkeypatch.setattr("stylefarm.host._HOST", host)
    return host


def env_with(site: Path, **extra: str) -> dict[str, str]:
    """The environment of a child `stylefarm` process that sees the distributions in `site`."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **extra}
