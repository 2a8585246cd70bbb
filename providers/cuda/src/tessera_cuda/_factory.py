"""The CUDA provider's factory: options, and a lazy probe of CuPy, the CUDA driver and devices.

Nothing here imports CuPy at module level: discovery constructs the factory on every machine,
including the many without a GPU, and must stay cheap there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from tessera import InvalidArgument
from tessera.provider import ExecutionProvider, OptionSpec, ProviderFactory
from tessera_cuda import __version__

INSTALL_HINT = "pip install 'tessera-cuda[cuda12]' (or [cuda13] for a CUDA 13 driver)"


def probe_devices(
    importer: Callable[[str], Any] = importlib.import_module,
) -> tuple[list[str], str]:
    """(device descriptions, reason): the usable CUDA devices, or [] and why there are none.

    The reasons are distinct so a user knows what to fix: CuPy missing, CuPy broken, no CUDA
    driver, a driver older than CuPy's runtime, no device, or the runtime's own error text.
    ``importer`` is a parameter so tests can stand in for CuPy on machines without it.
    """
    try:
        cupy = importer("cupy")
    except ImportError as exc:
        return [], f"CuPy is not installed ({exc}); {INSTALL_HINT}"
    except Exception as exc:  # noqa: BLE001 - a broken CuPy wheel raises anything on import
        return (
            [],
            f"CuPy failed to import ({type(exc).__name__}: {exc}); reinstall it: {INSTALL_HINT}",
        )
    runtime = cupy.cuda.runtime
    try:
        driver = int(runtime.driverGetVersion())
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError, or a missing libcudart
        return [], f"the CUDA runtime failed to start ({type(exc).__name__}: {exc})"
    if driver == 0:
        return [], (
            "CUDA driver missing: CuPy is installed but no NVIDIA driver (libcuda) was found; "
            "install the NVIDIA driver, or run on a machine with a GPU"
        )
    try:
        count = int(runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError carries the runtime's error name
        text = str(exc)
        if "NoDevice" in text:
            return [], f"no CUDA device ({text}); check CUDA_VISIBLE_DEVICES and nvidia-smi"
        if "InsufficientDriver" in text:
            have = f"{driver // 1000}.{driver % 1000 // 10}"
            return [], (
                f"the CUDA driver ({have}) is older than CuPy's CUDA runtime ({text}); update "
                "the driver or install the CuPy wheel for your CUDA major (cupy-cuda12x/13x)"
            )
        return [], f"CUDA runtime error while counting devices: {text}"
    if count == 0:
        return (
            [],
            "no CUDA device: the driver is loaded but reports 0 devices (CUDA_VISIBLE_DEVICES?)",
        )
    found = []
    for i in range(count):
        try:
            props = runtime.getDeviceProperties(i)
            name = props["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            gib = props["totalGlobalMem"] / (1 << 30)
            found.append(f"cuda:{i} ({name}, {gib:.0f} GiB, sm_{props['major']}{props['minor']})")
        except Exception as exc:  # noqa: BLE001 - one unreadable device must not hide the others
            found.append(f"cuda:{i} (properties unreadable: {exc})")
    return found, ""


class CUDAProviderFactory(ProviderFactory):
    name = "cuda"
    aliases = ("CUDAExecutionProvider",)
    vendor = "Tessera"
    version = __version__
    api_version = "1.2"  # uses ExecutionProvider.adopt, GraphView.fusion_allowed, KernelRegistry.check
    default_priority = 100
    distribution = "tessera-cuda"
    options = {
        "device_id": OptionSpec(int, 0, "which CUDA device (index among the visible ones)"),
        "allow_tf32": OptionSpec(
            bool, False, "let cuBLAS use TF32 tensor cores for float32 MatMul/Gemm/Conv"
        ),
        "cuda_graph": OptionSpec(
            bool, False, "capture static-shape runs as CUDA graphs (not implemented: must be false)"
        ),
        "memory_limit": OptionSpec(
            int, 0, "bytes CuPy's memory pool on this device may hold; 0 means no limit"
        ),
    }

    def __init__(self) -> None:
        self._probed: tuple[list[str], str] | None = None

    def devices(self) -> list[str]:
        if self._probed is None:
            self._probed = probe_devices()
        found, reason = self._probed
        self.unavailable_reason = reason
        return list(found)

    def auto_select(self) -> bool:
        """Join sessions that name no providers only when a CUDA device is usable."""
        return bool(self.devices())

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        resolved = super().validate_options(options)
        if resolved["device_id"] < 0:
            raise InvalidArgument(
                f"provider 'cuda' option 'device_id' is {resolved['device_id']}; use 0 or more"
            )
        if resolved["memory_limit"] < 0:
            raise InvalidArgument(
                f"provider 'cuda' option 'memory_limit' is {resolved['memory_limit']}; use a "
                "byte count such as 8589934592 (8 GiB), or 0 for no limit"
            )
        if resolved["cuda_graph"]:
            raise InvalidArgument(
                "provider 'cuda' option 'cuda_graph' is true, but CUDA graph capture is not "
                "implemented in this release; leave it false (see docs/cuda-provider.md)"
            )
        return resolved

    def create(self, options: Mapping[str, Any]) -> ExecutionProvider:
        resolved = self.validate_options(options)
        found = self.devices()
        if resolved["device_id"] >= len(found):
            raise InvalidArgument(
                f"provider 'cuda' option 'device_id' is {resolved['device_id']}, but "
                f"{len(found)} CUDA device(s) are visible; use 0..{max(len(found) - 1, 0)}"
            )
        from tessera_cuda._backend import CupyBackend
        from tessera_cuda._provider import CUDAExecutionProvider

        return CUDAExecutionProvider(resolved, CupyBackend(resolved))
