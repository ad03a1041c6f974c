"""StyleNAT generator configurations: the released ones by name, inference from a checkpoint's
shapes, and the expected key -> shape table used to explain a checkpoint that fits no config.

Torch-free on purpose: the source checks a checkpoint's shapes on the driver (memory-mapped)
without building the model. Field names and meanings are the official `generator_args`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

FIXED_CHANNELS = (512, 512, 512, 512)
SCALED_CHANNELS = (256, 128, 64, 32, 16)  # times channel_multiplier
FFHQ_KERNELS = ((3,), (7,), (7,), (7,), (7,), (7,), (7,), (7,), (7,))
FFHQ_DILATIONS = ((1,), (1,), (1, 2), (1, 4), (1, 8), (1, 16), (1, 32), (1, 64), (1, 128))


@dataclass(frozen=True)
class GeneratorConfig:
    """The official generator arguments that change the network (drop rates are 0 at inference)."""

    size: int = 256
    style_dim: int = 512
    n_mlp: int = 8
    lr_mlp: float = 0.01
    channel_multiplier: int = 2
    mlp_ratio: float = 4.0
    min_heads: int = 4
    qkv_bias: bool = True
    qk_scale: float | None = None
    kernels: tuple[tuple[int, ...], ...] = FFHQ_KERNELS
    dilations: tuple[tuple[int, ...], ...] = FFHQ_DILATIONS
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 8 (got {self.size})")
        if self.stages > len(FIXED_CHANNELS) + len(SCALED_CHANNELS):
            raise ValueError(f"size {self.size} needs {self.stages} stages; the generator has at most 9")
        if len(self.kernels) < self.stages or len(self.dilations) < self.stages:
            raise ValueError(f"kernels/dilations list {self.stages} stages for size {self.size}")
        for i in range(1, self.stages):
            self.groups(i)  # validates list lengths

    @property
    def stages(self) -> int:
        return int(math.log2(self.size)) - 1

    @property
    def n_latent(self) -> int:
        return 2 * self.stages

    def channels(self, stage: int) -> int:
        if stage < len(FIXED_CHANNELS):
            return FIXED_CHANNELS[stage]
        return SCALED_CHANNELS[stage - len(FIXED_CHANNELS)] * self.channel_multiplier

    def heads(self, stage: int) -> int:
        return max(self.channels(stage) // 32, self.min_heads)

    def groups(self, stage: int) -> list[tuple[int, int, int]]:
        """(kernel, dilation, heads) per Hydra group: single-entry lists repeat, the last
        (heads mod n) groups take one extra head (the official uneven split)."""
        kernels, dilations = list(self.kernels[stage]), list(self.dilations[stage])
        if len(kernels) == 1 and len(dilations) != 1:
            kernels = kernels * len(dilations)
        elif len(dilations) == 1 and len(kernels) != 1:
            dilations = dilations * len(kernels)
        if len(kernels) != len(dilations):
            raise ValueError(f"stage {stage}: {len(kernels)} kernels for {len(dilations)} dilations")
        n, heads = len(kernels), self.heads(stage)
        extra = heads - n * (heads // n)
        split = [heads // n + (1 if g >= n - extra else 0) for g in range(n)]
        return list(zip(kernels, dilations, split))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kernels"] = [list(k) for k in self.kernels]
        data["dilations"] = [list(d) for d in self.dilations]
        return data


def make_config(data: dict[str, Any], name: str = "custom") -> GeneratorConfig:
    """A config from a mapping of official generator args (unknown keys are errors)."""
    known = set(GeneratorConfig.__dataclass_fields__) - {"name"}
    ignored = {"block_type", "use_checkpoint", "enable_full_resolution", "proj_drop", "attn_drop", "lr",
               "reg_every", "params"}
    unknown = sorted(set(data) - known - ignored)
    if unknown:
        raise ValueError(f"unknown generator args {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {k: v for k, v in data.items() if k in known}
    for key in ("kernels", "dilations"):
        if key in values:
            values[key] = tuple(tuple(int(x) for x in (s if isinstance(s, (list, tuple)) else [s]))
                                for s in values[key])
    return GeneratorConfig(**values, name=name)


CONFIGS: dict[str, GeneratorConfig] = {
    "ffhq256": GeneratorConfig(size=256, name="ffhq256"),
    "ffhq1024": GeneratorConfig(size=1024, name="ffhq1024"),
}


def expected_shapes(cfg: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the new layout with its shape (the official module's names)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(1, cfg.n_mlp + 1):
        shapes[f"style.{i}.weight"] = (cfg.style_dim, cfg.style_dim)
        shapes[f"style.{i}.bias"] = (cfg.style_dim,)
    shapes["input.input"] = (1, cfg.channels(0), 4, 4)
    for s in range(cfg.stages):
        shapes.update(_stage_shapes(cfg, s))
    for s in range(cfg.stages):
        last = s == cfg.stages - 1
        c = cfg.channels(s) if last else cfg.channels(s + 1)
        shapes[f"to_rgbs.{s}.bias"] = (1, 3, 1, 1)
        if not last:
            shapes[f"to_rgbs.{s}.upsample.kernel"] = (4, 4)
        shapes[f"to_rgbs.{s}.conv.weight"] = (3, c, 1, 1)
        shapes[f"to_rgbs.{s}.conv.bias"] = (3,)
    return shapes


def _stage_shapes(cfg: GeneratorConfig, s: int) -> dict[str, tuple[int, ...]]:
    c, heads, hidden = cfg.channels(s), cfg.heads(s), int(cfg.channels(s) * cfg.mlp_ratio)
    shapes: dict[str, tuple[int, ...]] = {}
    for j in range(2):
        p = f"layers.{s}.blocks.{j}."
        shapes[p + "norm1.style.weight"] = (2 * c, cfg.style_dim)
        shapes[p + "norm1.style.bias"] = (2 * c,)
        if s == 0:
            shapes[p + "attn.rpb"] = (heads, 7, 7)
            shapes[p + "attn.relative_position_index"] = (16, 16)
        else:
            for g, (k, _, h) in enumerate(cfg.groups(s)):
                shapes[p + f"attn.rpb.{g}"] = (h, 2 * k - 1, 2 * k - 1)
        shapes[p + "attn.qkv.weight"] = (3 * c, c)
        if cfg.qkv_bias:
            shapes[p + "attn.qkv.bias"] = (3 * c,)
        shapes[p + "attn.proj.weight"] = (c, c)
        shapes[p + "attn.proj.bias"] = (c,)
        shapes[p + "norm2.style.weight"] = (2 * c, cfg.style_dim)
        shapes[p + "norm2.style.bias"] = (2 * c,)
        shapes[p + "mlp.fc1.weight"] = (hidden, c)
        shapes[p + "mlp.fc1.bias"] = (hidden,)
        shapes[p + "mlp.fc2.weight"] = (c, hidden)
        shapes[p + "mlp.fc2.bias"] = (c,)
    if s < cfg.stages - 1:
        p = f"layers.{s}.upsample."
        shapes.update({p + "alpha": (1,), p + "norm.weight": (c,), p + "norm.bias": (c,),
                       p + "reduction.weight": (cfg.channels(s + 1), c), p + "sin_pos_embed._float_tensor": (1,)})
    return shapes


_LEGACY = re.compile(r"^(layers\.\d+\.blocks\.\d+\.attn\.)rpb([01])$")


def is_legacy(shapes: dict[str, Any]) -> bool:
    """Old `{'g', 'g_ema'}` checkpoints split every NA stage's heads into rpb0 / rpb1."""
    return any(_LEGACY.match(k) for k in shapes)


