"""`tessera doctor`: every probe copes with absent hardware, and findings map to catalog packages.

This machine has no GPU, so the present-hardware paths are driven by fake probes and fake tools.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import types

import pytest

from tessera._doctor import (
    PROBES,
    Finding,
    diagnose,
    probe_nvidia,
    probe_opencl,
    probe_openvino,
    render,
)


def _no_module(name):
    raise ModuleNotFoundError(f"No module named {name!r}")


def _completed(stdout="", returncode=0, stderr=""):
    return types.SimpleNamespace(stdout=stdout, stderr=stderr, returncode=returncode)


# -- NVIDIA -----------------------------------------------------------------------------------------
def test_nvidia_absent_says_what_was_looked_for(tmp_path):
    finding = probe_nvidia(which=lambda _: None, proc=tmp_path / "nvidia")
    assert not finding.found and not finding.devices
    assert "nvidia-smi is not on PATH" in finding.summary
    assert "nvidia/gpus does not exist" in finding.summary


def test_nvidia_smi_lists_each_gpu_and_the_driver(tmp_path):
    def run(cmd, **kwargs):
        assert "--query-gpu=name,driver_version" in cmd
        return _completed("NVIDIA H200, 570.86\nNVIDIA H200, 570.86\n")

    finding = probe_nvidia(which=lambda _: "/usr/bin/nvidia-smi", proc=tmp_path, run=run)
    assert finding.found
    assert finding.summary == "2 NVIDIA GPU(s), driver 570.86"
    assert finding.devices == ["cuda:0 NVIDIA H200", "cuda:1 NVIDIA H200"]


def test_nvidia_driver_without_tools_is_found_in_proc(tmp_path):
    (tmp_path / "gpus" / "0000:17:00.0").mkdir(parents=True)
    finding = probe_nvidia(which=lambda _: None, proc=tmp_path)
    assert finding.found and finding.devices == ["cuda:0 (PCI 0000:17:00.0)"]


def test_failing_nvidia_smi_is_reported_not_raised(tmp_path):
    def run(cmd, **kwargs):
        return _completed(returncode=9, stdout="NVIDIA-SMI has failed: no driver")

    finding = probe_nvidia(which=lambda _: "/usr/bin/nvidia-smi", proc=tmp_path / "x", run=run)
    assert not finding.found and "NVIDIA-SMI has failed: no driver" in finding.summary

    def hangs(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, 20)

    finding = probe_nvidia(which=lambda _: "/usr/bin/nvidia-smi", proc=tmp_path / "x", run=hangs)
    assert not finding.found and "nvidia-smi failed (TimeoutExpired" in finding.summary


# -- OpenCL -----------------------------------------------------------------------------------------
def test_opencl_without_pyopencl_or_drivers_is_absent(tmp_path):
    finding = probe_opencl(importer=_no_module, icd_dir=tmp_path / "vendors")
    assert not finding.found
    assert "pyopencl is not importable (ModuleNotFoundError" in finding.summary


def test_opencl_drivers_are_seen_from_icd_files_without_pyopencl(tmp_path):
    (tmp_path / "nvidia.icd").write_text("libnvidia-opencl.so.1")
    finding = probe_opencl(importer=_no_module, icd_dir=tmp_path)
    assert finding.found and "nvidia.icd" in finding.summary


def _fake_pyopencl(platforms):
    def platform(name, devices):
        return types.SimpleNamespace(
            name=name, get_devices=lambda: [types.SimpleNamespace(name=d) for d in devices]
        )

    return types.SimpleNamespace(get_platforms=lambda: [platform(n, d) for n, d in platforms])


def test_opencl_devices_are_listed_per_platform():
    fake = _fake_pyopencl([("NVIDIA CUDA", ["NVIDIA H200"]), ("Intel(R) OpenCL", ["Xeon"])])
    finding = probe_opencl(importer=lambda _: fake)
    assert finding.found
    assert finding.devices == ["NVIDIA CUDA: NVIDIA H200", "Intel(R) OpenCL: Xeon"]


def test_opencl_without_a_platform_is_absent():
    def no_platform():
        raise RuntimeError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    finding = probe_opencl(importer=lambda _: types.SimpleNamespace(get_platforms=no_platform))
    assert not finding.found and "PLATFORM_NOT_FOUND_KHR" in finding.summary


# -- OpenVINO ---------------------------------------------------------------------------------------
def test_openvino_absent_says_how_to_get_it():
    finding = probe_openvino(importer=_no_module)
    assert not finding.found and "installing tessera-openvino" in finding.summary


def test_openvino_devices_come_from_its_core():
    core = types.SimpleNamespace(available_devices=["CPU", "GPU.0", "NPU"])
    fake = types.SimpleNamespace(__version__="2026.4", Core=lambda: core)
    finding = probe_openvino(importer=lambda _: fake)
    assert finding.found and finding.devices == ["CPU", "GPU.0", "NPU"]
    assert "OpenVINO 2026.4 sees CPU, GPU.0, NPU" in finding.summary


# -- matching findings to packages --------------------------------------------------------------------
CATALOG = [
    {
        "name": "cpu",
        "distribution": "tessera-cpu",
        "hardware": "any CPU",
        "install": "pip install tessera-cpu",
        "uses": ("cpu",),
    },
    {
        "name": "cuda",
        "distribution": "tessera-cuda",
        "hardware": "NVIDIA GPU",
        "install": "pip install 'tessera[cuda]'",
        "uses": ("nvidia",),
    },
    {
        "name": "openvino",
        "distribution": "tessera-openvino",
        "hardware": "Intel",
        "install": "pip install 'tessera[openvino]'",
        "uses": ("openvino",),
    },
]


def _probe(hardware, found):
    def probe():
        return Finding(hardware, found, f"{hardware} {'here' if found else 'missing'}")

    probe.__name__ = f"probe_{hardware}"
    return probe


def test_found_gpu_recommends_the_cuda_package_with_its_install_command():
    report = diagnose(
        probes=[_probe("cpu", True), _probe("nvidia", True), _probe("openvino", False)],
        catalog=CATALOG,
        installed=lambda dist: dist == "tessera-cpu",
        status=lambda name: f"ready ({name})",
    )
    by_name = {r["name"]: r for r in report["recommended"]}
    assert by_name["cuda"]["installed"] is False
    assert by_name["cpu"]["status"] == "ready (cpu)"
    assert [r["name"] for r in report["not_useful"]] == ["openvino"]
    text = render(report)
    assert "cuda      tessera-cuda       install: pip install 'tessera[cuda]'" in text
    assert "openvino  tessera-openvino   needs Intel" in text


def test_a_probe_that_raises_becomes_an_absent_finding():
    def probe_nvidia():
        raise OSError("permission denied on /dev/nvidiactl")

    report = diagnose(probes=[probe_nvidia], catalog=CATALOG, installed=lambda d: False, status=str)
    (finding,) = report["hardware"]
    assert finding["hardware"] == "nvidia" and not finding["found"]
    assert "permission denied" in finding["summary"]
    assert [r["name"] for r in report["not_useful"]] == ["cpu", "cuda", "openvino"]


def test_the_default_probes_cover_every_catalog_hardware_tag():
    from tessera_registry._catalog import CATALOG as BUILTIN

    probed = {p.__name__.removeprefix("probe_") for p in PROBES}
    assert {tag for e in BUILTIN for tag in e["uses"]} <= probed


def test_doctor_command_runs_on_this_machine_and_prints_json(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    hardware = {f["hardware"]: f for f in report["hardware"]}
    assert set(hardware) == {"cpu", "nvidia", "opencl", "openvino"}
    assert hardware["cpu"]["found"]
    cpu = next(r for r in report["recommended"] if r["name"] == "cpu")
    assert cpu["installed"] and cpu["status"] == "ready on cpu"
    if not hardware["nvidia"]["found"]:
        assert "cuda" in {r["name"] for r in report["not_useful"]}


@pytest.mark.skipif(
    pathlib.Path("/proc/driver/nvidia").exists(), reason="this machine has an NVIDIA driver"
)
def test_doctor_text_says_no_nvidia_gpu_here(capsys):
    from tessera.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "nvidia    absent  no NVIDIA GPU" in out
    assert "provider packages that would use it:" in out
