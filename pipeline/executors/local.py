"""The embedded default: runs the chain in this process, batch by batch, streaming.

A chain with model steps (`uses_device`) computes in a worker thread while this thread reads the
next batch (decoding, resume checks) and hands the last results to the sinks (PNG encoding, the
video encoder's queue): at most `AHEAD` batches are in flight, so frames never pile up, and
outcomes keep their input order. Cheap numpy-only chains run inline (a thread would cost more
than it saves). Untested on CUDA: steps run their device work in that worker thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ..item import Item
from .base import ChainRunner, Executor, Outcome, SegmentOutcome, StepCall, batched


class LocalExecutor(Executor):
    name = "local"

    def map(self, chain: list[StepCall], items: Iterable[Item]) -> Iterator[Outcome]:
        runner = ChainRunner(chain, self.execution.device, self.execution.threads)
        runner.setup()
        stats = self.workers.setdefault("local", {"items": 0, "failures": 0, "seconds": 0.0, "device": runner.device,
                                                  "weights": runner.weights_used()})
        overlap = Overlap(runner) if any(call.cls.uses_device for call in chain) else None
        try:
            batches = batched(items, self.execution.batch_size)
            for batch, results, seconds in overlap.run(batches) if overlap else _inline(runner, batches):
                stats["seconds"] += seconds
                for item, (result, error) in zip(batch, results):
                    stats["items"] += 1
                    stats["failures"] += error is not None
                    yield Outcome(item, result, error, "local")
        finally:
            self.step_timings = runner.timings_dict()
            if overlap is None or overlap.stop():  # a step still computing (cancelled run) keeps its models
                runner.teardown()

    def map_segments(self, chain: list[StepCall], tasks: Iterable[Any]) -> Iterator[SegmentOutcome]:
        """Segments one after the other in this process (the reference a cluster run must match)."""
        from ..segment_work import timed_segment

        runner = ChainRunner(chain, self.execution.device, self.execution.threads)
        runner.setup()
        stats = self.workers.setdefault("local", {"items": 0, "failures": 0, "seconds": 0.0, "device": runner.device,
                                                  "weights": runner.weights_used(), "segments": 0})
        try:
            for task in tasks:
                result, seconds = timed_segment(runner, task)
                stats["seconds"] += seconds
                stats["segments"] += 1
                stats["items"] += len(result.done) + len(result.failed)
                stats["failures"] += len(result.failed)
                yield SegmentOutcome(task, result, None, "local", {"cpu_seconds": result.cpu_seconds})
        finally:
            self.step_timings = runner.timings_dict()
            runner.teardown()


AHEAD = 2  # batches in flight: one computing, one read and waiting


def _inline(runner: ChainRunner, batches: Iterable[list[Item]]) -> Iterator[tuple[list[Item], list, float]]:
    for batch in batches:
        start = time.perf_counter()
        results = runner.run_batch(batch)
        yield batch, results, time.perf_counter() - start


class Overlap:
    """The chain in a worker thread, fed and drained in order through bounded queues; an exception
    a batch raised is raised again here, where the inline loop would have raised it."""

    def __init__(self, runner: ChainRunner):
        self.runner = runner
        self.todo: queue.Queue = queue.Queue(AHEAD)
        self.done: queue.Queue = queue.Queue()  # never holds more than AHEAD results (see `run`)
        self.stopping = threading.Event()
        self.peak = 0  # most batches ever in flight (tests)
        self.thread = threading.Thread(target=self._work, name="stylefarm-compute", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (batch := self.todo.get()) is not None and not self.stopping.is_set():
            start = time.perf_counter()
            try:
                results: Any = self.runner.run_batch(batch)
            except BaseException as exc:  # raised again in the consuming thread
                results = exc
            self.done.put((batch, results, time.perf_counter() - start))

    def _result(self) -> tuple[list[Item], list, float]:
        batch, results, seconds = self.done.get()
        if isinstance(results, BaseException):
            raise results
        return batch, results, seconds

    def run(self, batches: Iterable[list[Item]]) -> Iterator[tuple[list[Item], list, float]]:
        in_flight = 0
        for batch in batches:
            self.todo.put(batch)
            in_flight += 1
            self.peak = max(self.peak, in_flight)
            while in_flight >= AHEAD or (in_flight and not self.done.empty()):
                in_flight -= 1
                yield self._result()
        while in_flight:
            in_flight -= 1
            yield self._result()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the worker; False if a step is still computing after `timeout` (cancelled runs)."""
        self.stopping.set()
        try:
            self.todo.put_nowait(None)
        except queue.Full:  # a cancelled run left batches queued: the worker stops at the next one
            pass
        self.thread.join(timeout)
        return not self.thread.is_alive()
