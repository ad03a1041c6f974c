"""Dask executor: batches as tasks on a `distributed.Client`; each worker keeps one set-up chain.

The chain is built and set up the first time a worker sees it and then cached on the worker
object (keyed by a hash of the chain), so models load once per worker, not once per task.
Same driver loop as Ray (`Dispatcher`): input order, bounded tasks in flight, retries, isolation.

Cluster: `execution.address` (a scheduler address, or a scheduler file `*.json` written by
`dask scheduler --scheduler-file`, e.g. under Slurm) or a LocalCluster of `actors` workers.
`STYLEFARM_DASK_PROCESSES=0` makes the local cluster use threads in this process (tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import socket
import threading
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

from ..errors import ClusterError, first_line, reachable
from ..item import Item
from ..segment_work import probe_storage, timed_segment
from ..workflow import ExecutionSpec
from .base import ChainRunner, Executor, Outcome, StepCall
from .dispatch import BatchCrashed, Done, Unit, WorkerLost, dispatch, dispatch_segments, run_unit

log = logging.getLogger("stylefarm.executor.dask")
_CACHE_LOCK = threading.Lock()


def chain_key(chain: list[StepCall], device: str, threads: int | None) -> str:
    """Identifies a set-up chain on a worker; a different workflow gets its own runner."""
    try:
        raw = pickle.dumps((chain, device, threads))
    except Exception:
        raw = repr((chain, device, threads)).encode()
    return hashlib.sha1(raw).hexdigest()


def _runner_on_worker(worker: Any, key: str, chain: list[StepCall], device: str,
                      threads: int | None) -> tuple[ChainRunner, threading.Lock]:
    with _CACHE_LOCK:
        cache = worker.__dict__.setdefault("_stylefarm_runners", {})
        if key not in cache:
            runner = ChainRunner(chain, device, threads)
            runner.setup()
            cache[key] = (runner, threading.Lock())
        return cache[key]


def run_on_worker(key: str, chain: list[StepCall], device: str, threads: int | None,
                  items: list[Item]) -> tuple[list, float, str, dict[str, Any], dict]:
    """The Dask task: one batch through this worker's cached chain (one batch at a time)."""
    from distributed import get_worker

    worker = get_worker()
    runner, lock = _runner_on_worker(worker, key, chain, device, threads)
    with lock:
        results, seconds = run_unit(runner, items)
        timings = runner.timings_dict()
    info = {"pid": os.getpid(), "device": runner.device, "name": str(worker.name), "weights": runner.weights_used()}
    return results, seconds, worker_label(worker.address), info, timings


def segment_on_worker(key: str, chain: list[StepCall], device: str, threads: int | None,
                      task: Any) -> tuple[Any, float, str, dict[str, Any], dict]:
    """The Dask task of segment mode: one segment, decoded, run and written on this worker."""
    from distributed import get_worker

    worker = get_worker()
    runner, lock = _runner_on_worker(worker, key, chain, device, threads)
    with lock:
        result, seconds = timed_segment(runner, task)
        timings = runner.timings_dict()
    info = {"pid": os.getpid(), "device": runner.device, "name": str(worker.name), "node": socket.gethostname(),
            "weights": runner.weights_used(), "cpu_seconds": round(result.cpu_seconds, 3)}
    return result, seconds, worker_label(worker.address), info, timings


def worker_label(address: str) -> str:
    """Report row of one worker process (a restarted worker gets a new address, a new row)."""
    return f"dask-worker@{address.split('://')[-1]}"



