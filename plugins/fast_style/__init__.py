"""fast_style plugin: feed-forward style nets users train (Johnson et al.; conditional IN, Dumoulin et al.).

Registers the `fast_style` step, `stylefarm train fast-style`, and every net installed in the
weights cache by that command (`fast_style/<name>`, listed by `stylefarm weights`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from stylefarm.hookspecs import hookimpl
from stylefarm.weights import WeightFile, cache_dir

PREFIX = "fast_style__"  # cache folder of weights `fast_style/<name>` (the weights manager's layout)


def installed_nets() -> list[WeightFile]:
    """Nets `stylefarm train fast-style` installed in the weights cache; the sidecar JSON names their styles."""
    root = cache_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.glob(f"{PREFIX}*")):
        name = folder.name[len(PREFIX):]
        meta = folder / f"{name}.json"
        try:
            info = json.loads(meta.read_text()) if meta.is_file() else {}
        except (OSError, ValueError):
            info = {}
        styles = ", ".join(info.get("styles", [])) or "see the file"
        found.append(WeightFile(name=f"fast_style/{name}", filename=f"{name}.pt", license="trained by you",
                                note=f"trained with `stylefarm train fast-style`; styles: {styles}"))
    return found


def install_net(name: str, path: Path, config) -> Path:
    """Copy a trained net into the weights cache as `fast_style/<name>` (atomic), with its style names."""
    folder = cache_dir() / f"{PREFIX}{name}"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{name}.pt"
    tmp = dest.with_suffix(".part")
    shutil.copyfile(path, tmp)
    os.replace(tmp, dest)
    (folder / f"{name}.json").write_text(json.dumps({"styles": config.style_names(), "layout": config.to_dict()}))
    return dest


@hookimpl
def stylefarm_register_steps():
    from .step import FastStyleStep

    return [FastStyleStep]


@hookimpl
def stylefarm_register_weights():
    return installed_nets()


@hookimpl
def stylefarm_register_train_commands():
    from .cli import train_command

    return [train_command]
