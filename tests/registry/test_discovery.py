"""Plugin discovery and the failure policy, with real (temporary) distributions on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import tessera_registry

API = "1.0"


def _make_dist(root, dist, ep_name, module, source):
    """A minimal installed distribution: a module plus a .dist-info with one entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tessera.providers]\n{ep_name} = {module}\n")


GOOD = """
from tessera_registry import hookimpl

class Factory:
    name = "acme"
    aliases = ("AcmeExecutionProvider",)
    api_version = "{api}"
    default_priority = 1

@hookimpl
def tessera_provider_factories():
    return [Factory()]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_working_plugin_is_found_by_name_and_alias(site):
    _make_dist(site, "acme-provider", "acme", "acme_plugin", GOOD.format(api=API))
    found = tessera_registry.discover(API)
    assert found.factories["acme"].name == "acme"
    assert (
        found.factories[tessera_registry.canonical("AcmeExecutionProvider")]
        is found.factories["acme"]
    )
    assert "acme" in found.sources and "acme-provider 0.1" in found.sources["acme"]


def test_plugin_whose_import_raises_is_skipped_and_recorded(site):
    _make_dist(
        site,
        "broken-provider",
        "broken",
        "broken_plugin",
        "raise ImportError('vendor SDK missing')\n",
    )
    with pytest.warns(RuntimeWarning, match="skipping provider plugin 'broken'"):
        found = tessera_registry.discover(API)
    (record,) = [b for b in found.broken if b.entry_point == "broken"]
    assert "vendor SDK missing" in record.reason
    assert "broken-provider 0.1" in record.distribution
    assert "ImportError" in record.traceback
    assert "cpu" in found.factories


def test_plugin_requested_by_name_that_fails_raises_chained(site):
    _make_dist(
        site,
        "broken-provider",
        "broken",
        "broken_plugin",
        "raise ImportError('vendor SDK missing')\n",
    )
    with pytest.raises(tessera_registry.PluginLoadError, match="was requested") as err:
        tessera_registry.discover(API, requested=["BrokenExecutionProvider"])
    assert isinstance(err.value.__cause__, ImportError)


def test_api_major_mismatch_marks_the_plugin_broken(site):
    _make_dist(site, "acme-provider", "acme", "acme_v2_plugin", GOOD.format(api="2.0"))
    with pytest.warns(RuntimeWarning):
        found = tessera_registry.discover(API)
    assert "acme" not in found.factories
    assert any("targets provider API 2.0" in b.reason for b in found.broken)


def test_block_list_keeps_a_plugin_from_loading(site, monkeypatch):
    _make_dist(
        site, "broken-provider", "broken", "broken_plugin", "raise ImportError('never imported')\n"
    )
    monkeypatch.setenv("TESSERA_PROVIDERS_BLOCK", "broken")
    found = tessera_registry.discover(API)
    assert found.blocked == ["broken"]
    assert not found.broken


def test_autoload_disabled_loads_only_requested_and_cpu(site, monkeypatch):
    _make_dist(site, "acme-provider", "acme", "acme_auto_plugin", GOOD.format(api=API))
    monkeypatch.setenv("TESSERA_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "acme" not in tessera_registry.discover(API).factories
    assert "cpu" in tessera_registry.discover(API).factories
    assert "acme" in tessera_registry.discover(API, requested=["acme"]).factories


def test_duplicate_entry_points_are_deduplicated(site, tmp_path_factory):
    _make_dist(site, "acme-provider", "acme", "acme_dup_plugin", GOOD.format(api=API))
    other = tmp_path_factory.mktemp("second_site")
    info = other / "acme-provider-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-provider\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tessera.providers]\nacme = acme_dup_plugin\n")
    sys.path.insert(0, str(other))
    try:
        found = tessera_registry.discover(API)
    finally:
        sys.path.remove(str(other))
    assert not found.broken
    assert len([f for f in found.unique_factories() if f.name == "acme"]) == 1


def test_broken_plugin_does_not_stop_import_or_cpu_session_and_cli_shows_it(tmp_path):
    _make_dist(
        tmp_path,
        "broken-provider",
        "broken",
        "broken_plugin",
        "raise RuntimeError('driver exploded')\n",
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    program = textwrap.dedent(
        """
        import warnings, numpy as np, onnx
        from onnx import helper
        import tessera
        g = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "g",
            [helper.make_tensor_value_info("x", 1, [2])], [helper.make_tensor_value_info("y", 1, [2])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            s = tessera.InferenceSession(m.SerializeToString())
        print(s.run(None, {"x": np.ones(2, np.float32)})[0].tolist())
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "[-1.0, -1.0]" in run.stdout
    cli = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "providers", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "broken:" in cli.stdout and "driver exploded" in cli.stdout
    assert "CPUExecutionProvider" in cli.stdout


def test_registry_package_does_not_import_the_core():
    code = "import sys, tessera_registry; tessera_registry.discover('1.0'); print('tessera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # Discovery imports plugin modules (the CPU plugin imports the core); the registry itself must not.
    code2 = "import sys, tessera_registry; print('tessera' in sys.modules)"
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out2.stdout.strip() == "False"


def test_loading_the_cpu_entry_point_does_not_import_kernels():
    code = "import sys, tessera_registry; tessera_registry.discover('1.0'); print('tessera_cpu.kernels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_factory_without_api_version_is_marked_broken(site):
    source = GOOD.format(api=API).replace('    api_version = "1.0"\n', "")
    _make_dist(site, "acme-provider", "acme", "acme_noversion_plugin", source)
    with pytest.warns(RuntimeWarning):
        found = tessera_registry.discover(API)
    assert "acme" not in found.factories
    assert any("does not declare api_version" in b.reason for b in found.broken)
