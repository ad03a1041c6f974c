"""Contact sheets: labelled grids of thumbnails for people to look at."""

from __future__ import annotations

import numpy as np


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    scale = max(0.4, image.shape[0] / 400)
    org, font = (6, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(out, text, org, font, 0.6 * scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, org, font, 0.6 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out.astype(np.float32) / 255.0


def contact_sheet(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], gap: int = 4) -> np.ndarray:
    """Rows of (row name, [(cell label, float RGB image)]) -> one float RGB image."""
    height = max(img.shape[0] for _, cells in rows for _, img in cells)
    rendered = []
    for name, cells in rows:
        parts = []
        for i, (label, img) in enumerate(cells):
            text = f"{name}: {label}" if i == 0 else label
            tile = np.ones((height, img.shape[1], 3), np.float32)
            tile[: img.shape[0]] = img[..., :3]
            parts += [_label(tile, text), np.ones((height, gap, 3), np.float32)]
        rendered.append(np.concatenate(parts[:-1], axis=1))
    width = max(r.shape[1] for r in rendered)
    canvas = np.ones((len(rendered) * (height + gap) - gap, width, 3), np.float32)
    for i, row in enumerate(rendered):
        y = i * (height + gap)
        canvas[y : y + height, : row.shape[1]] = row
    return canvas
