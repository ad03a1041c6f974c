"""`inputs: - generate: stylenat`: seeds or a latent walk as pixel-less items (torch-free here).

The items carry only what the generator needs (`meta['stylenat']`: a seed and its row, or the
two keyframe seeds and t of a walk frame); the host runs `StyleNATGenerator` first wherever the
chain runs, so seeds travel, not pixels, and the driver never holds the model. `index` is the
position in the stream (frame number of a walk), the identity used by resume and shards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from stylefarm.errors import InputError, WeightsError
from stylefarm.item import Item
from stylefarm.sources import Source, SourceOptions
from stylefarm.video.sequence import parse_fps

from .configs import CONFIGS, GeneratorConfig, choose_config, make_config
from .step import INPUT_OPTION

MAX_SEEDS = 10_000_000


def parse_seeds(value: str | int | list[int]) -> list[int]:
    """`[1, 5]`, `7`, `"0-99"` (inclusive), `"1,5,10-20"` -> list of seeds in the given order."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [int(v) for v in value]
    seeds: list[int] = []
    for part in str(value).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"bad seeds {value!r}: expected e.g. 0-99 or 1,5,10-20")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi - lo >= MAX_SEEDS:
            raise ValueError(f"bad seed range {part!r}")
        seeds.extend(range(lo, hi + 1))
    return seeds


class WalkOptions(SourceOptions):
    keyframes: list[int] = Field(min_length=2, description="seeds of the keyframes, in order")
    frames: PositiveInt = Field(24, description="frames from one keyframe to the next")
    interpolation: Literal["slerp", "lerp"] = Field("slerp", description="spherical or linear interpolation")
    space: Literal["z", "w"] = Field("z", description="interpolate the noise z or the mapped latent w")
    loop: bool = Field(False, description="walk back from the last keyframe to the first (seamless loop)")

    def total(self) -> int:
        segments = len(self.keyframes) if self.loop else len(self.keyframes) - 1
        return segments * self.frames + (0 if self.loop else 1)

    def frame(self, index: int) -> tuple[int, int, float]:
        """(from seed, to seed, t) of frame `index`; the last frame of an open walk is the last keyframe."""
        seg, step = divmod(index, self.frames)
        keys = self.keyframes
        if seg >= len(keys) - 1 and not self.loop:
            return keys[-1], keys[-1], 0.0
        return keys[seg], keys[(seg + 1) % len(keys)], step / self.frames