class DaskPool:
    """Submits units as tasks; a worker that dies mid-task surfaces as KilledWorker."""

    def __init__(self, client: Any, chain: list[StepCall], execution: ExecutionSpec):
        self.client, self.chain, self.execution = client, chain, execution
        self.key = chain_key(chain, execution.device, execution.threads)
        gpus = execution.gpus_per_actor
        self.resources = {"GPU": gpus} if gpus > 0 else None
        self.routes: dict[str, str] = {}
        if gpus > 0:
            self._check_gpus(gpus)

    def _check_gpus(self, gpus: float) -> None:
        """A task asking for more GPU than every worker declares waits forever (Dask keeps it
        in 'no-worker'): fail in one line instead. No workers yet (a cluster still scaling up)
        is left to wait."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        if not workers:
            log.warning("no Dask worker yet: the tasks wait for workers started with --resources GPU=%g", gpus)
            return
        most = max((w.get("resources") or {}).get("GPU", 0) for w in workers.values())
        if most < gpus:
            raise ClusterError(
                f"no worker of the Dask cluster ({len(workers)} worker(s), GPU resource at most {most:g}) can "
                f"run a task asking for {gpus:g} GPU: start workers with --resources GPU=1, or lower "
                "execution.gpus_per_actor")

    def submit(self, unit: Unit) -> Hashable:
        ex = self.execution
        workers = self._workers_for(unit)
        placement = {"workers": workers, "allow_other_workers": unit.route is None} if workers else {}
        fn, work = (segment_on_worker, unit.segment) if unit.segment is not None else (run_on_worker, unit.items)
        return self.client.submit(fn, self.key, self.chain, ex.device, ex.threads, work,
                                  pure=False, resources=self.resources, priority=-unit.ticket, **placement)

    def _workers_for(self, unit: Unit) -> list[str] | None:
        """Temporal chains: one source stays on one worker. Retries: prefer another worker."""
        if unit.route is None and unit.avoid is None:
            return None
        alive = sorted(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        if unit.route is not None:
            if self.routes.get(unit.route) not in alive and alive:
                self.routes[unit.route] = alive[len(self.routes) % len(alive)]
            return [self.routes[unit.route]] if unit.route in self.routes else None
        others = [w for w in alive if worker_label(w) != unit.avoid]
        return others if 0 < len(others) < len(alive) else None

    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        from distributed import wait

        done, _ = wait(handles, return_when="FIRST_COMPLETED")
        return list(done)

    def collect(self, handle: Hashable) -> Done:
        from distributed import KilledWorker

        try:
            results, seconds, name, info, timings = handle.result()
        except KilledWorker as exc:
            last = getattr(exc, "last_worker", None)
            where = worker_label(getattr(last, "address", str(last))) if last else "dask-unattributed"
            raise WorkerLost(where, "worker process died", handle, [handle]) from None
        except Exception as exc:
            text = (str(exc).strip().splitlines() or [""])[0][:300]
            raise BatchCrashed("dask-unattributed", f"task error: {type(exc).__name__}: {text}") from None
        finally:
            handle.release()
        return Done(results, name, seconds, info, timings)


def start_client(execution: ExecutionSpec) -> tuple[Any, Any]:
    """(client, cluster-or-None). A cluster we start tolerates no re-runs of a task whose
    worker died: our own retry logic decides, so a killer item is not run 4 extra times."""
    import dask
    from distributed import Client, LocalCluster

    address, timeout = execution.address, execution.connect_timeout
    try:
        if address and address.endswith(".json"):
            return Client(scheduler_file=address, timeout=f"{timeout}s"), None
        if address:
            reachable(address, timeout, "Dask scheduler")
            return Client(address, timeout=f"{timeout}s"), None
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot join the Dask scheduler at {address} within {timeout:g} s: "
                           f"{first_line(exc)}") from None
    quiet = logging.getLogger().level > logging.DEBUG  # farm logs: our lines, Dask's warnings
    if quiet:  # distributed sets its loggers to INFO when imported: ~15 start-up and shutdown lines a run
        logging.getLogger("distributed").setLevel(logging.WARNING)
    processes = os.environ.get("STYLEFARM_DASK_PROCESSES", "1") not in ("0", "false", "no")
    resources = {"GPU": max(1.0, execution.gpus_per_actor)} if execution.gpus_per_actor > 0 else None
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=execution.actors, threads_per_worker=1, processes=processes,
                               dashboard_address=None, resources=resources,
                               silence_logs=logging.ERROR if quiet else logging.DEBUG)
    return Client(cluster), cluster


class DaskExecutor(Executor):
    """Runs the chain as Dask tasks; see the module docstring."""

    name = "dask"

    def __init__(self, execution: ExecutionSpec):
        super().__init__(execution)
        self.client: Any = None
        self.cluster: Any = None

    def map(self, chain: list[StepCall], items: Iterable[Item]) -> Iterator[Outcome]:
        if self.client is None:
            self.client, self.cluster = start_client(self.execution)
        yield from dispatch(self, DaskPool(self.client, chain, self.execution), chain, items)

    def map_segments(self, chain: list[StepCall], tasks: Iterable[Any]) -> Iterator[Any]:
        if self.client is None:
            self.client, self.cluster = start_client(self.execution)
        slots = len(self.client.scheduler_info(n_workers=-1).get("workers", {})) or self.execution.actors
        yield from dispatch_segments(self, DaskPool(self.client, chain, self.execution), tasks, slots)

    def check_storage(self, inputs: list[str], root: str, token: str) -> list[dict[str, str | None]]:
        if self.client is None:
            self.client, self.cluster = start_client(self.execution)
        answers = self.client.run(probe_storage, inputs, root, token)
        for address, answer in answers.items():
            answer["worker"] = f"{answer['worker']} (dask worker {address.split('://')[-1]})"
        return [answers[address] for address in sorted(answers)]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None
