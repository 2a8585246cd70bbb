"""The plugin contract: the hooks a Tessera provider plugin implements.

A plugin is a module named by an entry point in the ``tessera.providers`` group::

    [project.entry-points."tessera.providers"]
    acme = "tessera_acme.plugin"

Tessera imports that module when it discovers plugins, registers it with pluggy, and calls the
hooks below. Importing the module must stay cheap: it must not import a device library (CuPy,
pyopencl, OpenVINO, a vendor SDK). Do that lazily, in ``ProviderFactory.devices()`` and
``ProviderFactory.create()``.

Each factory declares the provider API version it targets (``api_version``); a factory whose major
version differs from the core's marks its plugin broken (see docs/api-versioning.md). The
step-by-step guide is docs/plugin-authoring.md.

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
    """Return the provider factories this plugin offers. **Required** for a provider plugin.

    :returns: a list of ``tessera.provider.ProviderFactory`` instances, usually one. Tessera
        reads these attributes of each factory without creating a provider:

        - ``name``: the short, lower-case name users type (``"acme"``). Required: a factory
          without one marks the plugin broken.
        - ``aliases``: other accepted names, with the ORT-style one first
          (``("AcmeExecutionProvider",)``); it is the name sessions report.
        - ``api_version``: the provider API the plugin was written against (``"1.0"``). Its
          major number must equal the core's ``tessera.provider.API_VERSION``; otherwise the
          plugin is marked broken with both versions in the reason (docs/api-versioning.md).
        - ``default_priority``: the claim order when the user names no providers; higher is
          asked first, and CPU is ``-1000`` so that it comes last.
        - ``vendor``, ``version``, ``distribution`` (the pip name, so ``tessera providers --all``
          knows the package is installed), ``options`` (``OptionSpec`` by name).
        - ``devices()``: called lazily, when a session or ``tessera providers`` needs it.

    **Not firstresult**: every plugin's factories are collected. Tessera calls each plugin's
    implementation separately, once per discovery (cached per process). What a plugin should do:
    construct and return its factories, and nothing more; no device probing and no imports of the
    device SDK here. An exception raised here marks this plugin broken (the traceback is kept for
    ``tessera providers --all``) and leaves the other plugins working; a plugin the user named in
    ``providers=`` or ``TESSERA_PROVIDERS`` that fails raises ``ProviderError`` instead. When two
    plugins return factories with the same name or alias, the first one discovered wins.
    """


@hookspec
def tessera_catalog_entries() -> list:
    """Return catalog entries for provider packages that are installable but maybe not installed.
    **Optional.**

    :returns: a list of dicts, each with the string keys ``name`` (the provider's short name),
        ``distribution`` (its pip name), ``hardware`` (what it needs, in words) and ``install``
        (the exact command, e.g. ``"pip install tessera-acme-npu"``), and optionally ``uses``: a
        tuple of hardware tags that ``tessera doctor`` probes (``"cpu"``, ``"nvidia"``,
        ``"opencl"``, ``"openvino"``). Entries missing a required key are ignored.

    **Not firstresult**: entries from every plugin are merged with Tessera's built-in catalog,
    one entry per ``name`` (a plugin's entry replaces a built-in one of the same name).
    ``tessera providers --all`` lists the entries whose distribution is not installed under
    "available to install", and ``tessera doctor`` recommends those whose hardware it finds.
    What a plugin should do: return static data. The catalog is advisory, so an exception here
    is swallowed and the plugin's providers still load.
    """
