"""Step: the unit a plugin provides. Same shape as a Ray Data callable class.

A step is built from its validated options, `setup(device)` loads weights once (once per
Ray actor / Dask worker), `process(batch)` is pure compute on a list of `Item`s.
A step knows nothing about files, sinks or executors.

    class Invert(Step):
        name = "invert"
        kind = "util"

        class Options(StepOptions):
            strength: float = 1.0

        def process(self, batch):
            return [it.with_image(1 - it.image) for it in batch]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic.functional_validators import AfterValidator, BeforeValidator

from .errors import first_line
from .item import Batch

StepKind = Literal["stylize", "paint", "translate", "generate", "util"]


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """Relative paths in a workflow mean: relative to the workflow file (not the shell's cwd)."""
    base = (info.context or {}).get("base_dir")
    if base is None or not value or Path(value).expanduser().is_absolute():
        return str(Path(value).expanduser()) if value else value
    return str(Path(base) / value)


def _must_exist(value: str, info: ValidationInfo) -> str:
    """When the plan is built (context `check_files`), a file that is not there is the workflow's
    error (file, line, field, exit 2), not a failed set-up once the run has started."""
    if value and (info.context or {}).get("check_files") and not Path(value).exists():
        raise ValueError(f"file not found: {value}")
    return value


InputPath = Annotated[str, AfterValidator(_resolve_path), AfterValidator(_must_exist)]
"""Use for options that name a file (style image, weights, mask): resolved against the workflow,
and it must exist when the plan is built (`run`, `validate`; the file-less `validate_document`
check of documented workflows does not look)."""


def _must_be_picture(value: str, info: ValidationInfo) -> str:
    """A style image or mask that is not a picture (a text file, an HTML page saved as .jpg) is the
    workflow's error too, found from its header alone: it failed the step's set-up, exit 1."""
    if value and (info.context or {}).get("check_files") and Path(value).is_file():
        from .images import header_size

        try:
            header_size(Path(value))
        except Exception as exc:
            raise ValueError(f"not a picture stylefarm can read: {value} ({first_line(exc)})") from None
    return value


InputImage = Annotated[str, AfterValidator(_resolve_path), AfterValidator(_must_exist),
                       AfterValidator(_must_be_picture)]
"""An InputPath that must also be a readable picture (style images, masks, references)."""

OutputDir = Annotated[str, AfterValidator(_resolve_path)]
"""Use for a folder the step writes into (previews): resolved against the workflow, may not exist yet."""


def as_list(value: object) -> object:
    """`style: a.jpg` and `style: [a.jpg, b.jpg]` both mean a list (None stays None)."""
    return list(value) if isinstance(value, list | tuple) else value if value is None else [value]


class _OneOrList:
    """`OneOrList[T]`: an option that takes one T or a list of them and is always a list in code.

    Use it instead of a `mode="before"` listify validator: the JSON schema (`stylefarm schema`)
    then says "T or list of T", exactly what the loader accepts."""

    def __class_getitem__(cls, item: type) -> object:
        return Annotated[list[item], BeforeValidator(as_list, json_schema_input_type=item | list[item])]


OneOrList = _OneOrList


class StepOptions(BaseModel):
    """Base for a step's `with:` options. Unknown keys are errors (typos must not pass); a text
    option takes a number as its text (YAML's `id: 7`, `fps: 25` are numbers)."""

    model_config = ConfigDict(extra="forbid", defer_build=True, coerce_numbers_to_str=True)


class Step:
    """Base class for plugin steps. Subclasses set the class attributes and `process`."""

    name: ClassVar[str] = ""
    kind: ClassVar[StepKind] = "util"
    Options: ClassVar[type[StepOptions]] = StepOptions
    temporal: ClassVar[bool] = False
    """True when the step keeps state across frames of one source (needs them in order, on
    one worker). Executors keep a temporal step's frames of one source on one instance."""
    pixel_types: ClassVar[tuple[str, ...]] = ("float32",)
    """What `process` accepts and returns: add "uint8" when the step works on 8-bit frames as they
    are (e.g. a resize), so I/O-bound chains skip the float conversion (see `stylefarm.item`)."""
    uses_device: ClassVar[bool] = True
    """False for numpy-only steps: a chain of them never imports torch to pick a device."""
    summary: ClassVar[str] = ""
    """One line for `stylefarm plugins`; defaults to the first docstring line."""

    def __init__(self, options: StepOptions | None = None):
        self.options = options if options is not None else self.Options()
        self.device = "cpu"
        self.weights_used: list[str] = []
        """Weight files this step loaded (report provenance). Files loaded through
        `stylefarm.weights` are added by the host; append paths you open yourself."""

    @classmethod
    def decoder_size(cls, options: StepOptions, width: int, height: int) -> tuple[int, int] | None:
        """The size to let the video decoder shrink yuv420p frames of `width` x `height` to, when
        this step's whole effect on them is an area-filter downscale to it (ffmpeg's `scale`,
        flags=area); else None (the default). The plan asks only a chain's first step, and only
        when frames stay yuv420p: the decoder then resizes and the step is skipped, so full-size
        frames never cross the pipe (`stylefarm.plan`)."""
        return None

    @classmethod
    def is_temporal(cls, options: StepOptions) -> bool:
        """Whether this configuration keeps state across frames (default: the class's `temporal`);
        override when only some options do, e.g. reusing the previous frame's result."""
        return cls.temporal

    @classmethod
    def weights_needed(cls, options: StepOptions) -> list[str]:
        """Weights-manager names `setup` will load with these options (files given by path not
        counted), so `stylefarm validate` can say which are missing on this machine. Cheap: no
        torch, nothing loaded (validate must stay fast). Return a `stylefarm.weights.Needed(name,
        option)` where a path goes elsewhere than the step's `weights:` option (a role of it,
        another option), so the warning names it; `weights.role_names` does this for roles."""
        return []

    def setup(self, device: str) -> None:
        """Load weights and move them to `device` ('cpu' or 'cuda[:N]'). Called once."""
        self.device = device

    def process(self, batch: Batch) -> Batch:
        """Return the processed items (usually one per input item, same order)."""
        raise NotImplementedError(f"step {self.name!r} does not implement process()")

    def teardown(self) -> None:
        """Release resources at the end of a run (optional)."""

    @classmethod
    def describe(cls) -> str:
        if cls.summary:
            return cls.summary
        doc = (cls.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""
