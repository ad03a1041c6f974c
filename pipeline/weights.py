"""Weights manager: knows every model file plugins declare, finds, verifies and loads them.

Lookup order for `resolve(name, override)`:
  1. `override` (a local path from the workflow's `weights:` option),
  2. the user cache (`$STYLEFARM_WEIGHTS_DIR`, else the platform cache dir + `/weights`),
  3. a file shipped inside a plugin package (`WeightFile.packaged`).
Nothing is ever downloaded implicitly: a missing file raises `WeightsError` naming the file,
its URL and the exact `stylefarm weights add` command.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import io
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import StylefarmError, WeightsError, first_line


@dataclass(frozen=True)
class WeightFile:
    """One model file a plugin needs. `name` is `<step>/<role>`, e.g. `adain/decoder`."""

    name: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str = ""
    packaged: str | None = None  # "package:relative/path" of a file shipped in a wheel
    note: str = ""

    def __post_init__(self) -> None:
        """Refuse a malformed `packaged=` where the plugin builds the record (its own code and
        tests), not when a user first needs the file; only the form is judged, nothing is imported."""
        if self.packaged is not None:
            problem = packaged_form_problem(self.packaged)
            if problem:
                raise ValueError(f"WeightFile {self.name!r}: packaged={self.packaged!r} {problem} "
                                 f"(expected 'package:relative/path', e.g. 'acme_styles:weights/net.pt')")


class PackagedWeightsError(WeightsError):
    """A weight's `packaged=` names no package this install can read: the registering plugin's
    mistake, said with the weight, the plugin and the value. `problem` and `fix` apart for
    `stylefarm doctor`; one line as a message (and picklable, for Ray/Dask workers)."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem, self.fix = problem, fix


def packaged_form_problem(packaged: object) -> str | None:
    """Why `packaged` is not of the form "package:relative/path", None when it is."""
    if not isinstance(packaged, str):
        return f"is a {type(packaged).__name__}, not a string"
    package, sep, rel = packaged.partition(":")
    if not sep:
        return "has no ':' between the package and the file's path"
    if not all(part.isidentifier() for part in package.split(".")):
        return f"names {package!r}, which is not an importable package name"
    if not rel or rel.endswith("/"):
        return "has no file path after ':' (the '/'-separated path of a file inside the package)"
    if "\\" in rel:
        return "has a '\\' in its path (separate folders with '/', on every system)"
    if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
        return "has a path that leaves the package (it must be relative to the package folder)"
    return None


