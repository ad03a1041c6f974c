"""Plugin host: discovers plugins through the `stylefarm` entry-point group with pluggy.

Built-ins (`plugins/...`) register through the same group as third-party packages, so the
host never imports them by name. One bad plugin must not break the others: everything a
plugin registers is checked against the contract when it is discovered, and a plugin that
fails to import, raises in a hook, returns the wrong thing or names an unknown hook is
marked FAILED (distribution, file:line, one line saying what is wrong) and contributes
nothing. A name two third-party plugins both register is disabled alone, with both
distributions named; a third-party name that is also a built-in's is not used (the built-in's
workflows keep working) and its plugin is told to rename it.
"""

from __future__ import annotations

import difflib
import logging
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, defined_at, first_line, raised_outside_host

log = logging.getLogger("stylefarm.host")
GROUP = "stylefarm"
BUILTIN_COMMANDS = frozenset({"run", "plan", "validate", "plugins", "steps", "schema", "join", "weights", "train",
                              "export", "report", "doctor", "warmup"})
"""Names of the CLI's own commands: a plugin command with one of these names is an error
(tests keep this list equal to the CLI's)."""
BUILTIN_DISTRIBUTION = "stylefarm"  # the distribution whose entry points are the built-in plugins
PIXEL_TYPES = ("float32", "uint8", "yuv420p")  # what the host hands a step (stylefarm.item)
STEP_KINDS = ("stylize", "paint", "translate", "generate", "util")


@dataclass
class PluginInfo:
    """What `stylefarm plugins` shows for one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    provides: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Provided:
    """A registered class (step, source or sink), command or weights file and where it came from."""

    obj: Any
    plugin: PluginInfo


class ContractError(Exception):
    """A plugin broke the contract; `where` is the file:line to fix."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


def _raised_at(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


# --- what each hook must return ------------------------------------------------------

def _options_ok(cls: type, what: str, base: type) -> None:
    """Options subclass the contract's base, whose `extra="forbid"` makes a misspelt option an
    error (a plain BaseModel drops it without a word), and are fully defined now, not at first use."""
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, base)):
        raise ContractError(f"{what} {cls.__name__}.Options must subclass {base.__module__}.{base.__name__} "
                            f"(misspelt options are then errors), got {options!r}", defined_at(options or cls))
    if not getattr(options, "__pydantic_complete__", True):
        try:
            options.model_rebuild()
        except Exception as exc:
            raise ContractError(f"{what} {cls.__name__}.Options is not fully defined: {first_line(exc)}",
                                defined_at(options)) from None


def _named_class(obj: Any, base: type, attr: str, what: str, options: type) -> str:
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise ContractError(f"{what}s must be {base.__module__}.{base.__name__} subclasses, got {obj!r}")
    key = getattr(obj, attr, "")
    if not isinstance(key, str) or not key.strip() or key != key.strip():
        raise ContractError(f"{what} class {obj.__name__} has no {attr} (set `{attr} = \"...\"` on the class)",
                            defined_at(obj))
    _options_ok(obj, what, options)
    return key


def pixel_types_problem(types: Any) -> str:
    """What keeps the host from feeding a step the `pixel_types` it declares, or "" for nothing:
    they must be a tuple of PIXEL_TYPES with float32 (any step may get floats), and uint8 wherever
    yuv420p is (a 4:2:0 result is 8-bit). Discovery and `stylefarm.testing` both ask here."""
    if not isinstance(types, tuple | list):
        return f"pixel_types must be a tuple, not {types!r}"
    if unknown := [t for t in types if t not in PIXEL_TYPES]:
        return f"unknown pixel type {unknown[0]!r} (the host feeds {', '.join(PIXEL_TYPES)})"
    if "float32" not in types:
        return '"float32" is missing from pixel_types (the host may hand any step floats)'
    if "yuv420p" in types and "uint8" not in types:
        return ('"yuv420p" needs "uint8" in pixel_types too (the host refuses a yuv420p result from a '
                'step without 8-bit pixel_types)')
    return ""


def _check_step(obj: Any) -> str:
    from .step import Step, StepOptions

    name = _named_class(obj, Step, "name", "step", StepOptions)
    if obj.kind not in STEP_KINDS:
        raise ContractError(f"step {name!r} has kind {obj.kind!r}; expected one of {', '.join(STEP_KINDS)}",
                            defined_at(obj))
    types = obj.pixel_types
    if pixel_types_problem(types):
        raise ContractError(f"step {name!r} has pixel_types {types!r}; expected a tuple of {', '.join(PIXEL_TYPES)} "
                            "with float32 (any step may get floats), and uint8 wherever yuv420p is "
                            "(a 4:2:0 result is 8-bit)", defined_at(obj))
    return name


def _check_source(obj: Any) -> str:
    from .sources import Source, SourceOptions

    return _named_class(obj, Source, "key", "source", SourceOptions)


