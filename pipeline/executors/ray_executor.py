"""Ray executor: a pool of Ray Core actors, each holding the whole chain (fused), models loaded once.

Why Core actors and not Ray Data `map_batches`: the farm pipeline needs exact input order
(video), per-item failure reports, a bounded number of batches in flight and a few seconds of
start-up at most; benchmarks/distributed_raydata.py measured Ray Data adding ~3 s per run on
this kind of job for no throughput gain. Why one pool per fused chain, not one per step: items
cross the object store once per batch instead of once per step, and a chain is usually one
model plus cheap utilities. The driver loop (order, backpressure, retries) is `Dispatcher`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

from ..errors import StylefarmError, reachable
from ..item import Item
from ..segment_work import cpu_seconds, probe_storage, timed_segment
from ..workflow import ExecutionSpec
from .base import ChainRunner, Executor, Outcome, StepCall
from .dispatch import BatchCrashed, Done, Unit, WorkerLost, dispatch, dispatch_segments, run_unit

log = logging.getLogger("stylefarm.executor.ray")
MAX_DEATHS_IN_A_ROW = 8  # actors dying with no batch finishing in between: give up, it is not one bad item


class ChainActor:
    """Lives in a Ray worker process: builds and sets up the chain once, then runs batches."""

    def __init__(self, chain: list[StepCall], device: str, threads: int | None):
        gpus = _ray_gpus()
        self.runner = ChainRunner(chain, actor_device(device, gpus), threads)
        self.runner.setup()
        self.info = {"pid": os.getpid(), "device": self.runner.device, "gpus": gpus, **_node(),
                     "weights": self.runner.weights_used()}
        self.cpu0 = cpu_seconds()

    def ready(self) -> dict[str, Any]:
        return self.info

    def _info(self) -> dict[str, Any]:
        return {**self.info, "cpu_seconds": round(cpu_seconds() - self.cpu0, 3)}

    def run(self, items: list[Item]) -> tuple[list, float, dict[str, Any], dict]:
        results, seconds = run_unit(self.runner, items)
        return results, seconds, self._info(), self.runner.timings_dict()

    def run_segment(self, task: Any) -> tuple[Any, float, dict[str, Any], dict]:
        result, seconds = timed_segment(self.runner, task)
        return result, seconds, self._info(), self.runner.timings_dict()


def _ray_gpus() -> list[str]:
    """The GPU ids Ray gave this actor (Ray sets CUDA_VISIBLE_DEVICES to them); [] for none."""
    import ray

    return [str(i) for i in ray.get_gpu_ids()]


def actor_device(spec: str, gpus: list[str]) -> str:
    """`device: auto` in an actor that Ray gave no GPU means the CPU. Why: Ray leaves
    CUDA_VISIBLE_DEVICES alone for an actor with num_gpus=0 (measured, Ray 2.60), so torch there
    sees every GPU of its node and `auto` would put it on GPU 0, beside the actors holding it."""
    return "cpu" if spec == "auto" and not gpus else spec


def gpu_warnings(workers: dict[str, dict[str, Any]]) -> list[str]:
    """Actors that hold Ray GPUs but run on the CPU: the reservation idles (a CPU-only torch build
    on a GPU node, or a chain with no model step)."""
    return [f"{name} holds Ray GPU {','.join(w['gpus'])} but runs on cpu: torch on its node sees no "
            "CUDA device, or no step of the chain uses one"
            for name, w in workers.items() if w.get("gpus") and w.get("device") == "cpu"]


def _node() -> dict[str, str]:
    """Where an actor runs: the node's IP and its Ray node id (several nodes may share an IP)."""
    import ray

    return {"node": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id()}


def _probe_on_node(inputs: list[str], root: str, token: str) -> dict[str, str | None]:
    answer = probe_storage(inputs, root, token)
    answer["worker"] = f"{answer['worker']} (Ray node {_node()['node_id'][:12]})"
    return answer


