"""Which providers a session uses, in which order, created with which options.

The order is the user's ``providers=[...]`` if given, else ``TESSERA_PROVIDERS``, else each
factory's ``default_priority`` (CPU last). The CPU provider is appended for fallback unless the
session disables fallback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import tessera_registry
from tessera._errors import InvalidArgument, ProviderError
from tessera._provider import API_VERSION, ExecutionProvider, ProviderFactory
from tessera_registry import PluginLoadError, canonical

_lock = threading.Lock()
_cache: dict[tuple, tessera_registry.Discovery] = {}
_extra_plugins: list[object] = []


def register_plugin(plugin: object) -> None:
    """Register a plugin object (a module or class with hook implementations) for this process,
    as if an installed distribution had named it in the ``tessera.providers`` entry points."""
    with _lock:
        if plugin not in _extra_plugins:
            _extra_plugins.append(plugin)
        _cache.clear()


def unregister_plugin(plugin: object) -> None:
    with _lock:
        if plugin in _extra_plugins:
            _extra_plugins.remove(plugin)
        _cache.clear()


def discovery(requested: Sequence[str] = ()) -> tessera_registry.Discovery:
    """Discover plugins once per process (per set of explicitly requested names)."""
    key = (
        tuple(sorted(canonical(r) for r in requested))
        if tessera_registry.autoload_disabled()
        else (),
        os.environ.get("TESSERA_PROVIDERS_BLOCK", ""),
        os.environ.get("TESSERA_DISABLE_PLUGIN_AUTOLOAD", ""),
    )
    with _lock:
        if key not in _cache:
            _cache[key] = tessera_registry.discover(
                API_VERSION, requested=requested, extra_plugins=_extra_plugins
            )
        return _cache[key]


def reset_discovery() -> None:
    """Forget discovered plugins (tests; after installing a provider package at run time)."""
    with _lock:
        _cache.clear()


def public_name(factory: ProviderFactory) -> str:
    """The ORT-style name (``CPUExecutionProvider``) when the factory declares one."""
    for alias in factory.aliases:
        if alias.endswith("ExecutionProvider"):
            return alias
    return factory.name


def available_factories() -> list[ProviderFactory]:
    found = discovery().unique_factories()
    return sorted(found, key=lambda f: (-f.default_priority, f.name))


def get_available_providers() -> list[str]:
    """ORT-style names of installed providers that have a usable device, in default order."""
    names = []
    for factory in available_factories():
        try:
            if factory.devices():
                names.append(public_name(factory))
        except Exception:  # noqa: BLE001 - a probe failure means "not available"
            continue
    return names


def _auto_selected(factory: ProviderFactory) -> bool:
    try:
        return bool(factory.auto_select())
    except Exception:  # noqa: BLE001 - a probe that fails means "not by default"
        return False


def _split(entry: Any) -> tuple[str, dict]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str):
        return entry[0], dict(entry[1] or {})
    raise InvalidArgument(
        f"providers entries must be names or (name, options) tuples, got {entry!r}"
    )


def resolve(
    providers: Sequence[Any] | None,
    provider_options: Sequence[Mapping[str, Any]] | None,
    fallback: bool,
    session_threads: int = 0,
    session_values: Mapping[str, Any] | None = None,
) -> list[tuple[ProviderFactory, ExecutionProvider, dict]]:
    """Create the session's providers, in claim order. ``session_values`` are SessionOptions a
    factory receives when it declares an option of the same name (``enable_cpu_mem_arena``) and
    the user's options for it do not set one."""
    requested: list[tuple[str, dict]] = []
    if providers is None:
        env = [p.strip() for p in os.environ.get("TESSERA_PROVIDERS", "").split(",") if p.strip()]
        requested = [(p, {}) for p in env]
    else:
        if isinstance(providers, str):
            providers = [providers]
        requested = [_split(p) for p in providers]
        if provider_options is not None:
            if len(provider_options) != len(requested):
                raise InvalidArgument(
                    f"provider_options has {len(provider_options)} entries for {len(requested)} providers; "
                    "give one dict per provider"
                )
            requested = [(n, {**o, **dict(po)}) for (n, o), po in zip(requested, provider_options)]
    try:
        found = discovery([n for n, _ in requested])
    except PluginLoadError as exc:
        raise ProviderError(str(exc)) from exc
    chosen: list[tuple[ProviderFactory, dict]] = []
    for name, options in requested:
        factory = found.factories.get(canonical(name))
        if factory is None:
            broken = [b for b in found.broken if canonical(b.entry_point) == canonical(name)]
            if broken:
                raise ProviderError(
                    f"provider {name!r} is installed but broken: {broken[0].reason}"
                )
            known = (
                ", ".join(sorted({public_name(f) for f in found.unique_factories()})) or "(none)"
            )
            raise ProviderError(f"unknown provider {name!r}; installed providers: {known}")
        if any(f is factory for f, _ in chosen):
            continue
        chosen.append((factory, options))
    if not chosen:
        chosen = [
            (f, {})
            for f in sorted(found.unique_factories(), key=lambda f: (-f.default_priority, f.name))
            if canonical(f.name) == "cpu" or _auto_selected(f)
        ]
    if fallback and not any(canonical(f.name) == "cpu" for f, _ in chosen):
        cpu = found.factories.get("cpu")
        if cpu is None:
            raise ProviderError(
                "no CPU provider is installed for fallback; `pip install tessera-cpu`, or disable "
                "fallback with sess_options.add_session_config_entry('session.disable_cpu_ep_fallback', '1')"
            )
        chosen.append((cpu, {}))
    created = []
    explicit = providers is not None
    for factory, options in chosen:
        key = factory.threads_option
        if key and session_threads and key not in options and key in factory.options:
            options = {**options, key: session_threads}
        for name, value in (session_values or {}).items():
            if name in factory.options and name not in options:
                options = {**options, name: value}
        try:
            devices = factory.devices()
        except Exception as exc:
            if explicit:
                raise ProviderError(
                    f"provider {factory.name!r} failed to probe its devices: {exc}"
                ) from exc
            continue
        if not devices:
            reason = factory.unavailable_reason or "no usable device"
            if explicit and canonical(factory.name) != "cpu":
                raise ProviderError(
                    f"provider {public_name(factory)} is installed but unavailable: {reason}"
                )
            continue
        try:
            provider = factory.create(options)
        except InvalidArgument:
            raise
        except Exception as exc:
            raise ProviderError(
                f"provider {public_name(factory)} could not be created: {exc}"
            ) from exc
        provider.name = public_name(factory)
        created.append((factory, provider, options))
    return created
