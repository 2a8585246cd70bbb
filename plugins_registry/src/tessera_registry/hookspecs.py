"""The plugin contract: the hooks a Tessera provider plugin implements.

A plugin is a module named by an entry point in the ``tessera.providers`` group::

    [project.entry-points."tessera.providers"]
    acme = "tessera_acme.plugin"

Tessera imports that module when it discovers plugins, registers it with pluggy, and calls the
hooks below. Importing the module must stay cheap: it must not import a device library (CuPy,
pyopencl, OpenVINO, a vendor SDK). Do that lazily, in ``ProviderFactory.devices()`` and
``ProviderFactory.create()``.

Implement a hook with the ``hookimpl`` marker::

    from tessera_registry import hookimpl

    @hookimpl
    def tessera_provider_factories():
        return [AcmeFactory()]
"""

from __future__ import annotations

import pluggy

PROJECT = "tessera"
ENTRY_POINT_GROUP = "tessera.providers"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tessera_provider_factories() -> list:
    """Return the provider factories this plugin offers.

    :returns: a list of ``tessera.provider.ProviderFactory`` instances (usually one). Each
        declares ``name``, ``aliases`` (ORT-style names such as ``"CPUExecutionProvider"``),
        ``vendor``, ``version``, ``api_version`` (the provider API it targets, ``"1.0"``),
        ``default_priority`` (higher is asked for claims first), ``options`` (the option schema)
        and ``devices()``.

    Not firstresult: every plugin's factories are collected. The hook is called once per
    discovery, per plugin; an exception here marks that plugin broken (with its traceback) and
    leaves the others working. Do no device probing here; ``devices()`` does that lazily.
    """


@hookspec
def tessera_catalog_entries() -> list:
    """Return catalog entries for provider packages this plugin knows how to install.

    :returns: a list of dicts with keys ``name``, ``distribution``, ``hardware`` and
        ``install`` (a pip command). ``tessera providers --all`` lists the entries whose
        distribution is not installed under "available to install".

    Optional; not firstresult: entries from all plugins and the built-in catalog are merged,
    de-duplicated by ``name``.
    """
