"""Local executor: streaming in batches, device selection, poisoned items isolated."""

from __future__ import annotations

import numpy as np
import pytest

from stylefarm.errors import DeviceError
from stylefarm.executors.base import ChainRunner, StepCall, resolve_device
from stylefarm.executors.local import LocalExecutor
from stylefarm.item import Item
from stylefarm.step import Step, StepOptions
from stylefarm.workflow import ExecutionSpec


class Count(Step):
    name = "count"
    uses_device = False
    setups = 0

    def setup(self, device):
        Count.setups += 1

    def process(self, batch):
        return [it.with_image(it.image + 1) for it in batch]


class Poison(Step):
    name = "poison"
    uses_device = False

    def process(self, batch):
        if any(it.index == 3 for it in batch):
            raise ValueError("item 3 is poisoned")
        return batch


def items(n, pulled):
    for i in range(n):
        pulled.append(i)
        yield Item(source="gen", index=i, image=np.zeros((2, 2, 3), np.float32))


def test_items_stream_in_batches_without_accumulating():
    pulled: list[int] = []
    ex = LocalExecutor(ExecutionSpec(batch_size=3, device="cpu"))
    stream = ex.map([StepCall("count", Count, StepOptions())], items(100, pulled))
    first = next(stream)
    assert first.item.index == 0 and first.result.image[0, 0, 0] == 1
    assert len(pulled) <= 4  # one batch (+ the look-ahead that ends it)
    rest = list(stream)
    assert len(rest) == 99 and [o.item.index for o in rest] == list(range(1, 100))


def test_models_set_up_once_per_run():
    Count.setups = 0
    ex = LocalExecutor(ExecutionSpec(batch_size=2, device="cpu"))
    list(ex.map([StepCall("count", Count, StepOptions())], items(10, [])))
    assert Count.setups == 1 and ex.step_timings["count"]["items"] == 10


def test_poisoned_item_fails_alone():
    ex = LocalExecutor(ExecutionSpec(batch_size=4, device="cpu"))
    chain = [StepCall("count", Count, StepOptions()), StepCall("poison", Poison, StepOptions())]
    outcomes = list(ex.map(chain, items(8, [])))
    errors = {o.item.index: o.error for o in outcomes if o.error}
    assert list(errors) == [3] and "item 3 is poisoned" in errors[3] and "'poison'" in errors[3]
    assert sum(o.result is not None for o in outcomes) == 7


def test_device_selection():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda")


def test_cuda_asked_for_where_there_is_none_is_one_line(cli, workflow):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    wf = workflow("inputs: [{generate: gradient, count: 1, width: 32, height: 32}]\n"
                  "steps: [{use: cin26, with: {style: 3}}]\noutput: {dir: out}\n")
    result = cli("run", str(wf), "--device", "cuda", "--no-progress")
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert result.returncode == 1 and errors == ["error: device 'cuda' requested but torch sees no CUDA device; "
                                                  "use device: cpu or auto"], result.stderr


@pytest.mark.gpu
def test_cuda_device_is_used_when_present():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    runner = ChainRunner([StepCall("count", Count, StepOptions())], "cuda")
    Count.uses_device = True
    try:
        runner.setup()
        assert runner.device == "cuda"
    finally:
        Count.uses_device = False
