"""VGG-19 content and style losses (Gatys et al.) for `stylefarm eval`.

The encoder is the shared `vgg_normalised.pth` (weights name `adain/vgg`) when it is installed;
otherwise seeded random weights, labelled as such in every result: losses from random features
only compare settings within one evaluation, never with published numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from stylefarm.plugins._vgg import VGGEncoder, randomize_convs

STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_TAP = "relu4_1"


def gram(features: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class Perceptual:
    """Content loss vs the input frame and style loss vs a style image, at a fixed working size."""

    def __init__(self, vgg: str | None = None, size: int = 256, device: str = "cpu"):
        self.size, self.device = size, device
        self.encoder = VGGEncoder(STYLE_TAPS)
        self.label = self._load(vgg)
        self.encoder.eval().to(device)
        self.style_grams: list[torch.Tensor] | None = None

    def _load(self, vgg: str | None) -> str:
        import logging

        from stylefarm.errors import WeightsError
        from stylefarm.weights import load_weights

        try:
            state, path = load_weights("adain/vgg", vgg)
        except (WeightsError, KeyError, OSError) as exc:
            if vgg:  # asked for a file that does not load: say so, do not fall back silently
                raise
            randomize_convs([self.encoder], seed=0)
            label = f"RANDOM VGG weights ({str(exc).splitlines()[0][:120]}): losses compare runs of this eval only"
            logging.getLogger("stylefarm.eval").warning("content/style losses: %s", label)
            return label
        self.encoder.load_official(state, str(path))
        return f"vgg_normalised.pth ({path})"

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        pixels = np.array(image, np.float32)  # a copy: frames may be read-only
        t = torch.from_numpy(pixels).permute(2, 0, 1)[None].to(self.device)
        h, w = t.shape[-2:]
        scale = self.size / max(h, w)
        if scale < 1:
            t = torch.nn.functional.interpolate(t, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                                mode="bilinear", align_corners=False, antialias=True)
        return t

    @torch.no_grad()
    def features(self, image: np.ndarray) -> list[torch.Tensor]:
        return self.encoder(self._tensor(image))

    def set_style(self, style: np.ndarray) -> None:
        self.style_grams = [gram(f) for f in self.features(style)]

    @torch.no_grad()
    def losses(self, output: np.ndarray, content: np.ndarray) -> tuple[float, float | None]:
        """(content loss: MSE of relu4_1 features, style loss: summed Gram MSE or None)."""
        out_f = self.features(output)
        in_f = self.features(content)
        content_loss = float(torch.mean((out_f[-1] - in_f[-1]) ** 2))
        if self.style_grams is None:
            return content_loss, None
        style_loss = sum(float(torch.mean((gram(o) - s) ** 2)) for o, s in zip(out_f, self.style_grams))
        return content_loss, style_loss
