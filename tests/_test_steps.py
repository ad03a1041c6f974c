"""Steps for distributed tests. Importable by Ray/Dask workers (tests/ on PYTHONPATH), since
executors ship step classes by reference."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import Field

from stylefarm.hookspecs import hookimpl
from stylefarm.item import Batch
from stylefarm.step import Step, StepOptions


class PoisonOptions(StepOptions):
    indexes: list[int] = Field(default_factory=list, description="items that always raise")
    unless_env: str | None = Field(None, description="raise only while this environment variable is unset")


class Poison(Step):
    """Raises on chosen items (a step bug or a corrupt frame)."""

    name = "test_poison"
    uses_device = False
    Options = PoisonOptions

    def process(self, batch: Batch) -> Batch:
        healed = self.options.unless_env is not None and bool(os.environ.get(self.options.unless_env))
        for item in batch:
            if item.index in self.options.indexes and not healed:
                raise ValueError(f"item {item.index} is poisoned")
        return batch


class ExitOptions(StepOptions):
    index: int = Field(description="item whose processing kills the worker process")
    marker: str | None = Field(None, description="if set: exit only while this file does not exist (once)")


class ExitProcess(Step):
    """Kills its own process (os._exit) on one item, like a segfault in a native library."""

    name = "test_exit"
    uses_device = False
    Options = ExitOptions

    def process(self, batch: Batch) -> Batch:
        marker = Path(self.options.marker) if self.options.marker else None
        for item in batch:
            if item.index == self.options.index and not (marker and marker.exists()):
                if marker:
                    marker.touch()
                os._exit(17)
        return batch


class SleepOptions(StepOptions):
    seconds: float = 0.2
    indexes: list[int] = Field(default_factory=list, description="items that are slow")


class Sleep(Step):
    """Makes chosen items slow so that batches finish out of order."""

    name = "test_sleep"
    uses_device = False
    Options = SleepOptions

    def process(self, batch: Batch) -> Batch:
        if any(item.index in self.options.indexes for item in batch):
            time.sleep(self.options.seconds)
        return batch


class FrameLog(Step):
    """Temporal: notes which instance saw each frame and the frame it saw before of that source."""

    name = "test_frame_log"
    uses_device = False
    temporal = True

    def setup(self, device: str) -> None:
        super().setup(device)
        self.instance = f"{os.getpid()}-{id(self)}"
        self.last: dict[str, int] = {}

    def process(self, batch: Batch) -> Batch:
        out = []
        for item in batch:
            done = item.with_image(item.image)
            done.meta = {**item.meta, "instance": self.instance, "previous": self.last.get(item.source)}
            self.last[item.source] = item.index
            out.append(done)
        return out


class BadOutputOptions(StepOptions):
    modes: dict[int, str] = Field(default_factory=dict, description="item index -> what goes wrong")


def broken(image, mode: str | None):
    """The image a careless plugin returns for each mode."""
    if mode == "uint8":
        return (image * 255).astype("uint8")
    if mode == "scale255":
        return image * 255
    if mode == "chw":
        return image.transpose(2, 0, 1).copy()
    if mode == "nan":
        return image + float("nan")
    return image.mean(axis=2) if mode == "gray" else image


class BadOutput(Step):
    """Breaks the image contract on chosen items, the ways real plugin bugs do."""

    name = "test_bad_output"
    uses_device = False
    Options = BadOutputOptions

    def process(self, batch: Batch) -> Batch:
        out = []
        for item in batch:
            mode, image = self.options.modes.get(item.index), item.image
            if mode == "inplace":
                image *= 0.5  # edits the array it was handed
                out.append(item)
                continue
            bad = broken(image, mode)
            done = item.with_image(image)
            done.image = bad  # bypass with_image's conversion, as a careless plugin would
            out.append(done)
        return out


@hookimpl
def stylefarm_register_steps():
    return [Poison, ExitProcess, Sleep, FrameLog, BadOutput]
