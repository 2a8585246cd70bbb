"""`tessera doctor`: find the hardware on this machine and say which provider packages would use it.

Every probe is lazy and never raises: a missing driver, tool or library is a finding, not an error.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any


@dataclasses.dataclass
class Finding:
    """What one probe learnt about one kind of hardware (a catalog ``uses`` tag)."""

    hardware: str
    found: bool
    summary: str
    devices: list[str] = dataclasses.field(default_factory=list)


Probe = Callable[[], Finding]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def probe_cpu() -> Finding:
    vendor = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("vendor_id", "model name")):
                vendor = line.split(":", 1)[1].strip()
                if line.startswith("model name"):
                    break
    except OSError:
        vendor = platform.processor()
    label = f"{platform.machine() or 'unknown architecture'}, {os.cpu_count() or '?'} logical cores"
    return Finding("cpu", True, f"{label}{f' ({vendor})' if vendor else ''}", ["cpu"])


def probe_nvidia(
    which: Callable[[str], str | None] = shutil.which,
    proc: pathlib.Path = pathlib.Path("/proc/driver/nvidia"),
    run: Callable[..., Any] = subprocess.run,
) -> Finding:
    """NVIDIA GPUs from ``nvidia-smi``, else from ``/proc/driver/nvidia`` (driver without tools)."""
    smi = which("nvidia-smi")
    if smi:
        try:
            out = run(
                [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            smi_error = f"nvidia-smi failed ({_first_line(exc)})"
        else:
            rows = [r.split(",") for r in out.stdout.splitlines() if r.strip()]
            if out.returncode == 0 and rows:
                driver = rows[0][1].strip() if len(rows[0]) > 1 else "?"
                devices = [f"cuda:{i} {r[0].strip()}" for i, r in enumerate(rows)]
                return Finding(
                    "nvidia", True, f"{len(rows)} NVIDIA GPU(s), driver {driver}", devices
                )
            smi_error = f"nvidia-smi found no GPU ({(out.stderr or out.stdout).strip()[:120]})"
    else:
        smi_error = "nvidia-smi is not on PATH"
    gpus = sorted(p.name for p in (proc / "gpus").glob("*")) if (proc / "gpus").is_dir() else []
    if gpus:
        return Finding(
            "nvidia",
            True,
            f"{len(gpus)} NVIDIA GPU(s) in {proc} ({smi_error})",
            [f"cuda:{i} (PCI {bus})" for i, bus in enumerate(gpus)],
        )
    return Finding("nvidia", False, f"no NVIDIA GPU: {smi_error}, and {proc}/gpus does not exist")


def probe_opencl(
    importer: Callable[[str], Any] = importlib.import_module,
    icd_dir: pathlib.Path = pathlib.Path("/etc/OpenCL/vendors"),
) -> Finding:
    """OpenCL platforms and devices through pyopencl; without it, the installed ICD files."""
    try:
        cl = importer("pyopencl")
    except Exception as exc:  # noqa: BLE001 - any import failure means "cannot probe"
        icds = sorted(p.name for p in icd_dir.glob("*.icd")) if icd_dir.is_dir() else []
        if icds:
            return Finding(
                "opencl",
                True,
                f"OpenCL drivers registered ({', '.join(icds)}); pyopencl is not importable "
                f"({_first_line(exc)}), so devices were not listed",
            )
        return Finding(
            "opencl",
            False,
            f"pyopencl is not importable ({_first_line(exc)}) and {icd_dir} has no .icd files",
        )
    try:
        devices = [
            f"{platform_.name.strip()}: {device.name.strip()}"
            for platform_ in cl.get_platforms()
            for device in platform_.get_devices()
        ]
    except Exception as exc:  # noqa: BLE001 - no ICD loader/platform raises pyopencl errors
        return Finding("opencl", False, f"no OpenCL platform ({_first_line(exc)})")
    if not devices:
        return Finding("opencl", False, "OpenCL platforms have no devices")
    return Finding("opencl", True, f"{len(devices)} OpenCL device(s)", devices)


def probe_openvino(importer: Callable[[str], Any] = importlib.import_module) -> Finding:
    """OpenVINO's own device list (CPU, GPU, NPU) when the openvino package is importable."""
    try:
        ov = importer("openvino")
    except Exception as exc:  # noqa: BLE001
        return Finding(
            "openvino",
            False,
            f"openvino is not importable ({_first_line(exc)}); installing tessera-openvino "
            "brings it and lists Intel CPU/GPU/NPU devices",
        )
    try:
        devices = list(ov.Core().available_devices)
    except Exception as exc:  # noqa: BLE001
        return Finding("openvino", False, f"OpenVINO could not list devices ({_first_line(exc)})")
    if not devices:
        return Finding("openvino", False, "OpenVINO sees no device")
    return Finding(
        "openvino",
        True,
        f"OpenVINO {getattr(ov, '__version__', '?')} sees {', '.join(devices)}",
        devices,
    )