class StyleNATSourceOptions(SourceOptions):
    generate: Literal["stylenat"] = Field(description="StyleNAT generator (Walton et al. 2022)")
    weights: str | None = Field(None, description="official checkpoint .pt (state_dicts.g_ema or legacy g_ema); "
                                "default: the registered release of `config` (stylefarm weights add ...)")
    config: str | dict[str, Any] | None = Field(
        None, description=f"{' | '.join(CONFIGS)} or a mapping of official generator args; default: inferred "
        "from the checkpoint's shapes (ffhq256 with random_weights)")
    seeds: list[int] | int | str | None = Field(None, description="seeds: list, or ranges such as 0-99 / 1,5,10-20")
    count: PositiveInt | None = Field(None, description="seeds 0 .. count-1 (instead of seeds)")
    batch: PositiveInt = Field(1, description="latents drawn per seed (official `inference.batch`): "
                               "randn(batch, style_dim) after manual_seed(seed); one item per latent")
    size: PositiveInt | None = Field(None, description="expected image size; checked against the checkpoint")
    truncation: float | None = Field(None, ge=0, description="opt-in truncation psi (1 = none, 0 = mean face); "
                                     "off by default, like the official inference")
    truncation_samples: PositiveInt = Field(4096, description="z samples averaged (in w) for the mean latent")
    truncation_seed: int = Field(0, description="seed of those samples")
    walk: WalkOptions | None = Field(None, description="latent walk for video: keyframes, frames, interpolation")
    fps: str | float = Field("24", description="frame rate of a walk (24, 30000/1001, ...)")
    name: str | None = Field(None, description="source id suffix (default: the config name)")
    na_backend: Literal["auto", "torch", "natten"] = Field(
        "auto", description="neighbourhood attention: NATTEN when installed (auto) or pure torch")
    random_weights: bool = Field(False, description="TEST ONLY: random generator, output is noise")
    precision: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="generator dtype: float32 (official) | float16 | bfloat16 (see docs/gpu.md)")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        return None if value is None else parse_seeds(value)

    @field_validator("fps")
    @classmethod
    def _fps(cls, value):
        return str(parse_fps(value))

    @model_validator(mode="after")
    def _one_mode(self) -> StyleNATSourceOptions:
        given = [k for k in ("seeds", "count", "walk") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of seeds, count or walk (got {', '.join(given)})")
        if self.walk is not None and self.batch != 1:
            raise ValueError("batch > 1 is for seeds; a walk uses the first latent of each keyframe seed")
        if self.seeds == []:
            raise ValueError("seeds: empty list")
        return self


def wanted_config(config: str | dict[str, Any] | None) -> GeneratorConfig | None:
    """The config the user asked for (None: infer from the checkpoint)."""
    if config is None or isinstance(config, GeneratorConfig):
        return config
    if isinstance(config, str):
        if config not in CONFIGS:
            raise InputError(f"unknown StyleNAT config {config!r}; known: {', '.join(CONFIGS)} (or a mapping)")
        return CONFIGS[config]
    try:
        return make_config(dict(config))
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad StyleNAT config: {exc}") from None


def release_name(cfg: GeneratorConfig | None) -> str | None:
    """Weights-manager name of the release for a config (`stylenat/ffhq256`), None for custom ones."""
    name = "ffhq256" if cfg is None else cfg.name
    return f"stylenat/{name}" if name in CONFIGS else None


class StyleNATSource(Source):
    """Generated images from seeds, or the frames of a latent walk, made by StyleNAT on the workers."""

    key = "stylenat"
    Options = StyleNATSourceOptions
    priority = 10  # before the core `generate:` patterns, whose Literal does not know stylenat

    def __init__(self, options: StyleNATSourceOptions, base_dir: Path):
        super().__init__(options, base_dir)
        self._config: GeneratorConfig | None = None
        self._weights: str | None = None

    @classmethod
    def accepts(cls, spec: dict[str, Any]) -> bool:
        return spec.get("generate") == "stylenat"

    def _weights_path(self) -> str | None:
        opts = self.options
        if opts.random_weights:
            return None
        if opts.weights:
            path = Path(opts.weights).expanduser()
            return str(path if path.is_absolute() else self.base_dir / path)
        from stylefarm.weights import resolve

        name = release_name(wanted_config(opts.config))
        if name is None:
            raise WeightsError("a custom StyleNAT `config:` has no registered release: give `weights:` (the .pt)")
        return str(resolve(name, option=INPUT_OPTION))

    def check(self) -> GeneratorConfig:
        """Plan-time check on the driver: weights present, config fits, size matches (shapes only)."""
        if self._config is not None:
            return self._config
        opts = self.options
        wanted = wanted_config(opts.config)
        if opts.random_weights:  # said on the driver too: worker logs may not reach it (Ray, Dask)
            from stylefarm.weights import announce_random_weights

            announce_random_weights("stylenat source")
        self._weights = self._weights_path()
        cfg = wanted or CONFIGS["ffhq256"]
        if self._weights is not None:
            cfg = _checkpoint_config(self._weights, wanted)
        if opts.size is not None and opts.size != cfg.size:
            raise InputError(f"size {opts.size} does not match the checkpoint's {cfg.size} px (config {cfg.name!r})")
        self._config = cfg
        return cfg

    @property
    def source_id(self) -> str:
        cfg = self.check()
        return f"stylenat/{self.options.name or cfg.name + ('_walk' if self.options.walk else '')}"

    def _seed_rows(self) -> list[tuple[int, int]]:
        opts = self.options
        seeds = opts.seeds if opts.seeds is not None else list(range(opts.count or 1))
        return [(s, r) for s in seeds for r in range(opts.batch)]

    def count(self) -> int | None:
        self.check()
        walk = self.options.walk
        return walk.total() if walk else len(self._seed_rows())

    def items(self) -> Iterator[Item]:
        cfg, source, opts = self.check(), self.source_id, self.options
        size = (cfg.size, cfg.size)
        if opts.walk is None:
            for i, (seed, row) in enumerate(self._seed_rows()):
                meta = {"stylenat": {"seed": seed, "row": row, "batch": opts.batch}}
                yield Item(source=source, index=i, frame=seed if opts.batch == 1 else i, size=size, meta=meta)
            return
        walk, fps = opts.walk, Fraction(opts.fps)
        total = walk.total()
        for i in range(total):
            a, b, t = walk.frame(i)
            meta = {"stylenat": {"from": a, "to": b, "t": t, "space": walk.space, "interpolation": walk.interpolation},
                    "video": {"first": 0, "count": total}}
            yield Item(source=source, index=i, frame=i, fps=fps, pts=float(i / fps), size=size, meta=meta)

    def generator(self) -> tuple[type, Any]:
        from .step import StyleNATGenerator, StyleNATOptions

        cfg, opts = self.check(), self.options
        options = StyleNATOptions(weights=self._weights, config=cfg.to_dict() | {"name": cfg.name},
                                  truncation=opts.truncation, truncation_samples=opts.truncation_samples,
                                  truncation_seed=opts.truncation_seed, na_backend=opts.na_backend,
                                  random_weights=opts.random_weights, precision=opts.precision)
        return StyleNATGenerator, options

    def describe(self) -> str:
        return f"stylenat: {self.options.model_dump(exclude_defaults=True)}"


def _checkpoint_config(path: str, wanted: GeneratorConfig | None) -> GeneratorConfig:
    """The config a checkpoint file fits, read from its shapes (memory-mapped: no weights loaded)."""
    from .checkpoint import read_shapes

    try:
        return choose_config(read_shapes(path), wanted)
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None
