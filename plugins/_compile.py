"""Compiled networks without the wait: ahead-of-time packages in a cache every process shares.

Why: small-channel conv nets (cin26, fast_style, magenta_arbitrary) are memory-bound in eager
mode on CPU; inductor fuses pad + norm + relu into a few loops and prepacks the conv weights
("freezing"): 1.15-1.5x per frame on a 2-core CPU (benchmarks/README.md). The price is a compile
per frame size (30-70 s there), which a farm would pay in every task. So each compile is saved
as an AOTInductor package under `compile_dir()` keyed by the network's code and weights, the
input shapes, torch, device and thread count: the next process (or farm task on the same node)
loads it in about a second.

`compile` option of a step: `true` compiles every frame size at once, `false` never,
`auto` (default) loads a cached package at once and otherwise compiles a frame size only when
the frames still expected at that size, times the per-frame saving, repay the compile
(`Compiled.worth_it`). Any failure (no C compiler, an op export cannot trace) logs one warning
and that size runs eagerly, same outputs either way. The step's `compile_info` dict says, per
frame size, what was decided and what it cost (the run report shows it under the step).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("stylefarm.compile")

CompileMode = Literal["auto", True, False]
COLD_COMPILE_S = 60.0  # first guess of a cold compile on a 2-core CPU (measured 15-70 s), until one is timed
PACKAGE_VERSION = 2  # bump when the key or package layout changes


def compile_dir() -> Path:
    """`$STYLEFARM_COMPILE_DIR`, else the platform cache dir + `/compile` (beside `/weights`)."""
    env = os.environ.get("STYLEFARM_COMPILE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("stylefarm")) / "compile"


def use_compile_cache() -> Path:
    """Point inductor's own on-disk caches (FX graphs, C++ kernels) into ours, before any compile,
    unless the user chose a folder; returns our folder."""
    root = compile_dir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    return root


def frames_left(items: Sequence[Any]) -> int | None:
    """Frames of this video still to come after `items` (from the source's `meta["video"]`); None for stills."""
    if not items:
        return None
    video = items[-1].meta.get("video") or {}
    if "count" not in video or "first" not in video:
        return None
    return max(0, int(video["first"]) + int(video["count"]) - 1 - int(items[-1].index))


def expect(forward: Any, items: Sequence[Any]) -> None:
    """Tell a `Compiled` forward how many frames are still coming (no-op for a plain module)."""
    if isinstance(forward, Compiled):
        forward.remaining = frames_left(items)


def fingerprint(module: Any) -> str:
    """sha256 of the network: class, the source files of every non-torch class it and its
    sub-modules are built from (base classes included: cin26's forward lives in a shared base
    class), parameters, buffers and plain attributes (e.g. a quantization table), so a package is
    only ever reused for the very same network and code."""
    import torch

    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for source in _source_files(module):
        try:
            h.update(source.read_bytes())
        except OSError:
            pass
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().view(-1)
        h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for name, sub in module.named_modules():
        h.update(name.encode() + _describe(sub, 0).encode())
    return h.hexdigest()


def _source_files(module: Any) -> list[Path]:
    """Source files defining the classes of `module`, its sub-modules and their bases, outside torch."""
    import inspect

    files: list[Path] = []
    for sub in module.modules():
        for cls in type(sub).__mro__:
            if cls.__module__.split(".")[0] in ("torch", "builtins"):
                continue
            try:
                path = Path(inspect.getsourcefile(cls) or "")
            except TypeError:
                continue
            if path.name and path not in files:
                files.append(path)
    return files


def _describe(obj: Any, depth: int) -> str:
    """Deterministic text of an object's plain attributes (never ids, tensors or sub-modules)."""
    import torch

    if isinstance(obj, (str, int, float, bool, type(None))):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_describe(v, depth + 1) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join(f"{k!r}:{_describe(v, depth + 1)}" for k, v in sorted(obj.items(), key=str)) + "}"
    if isinstance(obj, torch.Tensor) or callable(obj) and not hasattr(obj, "__dict__") or depth > 4:
        return type(obj).__name__
    skip = {"_parameters", "_buffers", "_modules", "training"}
    fields = {k: v for k, v in getattr(obj, "__dict__", {}).items()
              if k not in skip and not k.startswith("_") and not isinstance(v, torch.nn.Module)}
    return type(obj).__name__ + _describe(fields, depth + 1)


def shape_key(args: Sequence[Any]) -> str:
    """e.g. `1x3x720x1280,1x26`: what a package is specialised on."""
    return ",".join("x".join(map(str, a.shape)) + ("" if str(a.dtype) == "torch.float32" else f":{a.dtype}")
                    for a in args)


class Compiled:
    """Calls `module` through a compiled package per input shape, or eagerly (see the module doc)."""

    def __init__(self, module: Any, name: str, mode: CompileMode = "auto", speedup: float = 1.8):
        self.module, self.name, self.mode, self.speedup = module, name, mode, speedup
        self.remaining: int | None = None  # frames still coming (video); None = unknown (stills)
        self.root = use_compile_cache() / "aoti"
        self._fingerprint: str | None = None
        self.runners: dict[str, Callable | None] = {}  # shape -> compiled callable, None = eager for good
        self.seen: dict[str, int] = {}
        self.eager_s: dict[str, float] = {}  # best eager seconds per call, per shape
        self._calls: dict[tuple[str, str], int] = {}
        self._best: dict[tuple[str, str], float] = {}
        self._cold: float | None = None
        self.info: dict[str, Any] = {"mode": str(mode).lower(), "cache_dir": str(self.root.parent), "sizes": {}}

    def __call__(self, *args: Any) -> Any:
        key = shape_key(args)
        self.seen[key] = self.seen.get(key, 0) + 1
        runner = self.runners.get(key)
        if runner is None and key not in self.runners:
            runner = self._decide(key, args)
        if runner is not None:
            try:
                return self._timed(key, "compiled_call_s", runner, args)
            except Exception as exc:  # a package that loads but will not run: eager for this size
                self._give_up(key, "run", exc)
        return self._timed(key, "eager_call_s", self.module, args)

    def _timed(self, key: str, field: str, fn: Callable, args: Sequence[Any]) -> Any:
        """Run and keep the best time per shape and kind (the first call, which pays warm-up, is
        replaced by the second)."""
        start = time.perf_counter()
        out = fn(*args)
        seconds = time.perf_counter() - start
        row = self.info["sizes"].setdefault(key, {})
        calls = self._calls[key, field] = self._calls.get((key, field), 0) + 1
        best = seconds if calls <= 2 else min(seconds, self._best[key, field])
        self._best[key, field] = best
        row[field] = round(best, 6)
        if field == "eager_call_s":
            self.eager_s[key] = best
        return out

    def _decide(self, key: str, args: Sequence[Any]) -> Callable | None:
        """A runner for this shape if one is cached or worth compiling now; None = eager this call."""
        row = self.info["sizes"].setdefault(key, {})
        package = self.package(key)
        if self.mode is not False and package.is_file():
            return self._load(key, package, row)
        if self.mode is False:
            self.runners[key] = None
            row.update(decision="eager")
            return None
        ahead = os.environ.get("STYLEFARM_COMPILE_AHEAD") == "1"  # `stylefarm warmup`: compile now
        if self.mode == "auto" and not (ahead or self.worth_it(key)):
            row.update(decision="eager", cache="cold", estimated_compile_s=round(self.cold_estimate(), 1))
            return None
        return self._compile(key, args, package, row)

    def worth_it(self, key: str) -> bool:
        """Frames still coming at this size x eager-vs-compiled saving > the cold compile time.
        Stills (count unknown): as many more as seen so far, so eager never costs more than ~2 compiles."""
        if key not in self.eager_s:
            return False  # time one eager call first
        remaining = self.remaining if self.remaining is not None else self.seen[key]
        saving = self.eager_s[key] * (1.0 - 1.0 / self.speedup)
        return remaining * saving > self.cold_estimate()

    def cold_estimate(self) -> float:
        """The last cold compile timed on this machine for this step, else COLD_COMPILE_S."""
        if self._cold is None:
            self._cold = self._last_cold_compile()
        return self._cold

    def _last_cold_compile(self) -> float:
        times = []
        for meta in self.root.glob("*.json") if self.root.is_dir() else []:
            try:
                data = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if data.get("step") == self.name and data.get("compile_s"):
                times.append((meta.stat().st_mtime, float(data["compile_s"])))
        return max(times)[1] if times else COLD_COMPILE_S

    def package(self, key: str) -> Path:
        import torch

        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.module)
        device = next((str(p.device) for p in self.module.parameters()), "cpu")
        text = "|".join([str(PACKAGE_VERSION), self._fingerprint, key, torch.__version__, device,
                         str(torch.get_num_threads()), torch.backends.cpu.get_cpu_capability()])
        return self.root / f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.pt2"

    def _load(self, key: str, package: Path, row: dict) -> Callable | None:
        start = time.perf_counter()
        try:
            runner = _Package(package)
        except Exception as exc:
            return self._give_up(key, "load", exc)
        row.update(decision="compiled", cache="warm", load_s=round(time.perf_counter() - start, 2),
                   after_frames=self.seen[key] - 1)
        self.runners[key] = runner
        return runner

    def _compile(self, key: str, args: Sequence[Any], package: Path, row: dict) -> Callable | None:
        """Export + AOTInductor compile (inductor freezing), saved atomically for other processes.
        Untested on CUDA (the key and loader take the device; no GPU run yet)."""
        import torch

        start = time.perf_counter()
        package.parent.mkdir(parents=True, exist_ok=True)
        tmp = package.with_name(f"{package.stem}.{os.getpid()}.tmp.pt2")
        try:
            with torch.no_grad():
                exported = torch.export.export(self.module, tuple(args))
                torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp),
                                                         inductor_configs={"freezing": True})
            os.replace(tmp, package)
            seconds = time.perf_counter() - start
            _write_meta(package, {"step": self.name, "shape": key, "compile_s": round(seconds, 2),
                                  "eager_call_s": self.eager_s.get(key), "threads": torch.get_num_threads()})
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            return self._give_up(key, "compile", exc)
        log.info("%s: compiled for %s in %.1f s (cached in %s)", self.name, key, seconds, package.parent)
        runner = self._load(key, package, row)
        row.update(cache="cold", compile_s=round(seconds, 2))
        return runner

    def _give_up(self, key: str, what: str, exc: Exception) -> None:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning("%s: %s failed for %s (%s: %s); running eagerly", self.name, what, key, type(exc).__name__, first)
        self.runners[key] = None
        self.info["sizes"].setdefault(key, {}).update(decision="eager", error=f"{what}: {first}")
        return None