PROBES: tuple[Probe, ...] = (probe_cpu, probe_nvidia, probe_opencl, probe_openvino)


def _safe(probe: Probe) -> Finding:
    name = getattr(probe, "__name__", "probe").removeprefix("probe_")
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - the doctor reports; it never fails
        return Finding(name, False, f"the probe failed ({_first_line(exc)})")


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _provider_status(name: str) -> str:
    """What the installed provider itself says about its devices (its own lazy probe)."""
    from tessera._providers import discovery

    try:
        found = discovery()
    except Exception as exc:  # noqa: BLE001
        return f"discovery failed: {_first_line(exc)}"
    factory = found.factories.get(name)
    if factory is None:
        broken = [b for b in found.broken if b.entry_point == name]
        return (
            f"broken: {broken[0].reason}" if broken else "installed, but its plugin was not loaded"
        )
    try:
        devices = factory.devices()
    except Exception as exc:  # noqa: BLE001
        return f"probe failed: {_first_line(exc)}"
    if devices:
        return f"ready on {', '.join(devices)}"
    return f"unavailable: {factory.unavailable_reason or 'no device'}"


def diagnose(
    probes: Sequence[Probe] = PROBES,
    catalog: Sequence[dict] | None = None,
    installed: Callable[[str], bool] = _installed,
    status: Callable[[str], str] = _provider_status,
) -> dict:
    """Probe the hardware and match it to catalog packages.

    Returns ``{"hardware": [Finding as dict], "recommended": [...], "not_useful": [...]}`` where a
    recommendation is a catalog entry plus ``installed`` and ``status`` (or the install command).
    """
    if catalog is None:
        from tessera._providers import discovery
        from tessera_registry._catalog import merged_catalog

        try:
            extra = discovery().catalog
        except Exception:  # noqa: BLE001 - plugins' catalog entries are advisory
            extra = []
        catalog = merged_catalog(extra)
    findings = [_safe(p) for p in probes]
    present = {f.hardware for f in findings if f.found}
    recommended, not_useful = [], []
    for entry in catalog:
        uses = tuple(entry.get("uses", ()))
        matched = [h for h in uses if h in present]
        item = {k: entry[k] for k in ("name", "distribution", "hardware", "install")}
        item["uses"] = list(uses)
        if matched:
            item["installed"] = installed(entry["distribution"])
            item["status"] = status(entry["name"]) if item["installed"] else "not installed"
            recommended.append(item)
        elif uses:
            not_useful.append(item)
    return {
        "hardware": [dataclasses.asdict(f) for f in findings],
        "recommended": recommended,
        "not_useful": not_useful,
    }


def render(report: dict) -> str:
    lines = ["hardware:"]
    for f in report["hardware"]:
        mark = "found" if f["found"] else "absent"
        lines.append(f"  {f['hardware']:9} {mark:7} {f['summary']}")
        lines.extend(f"                    - {d}" for d in f["devices"] if f["found"])
    lines.append("provider packages that would use it:")
    for r in report["recommended"]:
        action = r["status"] if r["installed"] else f"install: {r['install']}"
        lines.append(f"  {r['name']:9} {r['distribution']:18} {action}")
    if not report["recommended"]:
        lines.append("  (none in the catalog)")
    if report["not_useful"]:
        lines.append("not useful on this machine (their hardware was not found):")
        lines.extend(
            f"  {r['name']:9} {r['distribution']:18} needs {r['hardware']}"
            for r in report["not_useful"]
        )
    return "\n".join(lines)


def cmd_doctor(args) -> int:
    report = diagnose()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(report))
    return 0


def add_parser(sub) -> None:
    """Add the ``doctor`` subcommand to the ``tessera`` CLI."""
    p = sub.add_parser(
        "doctor", help="detect GPUs/OpenCL/OpenVINO devices and say which providers to install"
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=cmd_doctor)
