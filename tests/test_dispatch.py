"""The driver loop's attribution of a worker death (pipeline/executors/dispatch.py).

A scripted pool stands in for Ray here because the case under test is a race Ray cannot be made
to lose on purpose: a worker that finished one unit and died in the next can lose the first
one's reply, so "the oldest unit on it was running" names an innocent unit. The real clusters
are exercised in tests/test_distributed.py."""

from __future__ import annotations

import numpy as np

from stylefarm.executors.dispatch import Dispatcher, Done, Unit, WorkerLost
from stylefarm.item import Item


class RacyPool:
    """Workers run their queues in order. A unit holding item `kill` kills its worker, and the
    reply of the unit that finished just before it on that worker is lost with the process."""

    def __init__(self, kill: int, workers: int = 2):
        self.kill, self.count = kill, 0
        self.queues: dict[str, list[tuple[object, Unit]]] = {}
        self.done: dict[object, Done] = {}
        self.dead: dict[str, list[object]] = {}
        self.owner: dict[object, str] = {}
        self.alone_checks: list[int] = []  # units in flight whenever an `alone` unit is submitted
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        self.queues[f"w{self.count}"] = []
        self.count += 1

    def submit(self, unit: Unit) -> object:
        name = min(self.queues, key=lambda n: (n == unit.avoid and len(self.queues) > 1, len(self.queues[n])))
        if getattr(unit, "alone", False):
            self.alone_checks.append(sum(len(q) for q in self.queues.values()))
        handle = object()
        self.queues[name].append((handle, unit))
        self.owner[handle] = name
        return handle

    def wait(self, handles: list[object]) -> list[object]:
        for name, queue in list(self.queues.items()):
            killed = next((k for k, (_, u) in enumerate(queue) if any(it.index == self.kill for it in u.items)), None)
            finished = queue if killed is None else queue[:max(0, killed - 1)]
            for handle, unit in finished:
                self.done[handle] = Done([(it, None) for it in unit.items], name, 0.0, {}, {})
            if killed is None:
                queue.clear()
            else:
                self.dead[name] = [h for h, _ in queue[max(0, killed - 1):]]
                del self.queues[name]
                self._spawn()
        return list(handles)

    def collect(self, handle: object) -> Done:
        if handle in self.done:
            return self.done.pop(handle)
        name = self.owner[handle]
        lost = self.dead.pop(name)
        raise WorkerLost(name, "worker died", lost[0], lost)


def test_a_death_beside_other_units_charges_none_and_finds_the_killer_alone():
    items = [Item(source="s", index=i, image=np.zeros((2, 2, 3), np.float32)) for i in range(12)]
    pool = RacyPool(kill=10, workers=1)  # batch [9, 10, 11] runs behind the others on the one worker
    outcomes = list(Dispatcher(pool, batch_size=3, max_in_flight=4, retries=1, workers={}).run(items))
    assert [o.item.index for o in outcomes] == list(range(12))  # in input order
    assert [o.item.index for o in outcomes if o.error] == [10]  # only the killer is reported
    assert all(o.result is not None for o in outcomes if o.item.index != 10)
    assert pool.alone_checks and set(pool.alone_checks) == {0}  # suspects ran with nothing beside them