def connect(execution: ExecutionSpec) -> bool:
    """Join `address` or start a local cluster; True when this process started it (and stops it)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if ray.is_initialized():
        return False
    common = {"logging_level": logging.WARNING}
    if execution.address:
        reachable(execution.address, execution.connect_timeout, "Ray cluster")
        ray.init(address=execution.address, **common)
        return True
    cpus = max(os.cpu_count() or 1, math.ceil(execution.actors * execution.cpus_per_actor))
    ray.init(num_cpus=cpus, include_dashboard=False, **common)
    return True


class RayPool:
    """Actors by name; which calls each one has in flight (Ray runs one caller's calls in order)."""

    def __init__(self, chain: list[StepCall], execution: ExecutionSpec, workers: dict[str, dict[str, Any]]):
        import ray

        self.ray, self.chain, self.execution, self.workers = ray, chain, execution, workers
        self.remote = ray.remote(ChainActor).options(  # SPREAD: one actor per node first (a GPU each)
            num_cpus=execution.cpus_per_actor, num_gpus=execution.gpus_per_actor, max_restarts=0,
            scheduling_strategy="SPREAD")
        self.actors: dict[str, Any] = {}
        self.queued: dict[str, list[Hashable]] = {}
        self.owner: dict[Hashable, str] = {}
        self.routes: dict[str, str] = {}
        self.count = self.deaths_in_a_row = 0
        self._check_resources()
        for _ in range(execution.actors):
            self._spawn()
        self._wait_ready()

    def _check_resources(self) -> None:
        """An actor must fit on one node: one that fits nowhere would wait forever."""
        gpus, cpus = self.execution.gpus_per_actor, self.execution.cpus_per_actor
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            most = {r: max((n.get(r, 0) for n in nodes), default=0) for r in ("CPU", "GPU")}
            raise StylefarmError(
                f"no node of the Ray cluster ({len(nodes)} node(s), at most {most['CPU']:g} CPU and {most['GPU']:g} "
                f"GPU on one) can hold one actor asking for {cpus:g} CPU and {gpus:g} GPU; "
                "lower execution.cpus_per_actor/gpus_per_actor")

    def _spawn(self) -> str:
        name = f"ray-actor-{self.count}"
        self.count += 1
        self.actors[name] = self.remote.remote(self.chain, self.execution.device, self.execution.threads)
        self.queued[name] = []
        return name

    def _wait_ready(self) -> None:
        """Fail fast when setup fails (missing weights...); warn while actors wait for resources."""
        refs = {self.actors[n].ready.remote(): n for n in self.actors}
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=len(pending), timeout=30)
            for ref in done:
                try:
                    self.workers.setdefault(refs[ref], {}).update(self.ray.get(ref))
                except self.ray.exceptions.RayActorError as exc:
                    raise StylefarmError(f"a Ray actor could not set up the chain: {_cause(exc)}") from None
            if pending and done:
                log.warning("%d actor(s) still waiting for resources; going on with %d", len(pending), len(done))
                break
            if pending:
                log.warning("no actor started yet after 30 s: is there a node with %g CPU / %g GPU free?",
                            self.execution.cpus_per_actor, self.execution.gpus_per_actor)
        for line in gpu_warnings({n: self.workers.get(n, {}) for n in refs.values()}):
            log.warning(line)

    def submit(self, unit: Unit) -> Hashable:
        name = self._pick(unit)
        actor = self.actors[name]
        ref = actor.run_segment.remote(unit.segment) if unit.segment is not None else actor.run.remote(unit.items)
        self.queued[name].append(ref)
        self.owner[ref] = name
        return ref

    def _pick(self, unit: Unit) -> str:
        if unit.route is not None and self.routes.get(unit.route) in self.actors:
            return self.routes[unit.route]
        name = min(self.actors, key=lambda n: (n == unit.avoid and len(self.actors) > 1, len(self.queued[n])))
        if unit.route is not None:
            self.routes[unit.route] = name
        return name

    def wait(self, handles: list[Hashable]) -> list[Hashable]:
        ready, rest = self.ray.wait(handles, num_returns=1)
        more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0) if rest else ([], [])
        return ready + more

    def collect(self, handle: Hashable) -> Done:
        name = self.owner[handle]
        try:
            results, seconds, info, timings = self.ray.get(handle)
        except self.ray.exceptions.RayActorError as exc:
            raise self._lost(name, exc) from None
        except self.ray.exceptions.RayError as exc:
            self._forget(handle)
            raise BatchCrashed(name, f"worker error: {_cause(exc)}") from None
        self._forget(handle)
        self.deaths_in_a_row = 0
        return Done(results, name, seconds, info, timings)

    def _forget(self, handle: Hashable) -> None:
        name = self.owner.pop(handle)
        if handle in self.queued.get(name, []):
            self.queued[name].remove(handle)

    def _lost(self, name: str, exc: Exception) -> WorkerLost:
        """Replace a dead actor; its oldest call was running (the culprit), the rest only queued."""
        handles = self.queued.pop(name, [])
        for h in handles:
            self.owner.pop(h, None)
        self.actors.pop(name, None)
        self.workers.setdefault(name, {})["died"] = True
        self.deaths_in_a_row += 1
        if self.deaths_in_a_row > MAX_DEATHS_IN_A_ROW:
            raise StylefarmError(f"Ray actors keep dying ({self.deaths_in_a_row} in a row): {_cause(exc)}")
        new = self._spawn()
        log.warning("%s died (%s); replaced by %s", name, _cause(exc), new)
        return WorkerLost(name, f"worker died: {_cause(exc)}", handles[0], handles)

    def shutdown(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.actors.clear()


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return first[:300]


class RayExecutor(Executor):
    """Runs the chain on `actors` Ray actors; see the module docstring for the design."""

    name = "ray"

    def __init__(self, execution: ExecutionSpec):
        super().__init__(execution)
        self.started = False
        self.pool: RayPool | None = None

    def map(self, chain: list[StepCall], items: Iterable[Item]) -> Iterator[Outcome]:
        self.started = connect(self.execution) or self.started
        ex = self.execution
        start = time.perf_counter()
        self.pool = RayPool(chain, ex, self.workers)
        log.info("%d Ray actor(s) ready in %.1fs", ex.actors, time.perf_counter() - start)
        try:
            yield from dispatch(self, self.pool, chain, items)
        finally:
            self.pool.shutdown()

    def map_segments(self, chain: list[StepCall], tasks: Iterable[Any]) -> Iterator[Any]:
        self.started = connect(self.execution) or self.started
        self.pool = RayPool(chain, self.execution, self.workers)
        try:
            yield from dispatch_segments(self, self.pool, tasks, self.execution.actors)
        finally:
            self.pool.shutdown()

    def check_storage(self, inputs: list[str], root: str, token: str) -> list[dict[str, str | None]]:
        """The probe on every alive node that could hold an actor (not only where actors are now:
        a replacement may start anywhere)."""
        self.started = connect(self.execution) or self.started
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ex = self.execution
        fits = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= ex.cpus_per_actor]
        nodes = [n["NodeID"] for n in fits if n["Resources"].get("GPU", 0) >= ex.gpus_per_actor]
        probe = ray.remote(num_cpus=0)(_probe_on_node)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                .remote(inputs, root, token) for node in nodes]
        return ray.get(refs, timeout=max(60.0, ex.connect_timeout))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        if self.started:
            import ray

            ray.shutdown()
            self.started = False
