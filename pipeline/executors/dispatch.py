"""The driver loop shared by the Ray and Dask executors.

A pool (Ray actors, Dask workers) only submits a unit of work and says how it ended. This
loop owns everything else, so both backends behave the same: batching, a bound on batches in
flight (backpressure: the input is pulled lazily, never submitted whole), a reorder buffer
(outcomes leave in input order), retries of a failed batch, and isolation of an item that keeps
killing its worker (the batch is split and retried item by item; the culprit is reported).

A worker that dies with several units on it does not say which one killed it: the oldest was
probably running, but a unit that had finished can lose its reply when the process dies right
after it (seen with Ray under load: an innocent batch was charged, and its items gave up). So
then no unit is charged; each is retried *alone* (nothing else in flight beside it), where a
death is its own.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..item import Item
from ..temporal import LeadIn, chain_warmup
from .base import ChainRunner, Outcome, SegmentOutcome, batched

log = logging.getLogger("stylefarm.executor")

Result = tuple[Item | None, str | None]


@dataclass(eq=False)
class Unit:
    """Consecutive items of batch `seq` starting at `offset`: a whole batch or one isolated item."""

    seq: int
    offset: int
    items: list[Item]
    attempts: int = 0
    avoid: str | None = None  # worker it last failed on: retry elsewhere when possible
    route: str | None = None  # temporal chains: all units of one source go to one worker
    ticket: int = 0  # submission order, to settle finished units oldest first
    lead: int = 0  # leading warm-up copies (a temporal retry replays the frames before it): results dropped
    segment: Any = None  # segment mode: the SegmentTask the worker decodes, runs and writes itself
    alone: bool = False  # was on a worker that died beside other units: runs with nothing else in flight


@dataclass
class Done:
    """A unit that came back: one result per item, where it ran and how long it took there."""

    results: list[Result]
    worker: str
    seconds: float
    info: dict[str, Any]
    timings: dict[str, dict[str, Any]]


class WorkerLost(Exception):
    """A worker died. `culprit` was running on it; the other `handles` were queued behind it."""

    def __init__(self, worker: str, message: str, culprit: Hashable, handles: list[Hashable]):
        super().__init__(message)
        self.worker, self.culprit, self.handles = worker, culprit, handles


class BatchCrashed(Exception):
    """A unit failed outside the steps' own error handling; its worker is still alive."""

    def __init__(self, worker: str, message: str):
        super().__init__(message)
        self.worker = worker


class Pool(Protocol):
    def submit(self, unit: Unit) -> Hashable: ...

    def wait(self, handles: list[Hashable]) -> list[Hashable]: ...

    def collect(self, handle: Hashable) -> Done: ...


def run_unit(runner: ChainRunner, items: list[Item]) -> tuple[list[Result], float]:
    """What a worker does with one unit. `original` is dropped from results: the driver still
    holds it, so it need not travel back."""
    start = time.perf_counter()
    results = runner.run_batch(items)
    for result, _ in results:
        if result is not None:
            result.original = None
    return results, time.perf_counter() - start


