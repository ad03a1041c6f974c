"""StyleNATGenerator: the `generate` step a StyleNAT source puts first in the chain.

It receives only its source's pixel-less items (meta['stylenat']: seed and row, or a walk
frame's keyframe seeds and t), loads the generator once per worker in `setup`, and returns
RGB float32 images in [0, 1]: the official output un-normalised from ImageNet statistics and
clamped (the official inference's watermark is not added).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from stylefarm.item import Batch
from stylefarm.plugins._precision import PRECISION_HELP, Placement, Precision, inference
from stylefarm.step import Step, StepOptions

RANDOM_INIT_SEED = 0  # every worker builds the same random generator (tests compare backends)
INPUT_OPTION = "in the input's `weights:` key"  # users give the checkpoint on `inputs: - generate: stylenat`


class StyleNATOptions(StepOptions):
    weights: str | None = Field(None, description="checkpoint path (None: the release of `config`)")
    config: str | dict[str, Any] | None = Field(None, description="config name or official generator args")
    truncation: float | None = Field(None, ge=0, description="truncation psi; None = off (official)")
    truncation_samples: int = Field(4096, gt=0, description="z samples averaged in w for the mean latent")
    truncation_seed: int = Field(0, description="seed of those samples")
    na_backend: Literal["auto", "torch", "natten"] = "auto"
    random_weights: bool = Field(False, description="TEST ONLY: random generator, output is noise")
    precision: Precision = Field("float32", description=PRECISION_HELP)


def _config(value):
    from .configs import make_config
    from .source import wanted_config

    if isinstance(value, dict):
        data = dict(value)
        return make_config(data, data.pop("name", "custom"))
    return wanted_config(value)


class StyleNATGenerator(Step):
    """Images from seeds / latent-walk frames with the StyleNAT generator (Walton et al. 2022)."""

    name = "stylenat"
    kind = "generate"
    Options = StyleNATOptions

    @classmethod
    def weights_needed(cls, options: StyleNATOptions) -> list[str]:
        """The registered release of `config` (the source passes a checkpoint it found as `weights`)."""
        from stylefarm.weights import Needed

        from .source import release_name

        if options.random_weights or options.weights:
            return []
        name = release_name(_config(options.config))
        return [Needed(name, INPUT_OPTION)] if name else []

    def setup(self, device: str) -> None:
        """Build/load the generator once per worker. The CUDA path is untested on CUDA (no GPU here)."""
        super().setup(device)
        self.model = self._build()
        self.place = Placement(device, self.options.precision, channels_last=False)  # attention net: NCHW
        self.place.modules(self.model)
        self.model.set_backend(self.options.na_backend)
        self.w_mean = None
        if self.options.truncation is not None:
            with inference(self.place):
                self.w_mean = self.mean_latent(self.options.truncation_samples, self.options.truncation_seed)

    def _build(self):
        import torch

        from stylefarm.weights import announce_random_weights, load_weights

        from .configs import choose_config
        from .loading import generator_state, shapes_of, to_new_layout
        from .model import Generator
        from .source import release_name

        opts, wanted = self.options, _config(self.options.config)
        if opts.random_weights:
            announce_random_weights(self.name)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                return Generator(wanted or _config("ffhq256"))
        name = release_name(wanted) or "stylenat/weights"
        ckpt, path = load_weights(name, opts.weights, INPUT_OPTION)
        state = generator_state(ckpt)
        try:
            cfg = choose_config(shapes_of(state), wanted)
        except ValueError as exc:
            from stylefarm.errors import WeightsError

            raise WeightsError(f"{path}: {exc}") from None
        model = Generator(cfg)
        model.load_state_dict(to_new_layout(state, cfg), strict=True)
        return model

    def mean_latent(self, samples: int, seed: int, chunk: int = 1024):
        """Mean of w over `samples` z drawn from a fixed seed (truncation centre)."""
        import torch

        gen = torch.Generator(device="cpu").manual_seed(seed)
        dim = self.model.cfg.style_dim
        total = torch.zeros(dim, dtype=torch.float64, device=self.device)
        for start in range(0, samples, chunk):
            z = torch.randn(min(chunk, samples - start), dim, generator=gen).to(self.device)
            total += self.model.style(z).double().sum(0)
        return (total / samples).float()

    def latents(self, metas: list[dict]):
        """w [B, style_dim] for the items' seeds / walk frames (z drawn on the CPU, as official)."""
        import torch

        from .ops import lerp, seed_latents, slerp

        dim, style = self.model.cfg.style_dim, self.model.style
        ws = []
        for m in metas:
            if "seed" in m:
                z = seed_latents(m["seed"], m.get("batch", 1), dim)[m.get("row", 0)]
                ws.append(style(z[None].to(self.device))[0])
                continue
            mix = slerp if m["interpolation"] == "slerp" else lerp
            za, zb = (seed_latents(s, 1, dim).to(self.device) for s in (m["from"], m["to"]))
            if m["space"] == "z":
                ws.append(style(mix(za, zb, m["t"]))[0])
            else:
                ws.append(mix(style(za), style(zb), m["t"])[0])
        return torch.stack(ws)

    def generate(self, metas: list[dict]) -> np.ndarray:
        """[B, H, W, 3] float32 RGB in [0, 1]."""
        from .ops import truncate, unnormalize

        with inference(self.place):
            w = self.latents(metas)
            if self.w_mean is not None:
                w = truncate(w, self.w_mean, self.options.truncation)
            latent = w.unsqueeze(1).repeat(1, self.model.n_latent, 1)
            image = unnormalize(self.model.synthesis_network(latent)).clamp(0, 1)
            return image.permute(0, 2, 3, 1).float().cpu().numpy()

    def process(self, batch: Batch) -> Batch:
        images = self.generate([it.meta["stylenat"] for it in batch])
        return [it.with_image(img) for it, img in zip(batch, images)]
