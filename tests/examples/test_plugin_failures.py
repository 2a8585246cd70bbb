"""A third party's broken plugin never stops Tessera: it is reported, and CPU sessions still run.

Each case is a real (temporary) distribution with a ``tessera.providers`` entry point on sys.path:
one whose import fails, one whose ``devices()`` raises, one built for another provider-API major.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import tessera_registry
from tessera.provider import API_VERSION

FACTORY = """
from tessera.provider import ProviderFactory
from tessera_registry import hookimpl

class Factory(ProviderFactory):
    name = "{name}"
    aliases = ("{alias}",)
    api_version = "{api}"
    default_priority = 500
    distribution = "{dist}"

    def devices(self):
        {devices}

@hookimpl
def tessera_provider_factories():
    return [Factory()]
"""

BROKEN = {
    # name: (distribution, module source)
    "importfails": (
        "tessera-importfails",
        "import vendor_sdk_that_is_not_installed\n",
    ),
    "probefails": (
        "tessera-probefails",
        FACTORY.format(
            name="probefails",
            alias="ProbeFailsExecutionProvider",
            api=API_VERSION,
            dist="tessera-probefails",
            devices="raise RuntimeError('driver handshake failed')",
        ),
    ),
    "oldapi": (
        "tessera-oldapi",
        FACTORY.format(
            name="oldapi",
            alias="OldApiExecutionProvider",
            api="0.9",
            dist="tessera-oldapi",
            devices="return ['oldapi:0']",
        ),
    ),
}

SESSION = """
import warnings, numpy as np
from onnx import helper
import tessera
g = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "g",
    [helper.make_tensor_value_info("x", 1, [2])], [helper.make_tensor_value_info("y", 1, [2])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    s = tessera.InferenceSession(m)
print(s.run(None, {"x": np.ones(2, np.float32)})[0].tolist(), s.get_providers()[-1])
print("WARNINGS:", " | ".join(str(w.message) for w in caught))
"""


def _write_dist(root, name: str) -> None:
    dist, source = BROKEN[name]
    module = f"{name}_plugin"
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    # importlib.metadata reads the name up to the first "-" of the folder: spell it with "_".
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tessera.providers]\n{name} = {module}\n")


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken_site")
    for name in BROKEN:
        _write_dist(root, name)
    return root


def _env(site) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_PROVIDERS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(site), env.get("PYTHONPATH", "")] if p)
    return env


@pytest.fixture(scope="module")
def providers_all(broken_site) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "providers", "--all"],
        env=_env(broken_site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_import_error_is_listed_as_broken_with_its_traceback(providers_all):
    broken = providers_all.split("broken:", 1)[1]
    assert "importfails (importfails_plugin, from tessera-importfails 0.1)" in broken
    assert "No module named 'vendor_sdk_that_is_not_installed'" in broken
    assert "Traceback" in broken


def test_raising_devices_is_shown_as_a_failed_probe(providers_all):
    line = next(ln for ln in providers_all.splitlines() if "ProbeFailsExecutionProvider" in ln)
    assert "probe failed: RuntimeError: driver handshake failed" in line


def test_wrong_api_version_is_listed_as_broken_with_the_versions(providers_all):
    broken = providers_all.split("broken:", 1)[1]
    assert f"'oldapi' targets provider API 0.9, this Tessera implements {API_VERSION}" in broken


def test_cpu_is_still_listed_next_to_broken_plugins(providers_all):
    installed = providers_all.split("broken:", 1)[0]
    assert "CPUExecutionProvider" in installed and "available on cpu" in installed


def test_broken_plugins_never_stop_a_default_cpu_session(broken_site):
    run = subprocess.run(
        [sys.executable, "-c", SESSION],
        env=_env(broken_site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result, warnings_line = run.stdout.strip().splitlines()
    assert result == "[-1.0, -1.0] CPUExecutionProvider"
    assert "skipping provider plugin 'importfails'" in warnings_line
    assert "skipping provider plugin 'oldapi'" in warnings_line


def test_each_failure_is_recorded_by_discovery(broken_site, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_site))
    with pytest.warns(RuntimeWarning):
        found = tessera_registry.discover(API_VERSION)
    reasons = {b.entry_point: b.reason for b in found.broken}
    assert set(reasons) >= {"importfails", "oldapi"}
    assert "ModuleNotFoundError" in reasons["importfails"]
    # A raising probe is not a discovery failure: the factory is found and fails only when used.
    assert "probefails" in found.factories and "cpu" in found.factories


def test_naming_a_broken_plugin_fails_loudly(broken_site):
    code = (
        "import tessera\n"
        "from onnx import helper\n"
        "g = helper.make_graph([helper.make_node('Neg', ['x'], ['y'])], 'g',"
        " [helper.make_tensor_value_info('x', 1, [2])], [helper.make_tensor_value_info('y', 1, [2])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]).SerializeToString()\n"
        "for name in ('probefails', 'importfails', 'oldapi'):\n"
        "    try:\n"
        "        tessera.InferenceSession(m, providers=[name, 'cpu'])\n"
        "    except tessera.ProviderError as exc:\n"
        "        print(name, '->', str(exc).splitlines()[0])\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env=_env(broken_site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = dict(ln.split(" -> ", 1) for ln in run.stdout.strip().splitlines())
    assert "failed to probe its devices: driver handshake failed" in lines["probefails"]
    assert "vendor_sdk_that_is_not_installed" in lines["importfails"]
    assert "targets provider API 0.9" in lines["oldapi"]
