"""Sources turn a workflow's `inputs:` entries into a lazy stream of Items.

Contract for plugin sources (video, image sequences, generators):
- `accepts(spec)` says whether an `inputs:` mapping is for this source (checked in order of
  `priority`, highest first);
- `Options` validates the mapping (unknown keys are errors);
- `items()` yields Items lazily, in order, with `loader` set so pixels are decoded only for
  items that are not skipped by resume. A video source may decode eagerly while streaming
  (it must still never hold the whole clip);
- `count()` returns the number of items when cheap to know (for the progress bar), else None;
- `generator()` (optional) returns `(Step class, options)` when the pixels are made by a model on
  the workers (e.g. StyleNAT): the items then carry no pixels, only what the generator needs in
  `meta` (seeds, latents: a few bytes travel, not images), and the host runs that step first,
  where the chain runs (local process, Ray actor, Dask worker), so the driver never holds the model.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from .errors import InputError
from .images import IMAGE_SUFFIXES, read_image
from .item import Item


class SourceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True, coerce_numbers_to_str=True)


class Source:
    key: ClassVar[str] = ""
    Options: ClassVar[type[SourceOptions]] = SourceOptions
    priority: ClassVar[int] = 0

    def __init__(self, options: SourceOptions, base_dir: Path):
        self.options = options
        self.base_dir = base_dir
        self.exclude: set[Path] = set()
        """Resolved files this run or an earlier one wrote (set by the plan): never inputs, so a
        workflow whose output folder is inside (or is) its input folder never feeds on itself."""

    @classmethod
    def accepts(cls, spec: dict[str, Any]) -> bool:
        return cls.key in spec

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def count(self) -> int | None:
        return None

    def generator(self) -> tuple[type, Any] | None:
        """(Step class, validated options) that makes this source's pixels on the workers, or None."""
        return None

    def offer_layout(self, layout: str) -> bool:
        """The plan offers frames in `layout` ("yuv420p") when every step and sink takes it; a
        source that can decode to it says yes and then yields such items (`Item.layout`)."""
        return False

    def decoder_frames(self) -> tuple[int, int] | None:
        """(width, height) of the yuv420p frames this source decodes, when its decoder can also
        shrink them (`scale_in_decoder`); None for everything else (the default)."""
        return None

    def scale_in_decoder(self, width: int, height: int) -> None:
        """Decode frames already shrunk to `width` x `height` (area filter): the plan moved the
        chain's first step into the decoder (`Step.decoder_size`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resize in its decoder")

    def offer_relay(self) -> bool:
        """Whether the plan may relay this input: no step and no other output needs its pixels,
        so one process decodes and encodes (`relay_items`); sources that cannot say no."""
        return False

    def relay_items(self, start: Any) -> Iterator[Item]:
        """The relayed input's items, without pixels, paced by the process `start` runs (see
        `stylefarm.video.source.VideoSource.relay_items`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be relayed")

    def describe(self) -> str:
        return f"{self.key}: {self.options.model_dump(exclude_defaults=True)}"


class ImageSourceOptions(SourceOptions):
    path: str | None = Field(None, description="an image file or a directory")
    glob: str | None = Field(None, description="a glob such as stills/*.jpg (** with recursive)")
    dir: str | None = Field(None, description="a directory of images")
    recursive: bool = Field(False, description="descend into sub-folders (dir/path) or allow ** (glob)")
    alpha: Literal["keep", "drop"] = Field("keep", description="keep or drop an alpha channel")
    max_pixels: PositiveInt | None = Field(
        None, description="largest picture (width x height) read, checked from the header before decoding "
        "(default ~89 M, Pillow's decompression-bomb threshold; STYLEFARM_MAX_PIXELS sets it per machine)")
    exif_orientation: bool = Field(True, description="turn JPEG/WebP pictures upright by their EXIF orientation")

    @model_validator(mode="after")
    def _one_of(self) -> ImageSourceOptions:
        given = [k for k in ("path", "glob", "dir") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of path, glob or dir")
        return self


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and ".stylefarm" not in path.parts


class ImageSource(Source):
    """Still images from a file, a directory (optionally recursive) or a glob, sorted by path."""

    key = "images"
    Options = ImageSourceOptions

    @classmethod
    def accepts(cls, spec: dict[str, Any]) -> bool:
        if "glob" in spec or "dir" in spec:
            return True
        path = spec.get("path")
        return isinstance(path, str) and (Path(path).suffix.lower() in IMAGE_SUFFIXES or not Path(path).suffix)

    def _files(self) -> tuple[list[Path], Path]:
        opts = self.options
        if opts.glob:
            pattern = str(self.base_dir / opts.glob)
            files = [Path(p) for p in globlib.glob(pattern, recursive=opts.recursive)]
            root = Path(pattern.split("*", 1)[0]).parent if "*" in pattern else Path(pattern).parent
            files = sorted(p for p in files if p.is_file() and _is_image(p) and p.resolve() not in self.exclude)
            if not files:
                raise InputError(f"input glob {opts.glob!r} matched no image files")
            return files, root
        target = self.base_dir / (opts.dir or opts.path)
        if target.is_file():
            return [target], target.parent
        if not target.is_dir():
            raise InputError(f"input {opts.dir or opts.path!r} not found ({target})")
        walker = target.rglob("*") if opts.recursive else target.glob("*")
        files = sorted(p for p in walker if p.is_file() and _is_image(p) and p.resolve() not in self.exclude)
        if not files:
            raise InputError(f"input directory {target} holds no image files")
        return files, target

    def items(self) -> Iterator[Item]:
        files, root = self._files()
        for path in files:
            yield Item(source=str(path), index=0, input_root=str(root), loader=self._loader(path))

    def _loader(self, path: Path):
        keep_alpha = self.options.alpha == "keep"
        limit, upright = self.options.max_pixels, self.options.exif_orientation

        def load() -> Item:
            rgb, alpha, depth = read_image(path, limit, upright)
            h, w = rgb.shape[:2]
            return Item(source=str(path), index=0, image=rgb, alpha=alpha if keep_alpha else None,
                        bit_depth=depth, size=(w, h))

        return load

    def count(self) -> int | None:
        return len(self._files()[0])


class PatternSourceOptions(SourceOptions):
    generate: Literal["gradient", "noise", "checker"] = Field(description="procedural pattern")
    count: PositiveInt = 1
    width: PositiveInt = 256
    height: PositiveInt = 256
    seed: int = 0


class PatternSource(Source):
    """Procedural images (for smoke tests, benchmarks and generator-style workflows)."""

    key = "generate"
    Options = PatternSourceOptions

    def items(self) -> Iterator[Item]:
        opts = self.options
        for i in range(opts.count):
            image = _pattern(opts.generate, opts.width, opts.height, opts.seed + i)
            yield Item(source=f"{opts.generate}", index=i, frame=i, image=image, size=(opts.width, opts.height))

    def count(self) -> int | None:
        return self.options.count


def _pattern(kind: str, width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.random((height, width, 3), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "checker":
        cell = max(4, min(width, height) // 8)
        value = ((xx // cell + yy // cell + seed) % 2).astype(np.float32)
        return np.repeat(value[..., None], 3, axis=2)
    phase = seed * 0.37
    return np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1),
                     0.5 + 0.5 * np.sin(xx / 17.0 + yy / 23.0 + phase)], axis=2).astype(np.float32)
