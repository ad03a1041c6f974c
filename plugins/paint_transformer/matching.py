"""Minimum-cost assignment for stroke matching (scipy-free Hungarian algorithm).

scipy is not a dependency of stylefarm, and the matrices here are at most 8x8, so a small
O(n^2 m) shortest-augmenting-path implementation is plenty fast.
"""

from __future__ import annotations

import numpy as np


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost matching of every row (needs rows <= columns)."""
    cost = np.asarray(cost, dtype=np.float64)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: 1-based row matched to column j
    for i in range(1, n + 1):
        _augment(cost, u, v, owner, i)
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    return (cols, rows) if transposed else (rows, cols)


def _augment(cost: np.ndarray, u: np.ndarray, v: np.ndarray, owner: np.ndarray, i: int) -> None:
    """Add row i to the matching along a shortest augmenting path (Dijkstra on reduced costs)."""
    m = cost.shape[1]
    owner[0] = i
    j0 = 0
    minv = np.full(m + 1, np.inf)
    way = np.zeros(m + 1, dtype=np.int64)
    used = np.zeros(m + 1, dtype=bool)
    while True:
        used[j0] = True
        i0 = owner[j0]
        free = ~used[1:]
        reduced = cost[i0 - 1] - u[i0] - v[1:]
        better = free & (reduced < minv[1:])
        minv[1:][better] = reduced[better]
        way[1:][better] = j0
        candidates = np.where(free, minv[1:], np.inf)
        j1 = int(np.argmin(candidates)) + 1
        delta = candidates[j1 - 1]
        u[owner[used]] += delta
        v[used] -= delta
        minv[1:][free] -= delta
        j0 = j1
        if owner[j0] == 0:
            break
    while j0:
        j1 = way[j0]
        owner[j0] = owner[j1]
        j0 = j1
