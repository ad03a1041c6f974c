"""Pure maths for fast_style: which style rows a request means, and strength (masks, colour: `_controls`)."""

from __future__ import annotations

from collections.abc import Sequence

from stylefarm.errors import StylefarmError
from stylefarm.plugins._controls import mix, style_vector  # noqa: F401 (shared with cin26)


def style_index(value: int | str, names: Sequence[str]) -> int:
    """A style row from its index or its name; one line listing the valid ones otherwise."""
    text = str(value).strip()
    if text in names:
        return list(names).index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
        return int(text)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    raise StylefarmError(f"unknown style {value!r}: this net holds {len(names)} style(s): "
                         f"index 0..{len(names) - 1} or a name ({shown})")


