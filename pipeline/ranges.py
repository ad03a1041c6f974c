"""Inclusive frame ranges, `[(first, last), ...]`: the one merge and the one text form behind
`--frames`, farm task names, run locks, the report and a narrowed video's log line, so a
selection is joined and spelled the same everywhere it is shown or compared."""

from __future__ import annotations

from collections.abc import Iterable

Range = tuple[int, int]


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with overlapping and adjacent ranges joined ([(8, 12), (1, 4), (5, 9)] -> [(1, 12)]):
    two spellings of one selection become equal, and a union can be checked range by range."""
    out: list[Range] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def ranges_text(ranges: Iterable[Range], offset: int = 0) -> str:
    """'1001-1012,1020', as `--frames` reads it back (a one-frame range is one number); `offset` is
    added to every end (a video's frame indices -> frame numbers). "" for no ranges."""
    return ",".join(f"{a + offset}-{b + offset}" if a != b else str(a + offset) for a, b in ranges)


def holds(ranges: Iterable[Range], number: int | None) -> bool:
    """Whether a frame number lies in the ranges (None, a still's number, never does)."""
    return number is not None and any(a <= number <= b for a, b in ranges)


def frame_count(ranges: Iterable[Range]) -> int:
    """How many frames the ranges hold (they must not overlap: `merge` them first)."""
    return sum(b - a + 1 for a, b in ranges)
