"""AdaIN networks: the VGG encoder to relu4_1 and the mirrored decoder.

Module indices (and therefore state_dict keys) follow naoto0804/pytorch-AdaIN `net.py`, so
`vgg_normalised.pth` and `decoder.pth` load by their own keys. No file I/O here.
"""

from __future__ import annotations

import torch
from torch import nn

from stylefarm.plugins._vgg import ConvStack, VGGEncoder, decoder_layers

# Decoder plan: conv output widths, "U" = 2x nearest upsample. Mirrors the encoder to relu4_1.
_DECODER_PLAN: list[int | str] = [256, "U", 256, 256, 256, 128, "U", 128, 64, "U", 64, 3]


class Decoder(ConvStack):
    """relu4_1 features (512 ch) back to an RGB image 8x larger; keys as `decoder.pth`."""

    def __init__(self) -> None:
        super().__init__(*decoder_layers(_DECODER_PLAN, 512))


def encoder() -> VGGEncoder:
    """The official encoder slice (`vgg[:31]`, input to relu4_1)."""
    return VGGEncoder(("relu4_1",))


class Relu41(nn.Module):
    """The encoder as one tensor in, one tensor out: the form `torch.export` (compile cache) packages."""

    def __init__(self, encoder: VGGEncoder) -> None:
        super().__init__()
        self.layers = encoder.layers  # shared, not copied: same weights, same fingerprint

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)
