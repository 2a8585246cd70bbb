"""Discovery of the CUDA provider on any machine: cheap import, precise reasons, options."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import tessera
from tessera_cuda._factory import CUDAProviderFactory, probe_devices


def test_loading_the_entry_point_never_imports_cupy():
    code = (
        "import sys, importlib.metadata as m\n"
        "ep = [e for e in m.entry_points(group='tessera.providers') if e.name == 'cuda'][0]\n"
        "plugin = ep.load()\n"
        "plugin.tessera_provider_factories()\n"
        "print('cupy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _fake_cupy(driver=12040, count=None, count_error=None, props=None):
    def device_count():
        if count_error:
            raise RuntimeError(count_error)
        return count

    runtime = types.SimpleNamespace(
        driverGetVersion=lambda: driver,
        getDeviceCount=device_count,
        getDeviceProperties=lambda i: props[i],
    )
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def _importer(module):
    def load(name):
        if isinstance(module, BaseException):
            raise module
        return module

    return load


@pytest.mark.parametrize(
    ("fake", "expected"),
    [
        (ImportError("No module named 'cupy'"), "CuPy is not installed"),
        (OSError("libnvrtc.so.12: cannot open"), "CuPy failed to import (OSError"),
        (_fake_cupy(driver=0), "CUDA driver missing"),
        (
            _fake_cupy(count_error="cudaErrorNoDevice: no CUDA-capable device is detected"),
            "no CUDA device (cudaErrorNoDevice",
        ),
        (
            _fake_cupy(driver=11080, count_error="cudaErrorInsufficientDriver: too old"),
            "the CUDA driver (11.8) is older than CuPy's CUDA runtime",
        ),
        (_fake_cupy(count_error="cudaErrorUnknown: boom"), "CUDA runtime error while counting"),
        (_fake_cupy(count=0), "reports 0 devices"),
    ],
)
def test_probe_gives_the_precise_reason_for_no_device(fake, expected):
    found, reason = probe_devices(_importer(fake))
    assert found == []
    assert expected in reason


def test_probe_lists_devices_with_name_memory_and_arch():
    props = [{"name": b"NVIDIA H200", "totalGlobalMem": 141 << 30, "major": 9, "minor": 0}]
    found, reason = probe_devices(_importer(_fake_cupy(count=1, props=props)))
    assert found == ["cuda:0 (NVIDIA H200, 141 GiB, sm_90)"] and reason == ""


def test_factory_declares_the_provider_contract():
    f = CUDAProviderFactory()
    assert f.name == "cuda" and f.aliases[0] == "CUDAExecutionProvider"
    assert f.api_version.split(".")[0] == tessera.provider.API_VERSION.split(".")[0]
    assert f.default_priority > -1000 and f.distribution == "tessera-cuda"
    defaults = f.validate_options({})
    assert defaults == {"device_id": 0, "allow_tf32": False, "cuda_graph": False, "memory_limit": 0}


def test_boolean_options_arriving_as_strings_are_parsed_not_cast():
    assert CUDAProviderFactory().validate_options({"allow_tf32": "false"})["allow_tf32"] is False
    assert CUDAProviderFactory().validate_options({"allow_tf32": "1"})["allow_tf32"] is True


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"devcie_id": 0}, "device_id"),
        ({"device_id": -1}, "device_id"),
        ({"memory_limit": -5}, "memory_limit"),
        ({"allow_tf32": "maybe"}, "allow_tf32"),
        ({"cuda_graph": True}, "cuda_graph"),
    ],
)
def test_bad_options_raise_naming_the_option(options, named):
    with pytest.raises(tessera.InvalidArgument, match=named):
        CUDAProviderFactory().validate_options(options)


def _no_device_here() -> str:
    f = CUDAProviderFactory()
    return "" if f.devices() else f.unavailable_reason


@pytest.mark.skipif(not _no_device_here(), reason="a CUDA device is present")
def test_without_a_device_the_provider_is_listed_unavailable_with_its_reason():
    reason = _no_device_here()
    assert CUDAProviderFactory().auto_select() is False
    out = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "providers", "--all"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:  # the CLI module may not be runnable with -m; use the console script
        out = subprocess.run(["tessera", "providers", "--all"], capture_output=True, text=True)
    line = next(ln for ln in out.stdout.splitlines() if "CUDAExecutionProvider" in ln)
    assert "unavailable" in line and reason[:40] in line
    assert "CUDAExecutionProvider" not in tessera.get_available_providers()


@pytest.mark.skipif(not _no_device_here(), reason="a CUDA device is present")
def test_naming_cuda_without_a_device_fails_with_the_reason():
    from _cuda_support import model, vi
    from onnx import helper

    data = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2])])
    with pytest.raises(tessera.ProviderError, match="unavailable"):
        tessera.InferenceSession(data, providers=["CUDAExecutionProvider"])


def test_host_module_testing_aid_is_never_discovered():
    from tessera._providers import discovery, reset_discovery

    reset_discovery()
    names = {f.name for f in discovery().unique_factories()}
    assert "cuda" in names and "cuda_host_test" not in names


def test_doctor_names_the_cuda_package():
    out = subprocess.run(["tessera", "doctor"], capture_output=True, text=True)
    assert "tessera-cuda" in out.stdout or "cuda" in out.stdout.lower()
