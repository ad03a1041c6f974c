"""The embedded default: runs the chain in this process, batch by batch, streaming."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from ..item import Item
from .base import ChainRunner, Executor, Outcome, StepCall, batched


class LocalExecutor(Executor):
    name = "local"

    def map(self, chain: list[StepCall], items: Iterable[Item]) -> Iterator[Outcome]:
        runner = ChainRunner(chain, self.execution.device, self.execution.threads)
        runner.setup()
        stats = self.workers.setdefault("local", {"items": 0, "failures": 0, "seconds": 0.0, "device": runner.device,
                                                  "weights": runner.weights_used()})
        try:
            for batch in batched(items, self.execution.batch_size):
                start = time.perf_counter()
                results = runner.run_batch(batch)
                stats["seconds"] += time.perf_counter() - start
                for item, (result, error) in zip(batch, results):
                    stats["items"] += 1
                    stats["failures"] += error is not None
                    yield Outcome(item, result, error, "local")
        finally:
            self.step_timings = runner.timings_dict()
            runner.teardown()
