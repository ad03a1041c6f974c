"""Paint Transformer on video: stroke reuse where the frame did not change, and `detail`.

Real photo, shipped weights. Reuse must be exact where nothing changed (no network call, same
pixels), local where something did, and must remove the flicker that repainting every frame
from slightly noisy frames shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stylefarm.images import read_image, resize
from stylefarm.item import Item
from stylefarm.plugins.paint_transformer.step import PaintTransformerOptions, PaintTransformerStep

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "plugins" / "paint_transformer" / "weights" / "paint_transformer_sf.pt"
pytestmark = [pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped Paint Transformer weights missing"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def photo(content_images) -> np.ndarray:
    return resize(read_image(content_images[0])[0], 128, 96)


class CountingStep(PaintTransformerStep):
    """The real step; counts the patches its network is asked to predict."""

    def setup(self, device: str) -> None:
        super().setup(device)
        self.patches = 0
        forward = self.net.forward

        def counted(target, canvas):
            self.patches += target.shape[0]
            return forward(target, canvas)

        self.net.forward = counted

    def paint(self, image: np.ndarray, index: int, source: str = "clip.mp4") -> tuple[Item, int]:
        before = self.patches
        out = self.process([Item(source, index, frame=index, image=image)])[0]
        return out, self.patches - before


def _step(**options) -> CountingStep:
    step = CountingStep(PaintTransformerOptions(**options))
    step.setup("cpu")
    return step


def test_unchanged_frame_reuses_every_stroke_without_calling_the_network(photo):
    step = _step(stroke_reuse=0.02)
    first, n_first = step.paint(photo, 0)
    second, n_second = step.paint(photo.copy(), 1)
    assert first.meta["strokes_reused"] == 0 and n_first > 0
    assert second.meta["strokes_reused"] == 1 and n_second == 0
    np.testing.assert_array_equal(first.image, second.image)


def test_a_local_change_repaints_only_the_patches_it_touches(photo):
    step = _step(stroke_reuse=0.02)
    before, n_before = step.paint(photo, 0)
    changed = photo.copy()
    changed[4:16, 4:16] = 1.0  # a white square in the top-left corner
    after, n_after = step.paint(changed, 1)
    assert 0 < n_after < n_before / 4
    moved = np.abs(after.image - before.image).max(axis=2) > 1e-6
    assert moved[:16, :16].any(), "the changed corner was repainted"
    assert not moved[48:, :].any() and not moved[:, 64:].any(), "pixels far from the change keep their strokes"


def test_slow_drift_is_repainted_once_it_adds_up(photo):
    """Change is measured against the frame the strokes came from, not the previous frame."""
    step = _step(stroke_reuse=0.02)
    step.paint(photo, 0)
    repainted = [step.paint(np.clip(photo + 0.008 * i, 0, 1), i)[1] for i in range(1, 5)]
    assert repainted[0] == 0, "a change below the threshold keeps the strokes"
    assert any(repainted[1:]), "the accumulated change is noticed"


def test_reuse_removes_flicker_between_noisy_frames(photo):
    rng = np.random.default_rng(0)
    frames = [np.clip(photo + rng.normal(0, 0.01, photo.shape), 0, 1).astype(np.float32) for _ in range(3)]

    def flicker(step) -> float:
        outs = [step.paint(f, i)[0].image for i, f in enumerate(frames)]
        return float(np.mean([np.abs(b - a).mean() for a, b in zip(outs, outs[1:])]))

    repaint, reuse = flicker(_step()), flicker(_step(stroke_reuse=0.02))
    assert repaint > 0.01, "repainting every frame flickers (new strokes for the noise)"
    assert reuse < 0.1 * repaint


def test_sources_and_frame_sizes_keep_separate_memories(photo):
    step = _step(stroke_reuse=0.02)
    step.paint(photo, 0, "a.mp4")
    assert step.paint(photo, 0, "b.mp4")[1] > 0, "another video starts from scratch"
    assert step.paint(photo, 1, "a.mp4")[1] == 0, "the first video's strokes are still there"
    assert step.paint(photo[:64, :64].copy(), 2, "a.mp4")[1] > 0, "a new frame size starts from scratch"
    assert len(step.memories) == PaintTransformerStep.MEMORIES


def test_reuse_makes_the_step_temporal_only_when_on():
    assert not PaintTransformerStep.is_temporal(PaintTransformerOptions())
    assert PaintTransformerStep.is_temporal(PaintTransformerOptions(stroke_reuse=0.02))


def test_detail_paints_a_finer_level_and_closer_to_the_input(photo):
    plain, fine = _step(strokes_json=True), _step(strokes_json=True, detail=1)
    a, b = plain.paint(photo, 0)[0], fine.paint(photo, 0)[0]
    assert max(s["pass"] for s in b.meta["strokes"]) == max(s["pass"] for s in a.meta["strokes"]) + 1
    assert b.image.shape == photo.shape
    strokes = b.meta["strokes"]
    assert max(s["x"] for s in strokes) < 128 + 32 and max(s["y"] for s in strokes) < 96 + 32, "input pixels"
    assert np.abs(b.image - photo).mean() < np.abs(a.image - photo).mean()


def test_detail_is_bounded():
    with pytest.raises(ValidationError, match="detail"):
        PaintTransformerOptions(detail=3)
