"""A CPU-bound torch step for the distributed benchmarks (workers import it: keep benchmarks/ on
PYTHONPATH). Fixed random weights, so every backend computes the same thing."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from stylefarm.item import Batch
from stylefarm.step import Step, StepOptions


class ConvOptions(StepOptions):
    layers: int = Field(6, ge=1)
    channels: int = Field(32, ge=3)


class ConvStack(Step):
    """A small conv net standing in for a stylization model (the cost is all torch compute)."""

    name = "bench_conv"
    kind = "stylize"
    Options = ConvOptions

    def setup(self, device: str) -> None:
        import torch

        super().setup(device)
        torch.manual_seed(0)
        c, layers = self.options.channels, [torch.nn.Conv2d(3, self.options.channels, 3, padding=1)]
        for _ in range(self.options.layers - 2):
            layers += [torch.nn.ReLU(), torch.nn.Conv2d(c, c, 3, padding=1)]
        layers += [torch.nn.ReLU(), torch.nn.Conv2d(c, 3, 3, padding=1), torch.nn.Sigmoid()]
        self.net = torch.nn.Sequential(*layers).to(device).eval()

    def process(self, batch: Batch) -> Batch:
        import torch

        x = torch.stack([torch.tensor(it.image).permute(2, 0, 1) for it in batch]).to(self.device)  # copies
        with torch.inference_mode():
            y = self.net(x).permute(0, 2, 3, 1).cpu().numpy()
        return [it.with_image(np.ascontiguousarray(img)) for it, img in zip(batch, y)]