def legacy_plan(shapes: dict[str, tuple[int, ...]], cfg: GeneratorConfig) -> dict[str, list[str]]:
    """New key -> legacy keys it is made of (two halves concatenated where the config has one group)."""
    plan: dict[str, list[str]] = {}
    for key in shapes:
        m = _LEGACY.match(key)
        if not m or m.group(2) != "0":
            continue
        prefix, stage = m.group(1), int(key.split(".")[1])
        if stage >= cfg.stages:
            continue
        if len(cfg.groups(stage)) == 1:
            plan[prefix + "rpb.0"] = [prefix + "rpb0", prefix + "rpb1"]
        else:
            plan[prefix + "rpb.0"], plan[prefix + "rpb.1"] = [prefix + "rpb0"], [prefix + "rpb1"]
    return plan


def converted_shapes(shapes: dict[str, tuple[int, ...]], cfg: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """A legacy checkpoint's shapes as the new layout would hold them under `cfg`."""
    plan = legacy_plan(shapes, cfg)
    used = {k for parts in plan.values() for k in parts}
    out = {k: v for k, v in shapes.items() if k not in used}
    for new, parts in plan.items():
        first = shapes[parts[0]]
        if len(parts) == 2 and shapes[parts[1]][1:] != first[1:]:
            out[parts[0]], out[parts[1]] = first, shapes[parts[1]]  # halves differ: cannot be one group
            continue
        out[new] = (sum(shapes[p][0] for p in parts), *first[1:])
    return out


def mismatch(shapes: dict[str, tuple[int, ...]], cfg: GeneratorConfig) -> list[str]:
    """Keys whose presence or shape differs from what `cfg` expects (empty: it fits)."""
    have = converted_shapes(shapes, cfg) if is_legacy(shapes) else shapes
    want = expected_shapes(cfg)
    problems = [f"{k} {tuple(have[k])} != {want[k]}" for k in want if k in have and tuple(have[k]) != want[k]]
    problems += [f"{k} missing" for k in want if k not in have]
    problems += [f"{k} unexpected" for k in have if k not in want]
    return problems


def infer_config(shapes: dict[str, tuple[int, ...]]) -> GeneratorConfig:
    """A config from a checkpoint's shapes. Dilations are not stored in a checkpoint: stages with
    two groups get the official schedule [1, 2^(stage-1)] (FFHQ); other layouts need `config:`."""
    try:
        return _infer(shapes)
    except (KeyError, IndexError, ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"cannot infer a StyleNAT config from this checkpoint ({exc})") from None


def _infer(shapes: dict[str, tuple[int, ...]]) -> GeneratorConfig:
    legacy = is_legacy(shapes)
    n_mlp = sum(1 for k in shapes if re.fullmatch(r"style\.\d+\.weight", k))
    stages = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("layers."))
    style_dim = shapes["style.1.weight"][1]
    c0 = shapes["layers.0.blocks.0.attn.qkv.weight"][1]
    hidden = shapes["layers.0.blocks.0.mlp.fc1.weight"][0]
    multiplier = 2
    if stages > 4:
        multiplier = shapes["layers.4.blocks.0.attn.qkv.weight"][1] // SCALED_CHANNELS[0]
    kernels, dilations, heads = [(3,)], [(1,)], [shapes["layers.0.blocks.0.attn.rpb"][0]]
    for s in range(1, stages):
        p = f"layers.{s}.blocks.0.attn."
        names = [p + "rpb0", p + "rpb1"] if legacy else sorted(
            (k for k in shapes if k.startswith(p + "rpb.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        ks = [(shapes[n][-1] + 1) // 2 for n in names]
        heads.append(sum(shapes[n][0] for n in names))
        if legacy and s == 1 and ks[0] == ks[1]:
            ks = ks[:1]
        kernels.append(tuple(ks) if len(set(ks)) > 1 else (ks[0],))
        if len(ks) == 1:
            dilations.append((1,))
        elif len(ks) == 2:
            dilations.append((1, 2 ** (s - 1)))
        else:
            raise ValueError(f"stage {s} has {len(ks)} head groups; give their dilations in `config:`")
    base = GeneratorConfig(size=2 ** (stages + 1), style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=multiplier,
                           mlp_ratio=hidden / c0, qkv_bias="layers.0.blocks.0.attn.qkv.bias" in shapes,
                           kernels=tuple(kernels), dilations=tuple(dilations), name="inferred")
    return replace(base, min_heads=_min_heads(base, heads))


def _min_heads(cfg: GeneratorConfig, heads: list[int]) -> int:
    """The smallest `min_heads` giving these head counts (heads = max(C // 32, min_heads))."""
    forced = [h for s, h in enumerate(heads) if h != cfg.channels(s) // 32]
    return max(forced) if forced else min(4, *(cfg.channels(s) // 32 for s in range(len(heads))))


def choose_config(shapes: dict[str, tuple[int, ...]], wanted: GeneratorConfig | None) -> GeneratorConfig:
    """The config a checkpoint is loaded with: `wanted` when it fits, else a named or inferred one.

    Raises ValueError with one line naming the differing keys (and the config that would fit)."""
    if wanted is not None:
        problems = mismatch(shapes, wanted)
        if not problems:
            return wanted
        fits = next((n for n, c in CONFIGS.items() if not mismatch(shapes, c)), None)
        hint = f"; it fits config {fits!r}" if fits else _looks_like(shapes, wanted)
        raise ValueError(f"checkpoint does not fit config {wanted.name!r}: {_summary(problems)}{hint}")
    for cfg in CONFIGS.values():
        if not mismatch(shapes, cfg):
            return cfg
    inferred = infer_config(shapes)
    problems = mismatch(shapes, inferred)
    if problems:
        raise ValueError(f"checkpoint fits no StyleNAT config: {_summary(problems)}")
    return inferred


def _looks_like(shapes: dict[str, tuple[int, ...]], wanted: GeneratorConfig) -> str:
    """'; the checkpoint looks like size=64, mlp_ratio=2.0' (the fields an inferred config changes)."""
    try:
        inferred = infer_config(shapes)
    except ValueError:
        return ""
    fields = ("size", "style_dim", "n_mlp", "channel_multiplier", "mlp_ratio", "min_heads", "qkv_bias")
    diff = [f"{f}={getattr(inferred, f)}" for f in fields if getattr(inferred, f) != getattr(wanted, f)]
    return f"; the checkpoint looks like {', '.join(diff)}" if diff else ""


def _summary(problems: list[str], limit: int = 4) -> str:
    more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more