def cache_dir() -> Path:
    env = os.environ.get("STYLEFARM_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("stylefarm")) / "weights"


def registry() -> dict[str, WeightFile]:
    from .host import get_host

    return get_host().weights


def lookup(name: str) -> WeightFile:
    files = registry()
    if name not in files:
        known = ", ".join(sorted(files)) or "none"
        raise WeightsError(f"unknown weights {name!r}; known: {known}")
    return files[name]


def cached_path(wf: WeightFile) -> Path:
    return cache_dir() / wf.name.replace("/", "__") / wf.filename


def provider(name: str) -> str:
    """The plugin that registered weights `name` ('plugin EP (DIST VERSION)'), '' when unknown."""
    from .host import get_host

    for info in get_host().plugins:
        if f"weights:{name}" in info.provides:
            return f"plugin {info.name} ({' '.join(filter(None, (info.distribution, info.version)))})"
    return ""


def packaged_path(wf: WeightFile) -> Path | None:
    """The copy of `wf` shipped in its package; None when it declares none or the package lacks
    the file. A `packaged=` whose package cannot be imported raises `PackagedWeightsError`: a
    bare ModuleNotFoundError named neither the weight nor the plugin, and broke every listing."""
    if not wf.packaged:
        return None
    package, _, rel = wf.packaged.partition(":")
    cause = packaged_form_problem(wf.packaged)
    if cause is None:
        try:
            module = importlib.import_module(package)
        except ModuleNotFoundError as exc:
            cause = f"no module {exc.name or package}"
        except Exception as exc:  # the package's own import code failed
            cause = f"importing {package} raised {first_line(exc, with_type=True)}"
        else:
            if not hasattr(module, "__path__"):
                cause = f"{package} is a module, not a package"
            else:
                path = Path(str(resources.files(module).joinpath(rel)))
                return path if path.is_file() else None
    by = provider(wf.name)
    raise PackagedWeightsError(
        f"weights {wf.name!r}{f' (from {by})' if by else ''}: packaged={wf.packaged!r} cannot be read: {cause}",
        f"the plugin must fix its WeightFile(packaged=...); meanwhile "
        f"`stylefarm weights add {wf.name} /path/to/{wf.filename}`")


DEFAULT_OPTION = "in the step's `weights:` option"
"""Where the missing-file message says a path goes when the caller names no option (plugins that
word it for their own users replace this text, e.g. a source's key or a command's flags)."""


class Needed(str):
    """A weights-manager name as `Step.weights_needed` returns it, with the option that gives the
    file by path instead (`option`, see `missing_message`), so `stylefarm validate` names it; a
    plain name means the step's `weights:` option."""

    option: str | None

    def __new__(cls, name: str, option: str | None = None) -> Needed:
        self = super().__new__(cls, name)
        self.option = option
        return self


def missing_message(wf: WeightFile, option: str | None = None) -> str:
    """The one-line offline message. `option`: where the workflow gives this file by path instead,
    ending "or give its path ...", PATH standing for the file, e.g. "in the step's options:
    `weights: {decoder: PATH}`" or "in the input's `weights:` key"; None: `DEFAULT_OPTION`."""
    where = f" from {wf.url}" if wf.url else ""
    path = f"/path/to/{wf.filename}"
    return (
        f"weights {wf.name!r} ({wf.filename}) not found: download it{where} and run "
        f"`stylefarm weights add {wf.name} {path}` (copies it to {cached_path(wf)}), "
        f"or give its path {(option or DEFAULT_OPTION).replace('PATH', path)}"
    )


def resolve(name: str, override: str | os.PathLike | None = None, option: str | None = None) -> Path:
    """Path of a weights file: explicit override > user cache > shipped in a package.
    `option`: what the missing-file message names as the way to give a path (`missing_message`)."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file for {name!r} not found: {path}")
        return path
    wf = lookup(name)
    cached = cached_path(wf)
    if cached.is_file():  # before the packaged copy is looked for: a broken `packaged=` cannot hide it
        return cached
    packaged = packaged_path(wf)
    if packaged is not None:
        return packaged
    raise WeightsError(missing_message(wf, option))


def where_found(name: str) -> str:
    """What `stylefarm weights list` shows for one file: its path, MISSING, or why its packaged
    copy cannot be read (one plugin's mistake is its own row, not the end of the listing)."""
    try:
        return str(resolve(name))
    except PackagedWeightsError as exc:
        return f"PROBLEM: {exc}"
    except StylefarmError:
        return "MISSING"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(name: str, path: Path) -> None:
    """Raise `WeightsError` when the file's sha256 differs from the declared one."""
    wf = lookup(name)
    if wf.sha256 and sha256_of(path) != wf.sha256:
        raise WeightsError(
            f"weights {name!r}: {path} has the wrong sha256 (expected {wf.sha256[:12]}…); "
            f"the file is corrupt or a different release: fetch {wf.url or wf.filename} again"
        )


TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
WEB_PAGE = (b"<!doctype html", b"<html", b"<head", b"<?xml")


PICTURE_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"RIFF", "WebP"),
                 (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def not_the_file(filename: str, path: Path, weights: bool = False) -> str | None:
    """Why `path` cannot hold `filename`'s kind of file, judged by its first bytes; None when it
    may (`weights`: it must be a weights file whatever its name, e.g. `weights: style.jpg`). Why: a
    download that got a sign-in or confirmation page (Google Drive does this) saves HTML under the
    right name, and nothing else says so before a model fails to load."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if not head:
        return "it is empty"
    if head.lstrip().lower().startswith(WEB_PAGE):
        return "it is a web page (HTML): the download saved a site's page instead of the file"
    suffix = Path(filename).suffix.lower()
    picture = next((kind for magic, kind in PICTURE_MAGIC if head.startswith(magic)), None)
    if picture and (weights or suffix in TORCH_SUFFIXES):
        return f"it is a picture ({picture}), not a weights file"
    if suffix in TORCH_SUFFIXES and not head.startswith((b"PK\x03\x04", b"\x80")):
        return "it is not a PyTorch checkpoint (torch.save writes a zip archive or a pickle)"
    if suffix == ".png" and not head.startswith(b"\x89PNG"):
        return "it is not a PNG image"
    return None


def add(name: str, source: str | os.PathLike) -> Path:
    """Copy a user-supplied file into the cache after checking its kind and hash; return the new path."""
    wf = lookup(name)
    src = Path(source).expanduser()
    if not src.is_file():
        raise WeightsError(f"no such file: {src}")
    reason = not_the_file(wf.filename, src)
    if reason:
        raise WeightsError(f"{src} cannot be {name} ({wf.filename}): {reason}; the file is {wf.url or wf.filename}")
    verify(name, src)
    dest = cached_path(wf)
    dest.parent.mkdir(parents=True, exist_ok=True)
    from .runlock import temp_name

    tmp = dest.parent / temp_name(dest)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def load_state_dict(path: Path, name: str = "", check_hash: bool = True) -> dict[str, Any]:
    """`torch.load(weights_only=True)` with one-line errors for corrupt or foreign files."""
    import torch

    from .provenance import record

    verified = check_hash and name and name in registry()
    if verified:
        verify(name, path)
    record(path, lookup(name).sha256 if verified else None)  # the report lists every weights file loaded
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        # before torch's own words (for `weights: style.jpg`, a page of pickle advice)
        why = not_the_file(path.name, path, weights=True) or first_line(exc)
        raise WeightsError(f"cannot load weights {path} ({name or 'file'}): {why}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"weights {path} do not hold a state_dict (got {type(state).__name__})")
    return state


def load_into(module, state: dict[str, Any], path: Path | str, strict: bool = True) -> None:
    """`load_state_dict` that names the file and the first missing/unexpected keys on mismatch."""
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:3])[:300]
        raise WeightsError(f"weights {path} do not fit {type(module).__name__}: {detail}") from None


RANDOM_WEIGHTS_WARNING = (
    "!!! {step}: RANDOM WEIGHTS (test-only mode) - the output is noise, NOT what the model makes; "
    "install the official weights with `stylefarm weights add` !!!"
)


def announce_random_weights(step: str) -> None:
    """Random weights are for tests only: say so as a warning and in the log."""
    import logging
    import warnings

    message = RANDOM_WEIGHTS_WARNING.format(step=step)
    warnings.warn(message, stacklevel=3)
    logging.getLogger("stylefarm.weights").warning(message)


def role_option(role: str) -> str:
    """The `weights:` mapping entry that gives one role's file by path (for `missing_message`)."""
    return f"in the step's options: `weights: {{{role}: PATH}}`"


def role_names(weights: str | dict[str, str] | None, roles: dict[str, str]) -> list[Needed]:
    """The weights-manager names `role_states` will look up: the roles not given by path."""
    return [] if isinstance(weights, str) else [Needed(name, role_option(role)) for role, name in roles.items()
                                                if role not in (weights or {})]


def role_states(weights: str | dict[str, str] | None, roles: dict[str, str]) -> dict[str, tuple[dict, str]]:
    """State dicts per role ({role: weights-manager name}) from a step's `weights:` option.

    One path: a single file holding a dict with one sub-dict per role (optionally under
    `state_dict`). A mapping: role -> path. Roles not given come from the weights manager.
    """
    if isinstance(weights, str):
        state = load_state_dict(resolve("weights", weights), check_hash=False)
        state = state.get("state_dict", state) if isinstance(state.get("state_dict"), dict) else state
        missing = [r for r in roles if not isinstance(state.get(r), dict)]
        if missing:
            raise WeightsError(
                f"weights {weights}: one file must hold a dict per role ({', '.join(roles)}); "
                f"missing {', '.join(missing)} - or give a mapping {{role: path}}"
            )
        return {role: (state[role], f"{weights}[{role}]") for role in roles}
    given = dict(weights or {})
    unknown = sorted(set(given) - set(roles))
    if unknown:
        raise WeightsError(f"unknown weights role(s) {', '.join(unknown)}; expected {', '.join(roles)}")
    paths, missing = {}, []
    for role, name in roles.items():  # every missing file in one message, not one per attempt
        try:
            paths[role] = resolve(name, given.get(role), role_option(role))
        except PackagedWeightsError:
            raise
        except WeightsError as exc:
            missing.append(str(exc))
    if missing:
        raise WeightsError("; and ".join(missing))
    return {role: (load_state_dict(path, roles[role], check_hash=role not in given), str(path))
            for role, path in paths.items()}


def load_weights(name: str, override: str | os.PathLike | None = None,
                 option: str | None = None) -> tuple[dict[str, Any], Path]:
    """The one call a plugin's `setup` needs: the state dict and path of weights `name`.

    `override` (the step's `weights:` option) wins; otherwise the user cache, then the
    packaged copy. Registered files are checked against their sha256; user overrides are not
    (they may be the user's own fine-tune). Offline and missing: the one-line weights message
    (`option`: the option it names, see `missing_message`).
    """
    path = resolve(name, override, option)
    return load_state_dict(path, name, check_hash=not override), path


class TensorOutline:
    """A tensor as `read_outline` gives it: its shape, no data."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)

    def __repr__(self) -> str:
        return f"TensorOutline({self.shape})"


def _outline_tensor(storage: Any, offset: int, size: tuple[int, ...], *rest: Any) -> TensorOutline:
    return TensorOutline(size)


class _OutlineUnpickler(pickle.Unpickler):
    """A checkpoint's pickle with tensors as `TensorOutline`s; any class but torch's tensor and
    storage records and OrderedDict is refused (safe as `weights_only`), their data never read."""

    CALLS = {("torch._utils", "_rebuild_tensor_v2"): _outline_tensor, ("torch._utils", "_rebuild_tensor"):
             _outline_tensor, ("torch._utils", "_rebuild_parameter"): lambda data, *rest: data,
             ("collections", "OrderedDict"): collections.OrderedDict}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.CALLS:
            return self.CALLS[module, name]
        if module == "torch" and name.endswith("Storage"):
            return name  # only named in a storage record (the persistent id): never called
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict")

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage: its bytes stay in the file


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of torch's pre-1.6 (non-zip) format


def read_outline(path: str | os.PathLike) -> Any | None:
    """What a torch checkpoint holds, tensors as their shapes (`TensorOutline`), read without torch
    and without its tensor data: checks before a run (`stylefarm validate`) stay fast. None for a
    file this cannot read (not a checkpoint, or a class other than a state dict's); `load_state_dict`
    then says why."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickled = next((n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl"), None)
                return None if pickled is None else _OutlineUnpickler(io.BytesIO(archive.read(pickled))).load()
        with open(path, "rb") as fh:  # legacy: magic number, protocol, system info, then the object
            if _OutlineUnpickler(fh).load() != LEGACY_MAGIC:
                return None
            _OutlineUnpickler(fh).load(), _OutlineUnpickler(fh).load()
            return _OutlineUnpickler(fh).load()
    except Exception:  # a damaged or foreign file raises anything; it is setup's to explain
        return None


def save_weights(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save` that never leaves a torn file: temp file in the same folder, fsync, rename.

    For checkpoints and converted weights alike (a killed training or conversion keeps the
    previous file)."""
    import tempfile

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
