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
SHIPPED = [
    WeightFile(
        name="fast_style/hubble_cpu", filename="hubble_cpu.pt",
        packaged="stylefarm.plugins.fast_style:weights/hubble_cpu.pt",
        sha256="c9c49cdbcb3b585c5a434a09056abeaa56e94ae2a2f112885378108fed0b2cee",
        license="CC0 (trained by stylefarm on its public-domain / CC0 demo media)",
        note="example: cin26 layout, one style (hubble); 3272 steps, 25 min on one CPU core, inception-trunk loss",
    ),
]


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
    return SHIPPED + installed_nets()


@hookimpl
def stylefarm_register_train_commands():
    from .cli import train_command

    return [train_command]