def _check_sink(obj: Any) -> str:
    from .sinks import Sink, SinkOptions

    return _named_class(obj, Sink, "key", "sink", SinkOptions)


def _check_weights(obj: Any) -> str:
    from .weights import WeightFile

    if not isinstance(obj, WeightFile) or not obj.name:
        raise ContractError(f"weights must be stylefarm.weights.WeightFile records with a name, got {obj!r}")
    return obj.name


def _check_command(obj: Any) -> str:
    import click

    if not isinstance(obj, click.Command) or not obj.name:
        raise ContractError(f"commands must be click.Command objects with a name, got {obj!r}")
    return obj.name


HOOKS = {  # hook -> (kind of thing, checker)
    "stylefarm_register_steps": ("step", _check_step),
    "stylefarm_register_sources": ("source", _check_source),
    "stylefarm_register_sinks": ("sink", _check_sink),
    "stylefarm_register_weights": ("weights", _check_weights),
    "stylefarm_register_commands": ("command", _check_command),
    "stylefarm_register_train_commands": ("train command", _check_command),
}


class PluginHost:
    """Loads entry points once, checks what each plugin registers, and indexes it by name."""

    def __init__(self, extra_plugins: list[tuple[Any, str]] | None = None):
        """`extra_plugins`: (plugin object, distribution name) pairs registered besides entry points."""
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.conflicts: dict[tuple[str, str], str] = {}  # (kind, name) -> message naming both providers
        self._owner_of: dict[int, tuple[Any, PluginInfo]] = {}  # id(plugin object) -> (object, info)
        self._load_entry_points()
        for obj, dist in extra_plugins or []:
            self._add(obj, PluginInfo(getattr(obj, "__name__", type(obj).__name__), dist, "", ""))
        index = self._index()
        self.steps: dict[str, Provided] = index["step"]
        self.sources: dict[str, Provided] = index["source"]
        self.sinks: dict[str, Provided] = index["sink"]
        self.weights = {name: p.obj for name, p in index["weights"].items()}
        self._commands = index["command"]
        self._train_commands = index["train command"]

    # --- discovery ---------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        dists: dict[str, tuple[str, str]] = {}  # one METADATA parse per distribution, not two per plugin
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            dist, version = "?", ""
            if ep.dist is not None:
                key = str(getattr(ep.dist, "_path", id(ep.dist)))
                if key not in dists:
                    meta = ep.dist.metadata
                    dists[key] = (meta["Name"] or "?", meta["Version"] or "")
                dist, version = dists[key]
            info = PluginInfo(ep.name, dist, version, ep.value)
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                where = f"{exc.filename}:{exc.lineno}" if isinstance(exc, SyntaxError) else _raised_at(exc)
                self._fail(info, f"cannot import {ep.value}: {first_line(exc, with_type=True)}", where)
                self.plugins.append(info)
                continue
            if not self.pm.is_registered(obj):
                self._add(obj, info)

    def _add(self, obj: Any, info: PluginInfo) -> None:
        self.plugins.append(info)
        try:
            self.pm.register(obj, name=f"{info.distribution}:{info.name}")
        except pluggy.PluginValidationError as exc:  # e.g. `def stylefarm_register_steps(host)`
            hook = next((h for h in HOOKS if f"'{h}'" in str(exc)), "")
            why = str(exc).strip().splitlines()[-1]
            self._fail(info, f"{hook}: {why} (stylefarm's hooks take no arguments)" if hook else why,
                       defined_at(getattr(obj, hook, None)) if hook else "")
            return
        self._owner_of[id(obj)] = (obj, info)
        unknown = [c.name for c in self.pm.get_hookcallers(obj) or [] if not c.has_spec()]
        if unknown:
            hook = unknown[0]
            close = difflib.get_close_matches(hook, list(HOOKS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self._fail(info, f"{hook!r} is not a stylefarm hook{hint}", defined_at(getattr(obj, hook, None)))
            self.pm.unregister(obj)
            return
        for attr in dir(obj):
            value = getattr(obj, attr, None)
            if attr.startswith("stylefarm_") and callable(value) and not hasattr(value, f"{GROUP}_impl"):
                message = (f"{defined_at(value) or info.module}: {attr} is not marked @hookimpl, so stylefarm "
                           f"never calls it (from stylefarm import hookimpl)")
                info.warnings.append(message)
                log.warning("plugin %s (%s): %s", info.name, info.distribution, message)

    @staticmethod
    def _fail(info: PluginInfo, message: str, where: str = "") -> None:
        info.error = f"{where}: {message}" if where else message
        log.warning("plugin %s (%s) FAILED: %s", info.name, info.distribution, info.error)

    # --- collection --------------------------------------------------------------------

    def _registered(self, info: PluginInfo) -> dict[str, list[tuple[str, Any]]]:
        """Everything one plugin registers, checked; raises ContractError on the first problem."""
        found: dict[str, list[tuple[str, Any]]] = {}
        for hook_name, (kind, check) in HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if self._owner_of.get(id(impl.plugin), (None, None))[1] is not info:
                    continue
                try:
                    results = impl.function()
                except Exception as exc:
                    raised = first_line(exc, with_type=True)
                    where = raised_outside_host(exc, prefer=defined_at(impl.function).rpartition(":")[0])
                    raise ContractError(f"{hook_name} raised {raised}", where or _raised_at(exc)) from None
                if results is None:
                    results = []
                if not isinstance(results, list | tuple):
                    raise ContractError(f"{hook_name} returned {type(results).__name__} {results!r}, expected a list",
                                        defined_at(impl.function))
                for obj in results:
                    try:
                        name = check(obj)
                    except ContractError as exc:
                        raise ContractError(f"{hook_name}: {exc}", exc.where or defined_at(impl.function)) from None
                    if kind == "command" and name in BUILTIN_COMMANDS:
                        raise ContractError(f"command {name!r} clashes with the built-in `stylefarm {name}`; "
                                            f"rename it", defined_at(obj.callback) or defined_at(impl.function))
                    found.setdefault(kind, []).append((name, obj))
        return found

    def _index(self) -> dict[str, dict[str, Provided]]:
        index: dict[str, dict[str, Provided]] = {kind: {} for kind, _ in HOOKS.values()}
        for info in self.plugins:
            if info.error:
                continue
            try:
                registered = self._registered(info)
            except ContractError as exc:
                self._fail(info, str(exc), exc.where)
                continue
            for kind, entries in registered.items():
                for name, obj in entries:
                    if kind == "step" and not obj.describe():
                        info.warnings.append(f"{defined_at(obj)}: step {name!r} has no docstring or summary, so "
                                             "`stylefarm steps` and the schema describe it with nothing")
                    self._put(index[kind], kind, name, Provided(obj, info))
        return index

    def _put(self, table: dict[str, Provided], kind: str, name: str, provided: Provided) -> None:
        """Index one name; a name two plugins register is disabled (for both), not the whole host."""
        if (kind, name) in self.conflicts:
            self.conflicts[(kind, name)] += f" and by {provided.plugin.distribution!r}"
            return
        other = table.get(name)
        if other is None:
            table[name] = provided
            provided.plugin.provides.append(f"{kind}:{name}")
            return
        builtin = [p for p in (other, provided) if p.plugin.distribution == BUILTIN_DISTRIBUTION]
        if len(builtin) == 1:  # a third-party name never disables stylefarm's own (workflows that used it)
            plugin = (provided if builtin[0] is other else other).plugin
            message = (f"{kind} {name!r} of {plugin.distribution!r} (entry point {plugin.name}) is not used: "
                       f"stylefarm has a built-in {kind} of that name; rename it")
            plugin.warnings.append(message)
            log.warning("%s", message)
            entry = f"{kind}:{name}"
            if entry in plugin.provides:  # the plugin came first (entry points are read by name)
                plugin.provides.remove(entry)
                builtin[0].plugin.provides.append(entry)
            table[name] = builtin[0]
            return
        del table[name]
        self.conflicts[(kind, name)] = (
            f"duplicate {kind} name {name!r}: provided by distribution {other.plugin.distribution!r} "
            f"(entry point {other.plugin.name}) and by {provided.plugin.distribution!r} "
            f"(entry point {provided.plugin.name}); uninstall one of them")
        log.warning("%s disabled: %s", name, self.conflicts[(kind, name)])
        for info in (other.plugin, provided.plugin):
            info.warnings.append(self.conflicts[(kind, name)])

    # --- lookups -------------------------------------------------------------------------

    def step_class(self, name: str):
        """The Step class for `use: name`, or a PluginError naming the closest match."""
        if name in self.steps:
            return self.steps[name].obj
        raise PluginError(self.unknown_step_message(name))

    def unknown_step_message(self, name: str) -> str:
        if ("step", name) in self.conflicts:
            return self.conflicts[("step", name)]
        available = sorted(self.steps)
        close = difflib.get_close_matches(name, available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        broken = [p for p in self.plugins if p.error]
        if broken:
            hint += " (plugins that failed to load: " + ", ".join(
                f"{p.name} from {p.distribution}: {p.error}" for p in broken) + ")"
        return f"unknown step {name!r}; available steps: {', '.join(available) or 'none'}{hint}"

    def commands(self) -> list[Any]:
        """Plugin commands for the top level of the CLI (clashes were refused at discovery)."""
        return [p.obj for p in self._commands.values()]

    def train_commands(self) -> list[Any]:
        """Commands shown as `stylefarm train NAME`."""
        return [p.obj for p in self._train_commands.values()]


_HOST: PluginHost | None = None


def get_host(refresh: bool = False) -> PluginHost:
    """The process-wide host (discovery runs once; Ray/Dask workers build their own)."""
    global _HOST
    if _HOST is None or refresh:
        _HOST = PluginHost()
    return _HOST
