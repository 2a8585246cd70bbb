"""Entry-point discovery with the failure policy: auto-discovered plugins that break are skipped
and recorded; plugins the user asked for by name raise."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
import traceback
import warnings
from collections.abc import Iterable

import pluggy

from tessera_registry import hookspecs


class PluginLoadError(RuntimeError):
    """A plugin the user asked for by name could not be imported, registered or probed."""


@dataclasses.dataclass
class BrokenPlugin:
    """A plugin that was skipped, with the reason and the kept traceback."""

    entry_point: str
    value: str
    distribution: str
    reason: str
    traceback: str = ""


@dataclasses.dataclass
class Discovery:
    """What one discovery found: factories by name (aliases included), broken and blocked plugins."""

    factories: dict[str, object]
    broken: list[BrokenPlugin]
    blocked: list[str]
    sources: dict[str, str]  # factory name -> "entry_point = value (distribution)"
    catalog: list[dict]

    def unique_factories(self) -> list[object]:
        seen: dict[int, object] = {}
        for f in self.factories.values():
            seen.setdefault(id(f), f)
        return list(seen.values())


def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


def autoload_disabled() -> bool:
    return os.environ.get("TESSERA_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0", "false")


def canonical(name: str) -> str:
    """Lower-case name without ORT's ``ExecutionProvider`` suffix: ``CUDAExecutionProvider`` -> ``cuda``."""
    low = name.strip().lower()
    return low[: -len("executionprovider")] if low.endswith("executionprovider") else low


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
    unique: dict[tuple[str, str], importlib.metadata.EntryPoint] = {}
    for ep in eps:
        # The same distribution found twice on sys.path (editable + site install) yields
        # duplicate entry points; keep the first of each (name, value).
        unique.setdefault((ep.name, ep.value), ep)
    return list(unique.values())


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _api_major(version: str) -> str:
    return str(version).split(".", 1)[0]


def discover(
    api_version: str,
    requested: Iterable[str] = (),
    extra_plugins: Iterable[object] = (),
) -> Discovery:
    """Load provider plugins from entry points and collect their factories.

    ``requested`` are provider names the user asked for explicitly: a failure among those
    raises :class:`PluginLoadError` chained to the cause, while other plugins that fail are
    skipped with a warning and recorded in ``Discovery.broken``. ``extra_plugins`` are plugin
    objects registered directly (tests, embedding applications).

    Honours ``TESSERA_DISABLE_PLUGIN_AUTOLOAD=1`` (only requested entry points, plus ``cpu``,
    are loaded) and ``TESSERA_PROVIDERS_BLOCK=name,...`` (never loaded).
    """
    wanted = {canonical(n) for n in requested}
    blocklist = {canonical(n) for n in _env_list("TESSERA_PROVIDERS_BLOCK")}
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    broken: list[BrokenPlugin] = []
    blocked: list[str] = []
    origin: dict[object, tuple[str, str, str]] = {}

    def fail(ep_name: str, value: str, dist: str, reason: str, exc: BaseException) -> None:
        record = BrokenPlugin(
            ep_name, value, dist, reason, "".join(traceback.format_exception(exc))
        )
        if canonical(ep_name) in wanted:
            raise PluginLoadError(
                f"provider plugin {ep_name!r} ({value}, from {dist}) was requested but {reason}"
            ) from exc
        broken.append(record)
        warnings.warn(
            f"tessera: skipping provider plugin {ep_name!r} ({value}, from {dist}): {reason}. "
            "`tessera providers` shows the traceback.",
            RuntimeWarning,
            stacklevel=3,
        )

    for ep in _entry_points():
        name = canonical(ep.name)
        if name in blocklist:
            blocked.append(ep.name)
            continue
        if autoload_disabled() and name not in wanted and name != "cpu":
            continue
        dist = _dist_name(ep)
        try:
            module = ep.load()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            fail(ep.name, ep.value, dist, f"its import raised {type(exc).__name__}: {exc}", exc)
            continue
        try:
            if pm.is_registered(module):
                continue
            pm.register(module, name=f"{ep.name}:{ep.value}")
        except Exception as exc:  # noqa: BLE001 - isolate a failing plugin or case
            fail(ep.name, ep.value, dist, f"registering it failed: {exc}", exc)
            continue
        origin[module] = (ep.name, ep.value, dist)

    for plugin in extra_plugins:
        if not pm.is_registered(plugin):
            pm.register(plugin)
            origin[plugin] = (getattr(plugin, "__name__", repr(plugin)), "registered directly", "")

    factories: dict[str, object] = {}
    sources: dict[str, str] = {}
    catalog: list[dict] = []
    for impl in pm.hook.tessera_provider_factories.get_hookimpls():
        ep_name, value, dist = origin.get(impl.plugin, (impl.plugin_name, "", ""))
        try:
            produced = list(impl.function() or [])
        except Exception as exc:  # noqa: BLE001 - isolate a failing plugin or case
            fail(
                ep_name,
                value,
                dist,
                f"tessera_provider_factories() raised {type(exc).__name__}: {exc}",
                exc,
            )
            continue
        for factory in produced:
            fname = getattr(factory, "name", "")
            target = str(getattr(factory, "api_version", ""))
            if not fname:
                fail(
                    ep_name,
                    value,
                    dist,
                    "it returned a factory without a name",
                    ValueError(repr(factory)),
                )
                continue
            if not target:
                fail(
                    ep_name,
                    value,
                    dist,
                    f"provider {fname!r} does not declare api_version; set it to the provider "
                    f"API it was written against (this Tessera implements {api_version})",
                    ValueError("missing api_version"),
                )
                continue
            if _api_major(target) != _api_major(api_version):
                fail(
                    ep_name,
                    value,
                    dist,
                    f"provider {fname!r} targets provider API {target or '(none)'}, "
                    f"this Tessera implements {api_version}; install a matching version",
                    ValueError(f"API version mismatch: {target} vs {api_version}"),
                )
                continue
            if canonical(fname) in blocklist:
                blocked.append(fname)
                continue
            for alias in (fname, *getattr(factory, "aliases", ())):
                key = canonical(alias)
                if key in factories and factories[key] is not factory:
                    continue  # first registration wins; duplicates across distributions are dropped
                factories[key] = factory
            sources[fname] = f"{ep_name} = {value} ({dist})".strip()
    for impl in pm.hook.tessera_catalog_entries.get_hookimpls():
        try:
            catalog.extend(impl.function() or [])
        except Exception:  # noqa: BLE001 - the catalog is advisory
            continue
    return Discovery(factories, broken, blocked, sources, catalog)


def python_info() -> str:
    return f"Python {sys.version.split()[0]}"