class _Package:
    """A loaded AOTInductor package, called with positional tensors, returning one tensor.

    Why not `torch._inductor.aoti_load_package`: that imports all of inductor and probes the CPU's
    vector ISAs by building and loading test libraries in child processes, only to log a warning
    on a mismatch; that was 8-17 s of a 17 s load on a busy 2-core machine, vs well under a second
    for the C++ loader alone. The package key already pins torch, device and CPU capability."""

    def __init__(self, path: Path):
        import torch

        self.loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)

    def __call__(self, *args: Any) -> Any:
        out = self.loader.boxed_run(list(args))
        return out[0] if len(out) == 1 else tuple(out)


def _write_meta(package: Path, data: dict) -> None:
    """Timings beside the package: the next process's cold-compile estimate (`Compiled.cold_estimate`)."""
    meta = package.with_suffix(".json")
    tmp = meta.with_name(f"{meta.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, meta)


def parse_mode(value: Any) -> CompileMode:
    """`compile:` accepts auto / true / false (YAML booleans or the strings)."""
    text = str(value).strip().lower()
    if text in ("auto",):
        return "auto"
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"compile: {value!r} is not auto, true or false")


def maybe_compile(module: Any, mode: CompileMode | bool, name: str, speedup: float = 1.8) -> Callable:
    """`module` itself (`compile: false`), or a `Compiled` wrapper (`true` / `auto`)."""
    mode = parse_mode(mode)
    return module if mode is False else Compiled(module, name, mode, speedup)


def _option_type():
    from typing import Annotated

    from pydantic import BeforeValidator

    return Annotated[Literal["auto"] | bool, BeforeValidator(lambda v: parse_mode(v))]


CompileOption = _option_type()
"""Type of a step's `compile:` option (auto / true / false)."""
COMPILE_HELP = ("auto (default): compile a frame size when the frames still to come repay it, or load it from the "
                "shared compile cache at once (`stylefarm warmup` fills it); true: always; false: never")
