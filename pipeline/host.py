"""Plugin host: discovers plugins through the `stylefarm` entry-point group with pluggy.

Built-ins (`plugins/...`) register through the same group as third-party packages, so the
host never imports them by name. A plugin that fails to import is recorded (distribution
and cause) and skipped: it only becomes an error when a workflow needs what it provides.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

log = logging.getLogger("stylefarm.host")
GROUP = "stylefarm"


@dataclass
class PluginInfo:
    """What `stylefarm plugins` shows for one entry point."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    provides: list[str] = field(default_factory=list)


@dataclass
class Provided:
    """A registered class (step, source or sink) and where it came from."""

    obj: Any
    plugin: PluginInfo


class PluginHost:
    """Loads entry points once and indexes what each plugin registers."""

    def __init__(self, extra_plugins: list[tuple[Any, str]] | None = None):
        """`extra_plugins`: (plugin object, distribution name) pairs registered besides entry points."""
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._owner: dict[int, PluginInfo] = {}
        self._load_entry_points()
        for obj, dist in extra_plugins or []:
            self.register(obj, PluginInfo(getattr(obj, "__name__", type(obj).__name__), dist, "", ""))
        self.steps = self._collect("stylefarm_register_steps", "step", lambda c: c.name)
        self.sources = self._collect("stylefarm_register_sources", "source", lambda c: c.key)
        self.sinks = self._collect("stylefarm_register_sinks", "sink", lambda c: c.key)
        self.weights = {w.name: w for w in self._collect_list("stylefarm_register_weights")}

    def register(self, obj: Any, info: PluginInfo) -> None:
        self.pm.register(obj, name=f"{info.distribution}:{info.name}")
        self._owner[id(obj)] = info
        self.plugins.append(info)

    def _load_entry_points(self) -> None:
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else ""
            info = PluginInfo(ep.name, dist, version, ep.value)
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                info.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("plugin %s (%s) failed to load: %s", ep.name, dist, info.error)
                self.plugins.append(info)
                continue
            if self.pm.is_registered(obj):
                continue
            self.register(obj, info)

    def _call_each(self, hook_name: str):
        """Call every implementation of a hook separately, yielding (owner, results)."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            info = self._owner.get(id(impl.plugin))
            try:
                results = impl.function() or []
            except Exception as exc:
                if info is not None:
                    info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("plugin %s: %s", info.name if info else impl.plugin_name, exc)
                continue
            yield info, results

    def _collect(self, hook_name: str, what: str, key_of) -> dict[str, Provided]:
        found: dict[str, Provided] = {}
        for info, results in self._call_each(hook_name):
            for obj in results:
                key = key_of(obj)
                if key in found:
                    other = found[key].plugin
                    raise PluginError(
                        f"duplicate {what} name {key!r}: provided by distribution {other.distribution!r} "
                        f"(entry point {other.name}) and by {info.distribution!r} (entry point {info.name}); "
                        f"uninstall one of them"
                    )
                found[key] = Provided(obj, info)
                info.provides.append(f"{what}:{key}")
        return found

    def _collect_list(self, hook_name: str) -> list[Any]:
        return [obj for _, results in self._call_each(hook_name) for obj in results]

    def step_class(self, name: str):
        """The Step class for `use: name`, or a PluginError naming the closest match."""
        if name in self.steps:
            return self.steps[name].obj
        raise PluginError(self.unknown_step_message(name))

    def unknown_step_message(self, name: str) -> str:
        available = sorted(self.steps)
        close = difflib.get_close_matches(name, available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        broken = [p for p in self.plugins if p.error]
        if broken:
            hint += " (plugins that failed to load: " + ", ".join(
                f"{p.name} from {p.distribution}: {p.error}" for p in broken) + ")"
        return f"unknown step {name!r}; available steps: {', '.join(available) or 'none'}{hint}"

    def commands(self) -> list[Any]:
        return self._collect_list("stylefarm_register_commands")


_HOST: PluginHost | None = None


def get_host(refresh: bool = False) -> PluginHost:
    """The process-wide host (discovery runs once; Ray/Dask workers build their own)."""
    global _HOST
    if _HOST is None or refresh:
        _HOST = PluginHost()
    return _HOST
