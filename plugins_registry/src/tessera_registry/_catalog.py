"""Known provider packages, so `tessera providers --all` and `tessera doctor` can say what to install.

Each entry names a provider, its distribution, the hardware it needs (in words), the pip command that
installs it, and ``uses``: the hardware tags that ``tessera doctor`` probes for (``cpu``,
``nvidia``, ``opencl``, ``openvino``). A plugin can add entries with the
``tessera_catalog_entries`` hook; they take the same keys, and ``uses`` is optional.
"""

from __future__ import annotations

from collections.abc import Iterable

CATALOG: list[dict] = [
    {
        "name": "cpu",
        "distribution": "tessera-cpu",
        "hardware": "any CPU (NumPy)",
        "install": "pip install tessera-cpu",
        "uses": ("cpu",),
    },
    {
        "name": "cuda",
        "distribution": "tessera-cuda",
        "hardware": "NVIDIA GPU with CUDA 12/13 (CuPy)",
        "install": "pip install 'tessera[cuda]'",
        "uses": ("nvidia",),
    },
    {
        "name": "opencl",
        "distribution": "tessera-opencl",
        "hardware": "any OpenCL 1.2+ device (pyopencl)",
        "install": "pip install 'tessera[opencl]'",
        "uses": ("opencl",),
    },
    {
        "name": "openvino",
        "distribution": "tessera-openvino",
        "hardware": "Intel CPU/GPU/NPU (OpenVINO)",
        "install": "pip install 'tessera[openvino]'",
        "uses": ("openvino",),
    },
]

REQUIRED_KEYS = ("name", "distribution", "hardware", "install")


def merged_catalog(extra: Iterable[dict] = ()) -> list[dict]:
    """The built-in catalog plus plugin-supplied entries, one per name (later entries win).

    Entries missing a required key are dropped: the catalog is advisory and must never fail.
    """
    entries: dict[str, dict] = {}
    for entry in [*CATALOG, *extra]:
        if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in REQUIRED_KEYS):
            entries[entry["name"]] = {"uses": (), **entry}
    return list(entries.values())


def entries_using(hardware: str, catalog: Iterable[dict] | None = None) -> list[dict]:
    """Catalog entries whose provider would use the hardware tag ``hardware``."""
    source = CATALOG if catalog is None else catalog
    return [e for e in source if hardware in tuple(e.get("uses", ()))]
