"""Tessera's plugin registry: the hook contract and entry-point discovery of provider plugins.

This package never imports the Tessera core: it treats provider factories as opaque objects.
"""

from __future__ import annotations

from tessera_registry._catalog import CATALOG
from tessera_registry._discovery import (
    BrokenPlugin,
    Discovery,
    PluginLoadError,
    autoload_disabled,
    canonical,
    discover,
)
from tessera_registry.hookspecs import ENTRY_POINT_GROUP, hookimpl, hookspec

__all__ = [
    "CATALOG",
    "ENTRY_POINT_GROUP",
    "BrokenPlugin",
    "Discovery",
    "PluginLoadError",
    "autoload_disabled",
    "canonical",
    "discover",
    "hookimpl",
    "hookspec",
]
