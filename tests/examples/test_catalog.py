"""The provider catalog, and `tessera providers --all` listing what is available to install."""

from __future__ import annotations

import importlib.metadata

from tessera.cli import main
from tessera_registry import hookimpl
from tessera_registry._catalog import CATALOG, entries_using, merged_catalog


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_every_catalog_entry_says_what_hardware_and_how_to_install():
    names = [e["name"] for e in CATALOG]
    assert len(names) == len(set(names))
    for entry in CATALOG:
        assert entry["distribution"].startswith("tessera-")
        assert entry["install"].startswith("pip install ")
        assert entry["hardware"] and entry["uses"]


def test_entries_are_found_by_the_hardware_they_use():
    assert [e["name"] for e in entries_using("nvidia")] == ["cuda"]
    assert [e["name"] for e in entries_using("openvino")] == ["openvino"]
    assert entries_using("tpu") == []


def test_plugin_entries_are_merged_and_malformed_ones_dropped():
    merged = merged_catalog(
        [
            {
                "name": "acme",
                "distribution": "tessera-acme",
                "hardware": "Acme NPU",
                "install": "pip install tessera-acme",
            },
            {"name": "half", "distribution": "tessera-half"},  # no hardware/install: dropped
            "not a dict",
        ]
    )
    names = [e["name"] for e in merged]
    assert names[-1] == "acme" and "half" not in names
    assert merged[-1]["uses"] == ()


class AcmeCatalogPlugin:
    """A plugin that advertises an installable package it knows about."""

    @staticmethod
    @hookimpl
    def tessera_catalog_entries():
        return [
            {
                "name": "acme",
                "distribution": "tessera-acme-not-installed",
                "hardware": "Acme NPU",
                "install": "pip install tessera-acme",
            }
        ]


def test_providers_all_lists_installed_and_available_packages(plugins, capsys):
    plugins(AcmeCatalogPlugin)
    assert main(["providers", "--all"]) == 0
    out = capsys.readouterr().out
    installed, _, available = out.partition("available to install:")
    assert "CPUExecutionProvider" in installed and "from cpu = tessera_cpu.plugin" in installed
    assert "acme       Acme NPU" in available and "pip install tessera-acme" in available
    for entry in CATALOG:
        listed = f"  {entry['name']:10} {entry['hardware']}" in available
        assert listed != _installed(entry["distribution"]), entry["name"]
