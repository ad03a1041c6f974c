"""Tiled inference matches one-pass inference closely and leaves no seams."""

from __future__ import annotations

import torch

from stylefarm.tiling import tiled_apply


def test_tiled_matches_untiled_for_a_conv_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3, 3, padding=1)).eval()
    image = torch.rand(1, 3, 150, 230)
    with torch.inference_mode():
        full = net(image)
        tiled = tiled_apply(net, image, tile=64, overlap=16)
    assert tiled.shape == full.shape
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert (tiled - full)[inner].abs().max() < 1e-5  # receptive field 5 px << overlap


def test_single_tile_is_exact_and_identity_blends_to_identity():
    image = torch.rand(1, 3, 100, 90)
    assert torch.equal(tiled_apply(lambda t: t * 2, image, tile=128), image * 2)
    assert torch.allclose(tiled_apply(lambda t: t, image, tile=40, overlap=12), image, atol=1e-6)