def merge_timings(per_worker: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Sum each step's timings over workers (each worker reports its own running totals); what
    each worker's step decided about compiling is kept per worker."""
    merged: dict[str, dict[str, Any]] = {}
    for worker, timings in per_worker.items():
        for step, t in timings.items():
            into = merged.setdefault(step, {"seconds": 0.0, "items": 0, "batches": 0})
            for key in ("seconds", "items", "batches"):
                into[key] += t.get(key, 0)
            if t.get("compile"):
                into.setdefault("compile", {})[worker] = t["compile"]
            if t.get("in_decoder"):
                into["in_decoder"] = True
    return merged


class Dispatcher:
    """Drives a pool: `run(items)` yields one Outcome per item, in input order."""

    def __init__(self, pool: Pool, batch_size: int, max_in_flight: int, retries: int,
                 workers: dict[str, dict[str, Any]], temporal: bool = False, lead_in: int = 0):
        self.pool, self.batch_size, self.retries = pool, batch_size, retries
        self.max_in_flight = max_in_flight
        self.window = 4 * max_in_flight  # batches pulled but not yet yielded (bounds memory)
        self.workers = workers
        self.temporal = temporal
        self.lead_in = LeadIn(lead_in) if temporal and lead_in else None
        self.timings: dict[str, dict[str, dict[str, Any]]] = {}
        self.in_flight: dict[Hashable, Unit] = {}
        self.retry: deque[Unit] = deque()
        self.slots: dict[int, list[Outcome | None]] = {}
        self.next_seq = self.pulled = self.tickets = 0

    def run(self, items: Iterable[Item]) -> Iterator[Outcome]:
        source: Iterator[list[Item]] | None = batched(items, self.batch_size, by_source=self.temporal)
        while True:
            source = self._fill(source)
            if not self.in_flight:
                if self.retry or source is not None:
                    continue
                break
            ready = self.pool.wait(list(self.in_flight))
            for handle in sorted(ready, key=lambda h: self.in_flight[h].ticket if h in self.in_flight else -1):
                if handle in self.in_flight:
                    self._settle(handle)
            yield from self._release()
        yield from self._release()

    def _fill(self, source: Iterator[list[Item]] | None) -> Iterator[list[Item]] | None:
        """Submit retries first, then new batches, while under both bounds; a unit that must run
        alone waits for the others to settle, and nothing is submitted beside it."""
        while len(self.in_flight) < self.max_in_flight:
            if any(u.alone for u in self.in_flight.values()):
                break
            if self.retry:
                if self.retry[0].alone and self.in_flight:
                    break
                unit = self.retry.popleft()
            elif source is not None and self.pulled - self.next_seq < self.window:
                batch = next(source, None)
                if batch is None:
                    return None
                unit = self._new_unit(batch)
            else:
                break
            self.tickets += 1
            unit.ticket = self.tickets
            self.in_flight[self.pool.submit(unit)] = unit
        return source

    def _new_unit(self, batch: list[Item]) -> Unit:
        seq, self.pulled = self.pulled, self.pulled + 1
        self.slots[seq] = [None] * len(batch)
        route = batch[0].source if self.temporal else None
        if self.lead_in is not None:
            self.lead_in.remember(batch)
        return Unit(seq, 0, batch, route=route)

    def _settle(self, handle: Hashable) -> None:
        unit = self.in_flight[handle]
        try:
            done = self.pool.collect(handle)
        except WorkerLost as lost:
            stats = self._stats(lost.worker)
            stats["lost_batches"] += 1
            stats["died"] = True  # same for every backend (Ray's pool also marks it)
            affected = [self.in_flight.pop(h) for h in dict.fromkeys([lost.culprit, *lost.handles])
                        if h in self.in_flight]
            if len(affected) == 1:
                self._charge(affected[0], lost.worker, str(lost))
                return
            log.warning("%s died with %d units on it (%s); each is retried alone to find the one that kills it",
                        lost.worker, len(affected), lost)
            for unit in affected:  # no charge: which one killed it is not known (module doc)
                unit.alone = True
                self.retry.append(self._replayed(unit))
            return
        except BatchCrashed as crash:
            del self.in_flight[handle]
            self._charge(unit, crash.worker, str(crash))
            return
        del self.in_flight[handle]
        self._record(unit, done)

    def _charge(self, unit: Unit, worker: str, message: str) -> None:
        """Retry a failed unit; past `retries`, split it, or report its single item."""
        unit.attempts += 1
        unit.avoid = worker
        self._stats(worker)["errors"] += 1
        if unit.attempts <= self.retries:
            log.warning("batch of %d item(s) from %s failed on %s (%s); retry %d/%d",
                        len(unit.items), unit.items[0].key, worker, message, unit.attempts, self.retries)
            self.retry.append(self._replayed(unit))
        elif len(unit.items) - unit.lead > 1:
            log.warning("batch from %s keeps failing (%s); retrying its items one by one",
                        unit.items[0].key, message)
            for i, item in enumerate(unit.items[unit.lead:]):  # each gets one more attempt
                single = Unit(unit.seq, unit.offset + i, [item], self.retries, worker, unit.route, alone=unit.alone)
                self.retry.append(self._replayed(single) if i == 0 else single)
        else:
            error = f"{message} (gave up after {unit.attempts} attempt{'s' * (unit.attempts > 1)})"
            self._place(unit, [(None, error)] * len(unit.items), worker)

    def _replayed(self, unit: Unit) -> Unit:
        """A temporal unit retried (maybe on a fresh worker) first replays the frames before it."""
        if self.lead_in is not None and unit.lead == 0:
            lead = self.lead_in.before(unit.items)
            unit.items, unit.lead = lead + unit.items, len(lead)
        return unit

    def _record(self, unit: Unit, done: Done) -> None:
        stats = self._stats(done.worker)
        stats.update(done.info)
        stats["batches"] += 1
        stats["seconds"] += done.seconds
        self.timings[done.worker] = done.timings
        self._place(unit, done.results, done.worker)

    def _place(self, unit: Unit, results: list[Result], worker: str) -> None:
        stats = self._stats(worker)
        slot = self.slots[unit.seq]
        for i, (item, (result, error)) in enumerate(zip(unit.items[unit.lead:], results[unit.lead:])):
            if result is not None and result.original is None:
                result.original = item.original
            stats["items"] += 1
            stats["failures"] += error is not None
            slot[unit.offset + i] = Outcome(item, result, error, worker)

    def _release(self) -> Iterator[Outcome]:
        while self.next_seq in self.slots and all(o is not None for o in self.slots[self.next_seq]):
            yield from self.slots.pop(self.next_seq)
            self.next_seq += 1

    def _stats(self, worker: str) -> dict[str, Any]:
        return worker_row(self.workers, worker)


def worker_row(workers: dict[str, dict[str, Any]], worker: str) -> dict[str, Any]:
    """The report's row of one worker, with every counter present."""
    row = workers.setdefault(worker, {})
    for key, zero in (("items", 0), ("failures", 0), ("batches", 0), ("seconds", 0.0), ("errors", 0),
                      ("lost_batches", 0), ("died", False)):
        row.setdefault(key, zero)
    return row


class SegmentDispatcher:
    """Drives a pool with segments: at most `slots` at a time, one per worker (a segment is long;
    one queued behind a busy worker would leave another idle at the end). A segment whose worker
    died or crashed is retried on another worker up to `retries` times, then reported failed.
    Frames failing inside a segment are the worker's business (its result lists them)."""

    def __init__(self, pool: Pool, slots: int, retries: int, workers: dict[str, dict[str, Any]]):
        self.pool, self.slots, self.retries, self.workers = pool, slots, retries, workers
        self.timings: dict[str, dict[str, dict[str, Any]]] = {}
        self.in_flight: dict[Hashable, Unit] = {}
        self.todo: deque[Unit] = deque()

    def run(self, tasks: Iterable[Any]) -> Iterator[SegmentOutcome]:
        self.todo.extend(Unit(i, 0, [], segment=task) for i, task in enumerate(tasks))
        tickets = 0
        while self.todo or self.in_flight:
            while self.todo and len(self.in_flight) < self.slots:
                unit = self.todo.popleft()
                tickets += 1
                unit.ticket = tickets
                self.in_flight[self.pool.submit(unit)] = unit
            for handle in self.pool.wait(list(self.in_flight)):
                if handle in self.in_flight:
                    yield from self._settle(handle)

    def _settle(self, handle: Hashable) -> Iterator[SegmentOutcome]:
        unit = self.in_flight[handle]
        try:
            done = self.pool.collect(handle)
        except WorkerLost as lost:
            row = worker_row(self.workers, lost.worker)
            row["lost_batches"] += 1
            row["died"] = True
            for h in [lost.culprit, *lost.handles]:
                affected = self.in_flight.pop(h, None)
                if affected is not None and h == lost.culprit:
                    yield from self._charge(affected, lost.worker, str(lost))
                elif affected is not None:
                    self.todo.appendleft(affected)  # only queued behind the lost one: no charge
            return
        except BatchCrashed as crash:
            del self.in_flight[handle]
            yield from self._charge(unit, crash.worker, str(crash))
            return
        del self.in_flight[handle]
        result = done.results
        row = worker_row(self.workers, done.worker)
        row.update(done.info)
        row["batches"] += 1
        row["segments"] = row.get("segments", 0) + 1
        row["seconds"] += done.seconds
        row["items"] += len(result.done) + len(result.failed)
        row["failures"] += len(result.failed)
        self.timings[done.worker] = done.timings
        yield SegmentOutcome(unit.segment, result, None, done.worker, done.info, unit.attempts + 1)

    def _charge(self, unit: Unit, worker: str, message: str) -> Iterator[SegmentOutcome]:
        unit.attempts += 1
        unit.avoid = worker
        worker_row(self.workers, worker)["errors"] += 1
        if unit.attempts <= self.retries:
            log.warning("segment %s failed on %s (%s); retry %d/%d", unit.segment.label, worker, message,
                        unit.attempts, self.retries)
            self.todo.appendleft(unit)
            return
        error = f"{message} (gave up after {unit.attempts} attempt{'s' * (unit.attempts > 1)})"
        yield SegmentOutcome(unit.segment, None, error, worker, {}, unit.attempts)


def dispatch_segments(executor: Any, pool: Pool, tasks: Iterable[Any], slots: int) -> Iterator[SegmentOutcome]:
    """Run segment tasks through a pool; fill the executor's timings and worker stats."""
    ex = executor.execution
    dispatcher = SegmentDispatcher(pool, slots, ex.retries, executor.workers)
    try:
        yield from dispatcher.run(tasks)
    finally:
        executor.step_timings = merge_timings(dispatcher.timings)
        finish_stats(executor.workers)


def finish_stats(workers: dict[str, dict[str, Any]]) -> None:
    """Add throughput (items per busy second) to every worker's row of the report."""
    for stats in workers.values():
        seconds = stats.get("seconds", 0.0)
        stats["seconds"] = round(seconds, 4)
        stats["items_per_s"] = round(stats.get("items", 0) / seconds, 3) if seconds > 0 else None


def dispatch(executor: Any, pool: Pool, chain: list, items: Iterable[Item]) -> Iterator[Outcome]:
    """Run `items` through a pool with the executor's settings; fill its timings and worker stats."""
    ex = executor.execution
    dispatcher = Dispatcher(pool, ex.batch_size, ex.max_in_flight or 2 * ex.actors, ex.retries,
                            executor.workers, temporal=any(call.is_temporal for call in chain),
                            lead_in=chain_warmup(chain))
    try:
        yield from dispatcher.run(items)
    finally:
        executor.step_timings = merge_timings(dispatcher.timings)
        finish_stats(executor.workers)
