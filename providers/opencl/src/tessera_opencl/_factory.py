"""The OpenCL provider's factory: options, and a lazy probe of OpenCL platforms and devices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tessera.provider import ExecutionProvider, OptionSpec, ProviderFactory
from tessera_opencl import __version__

DEVICE_TYPES = ("all", "cpu", "gpu", "accelerator")


def select_device(options: Mapping[str, Any]):
    """The pyopencl Device the options name. Raises InvalidArgument naming the fix when the
    platform, device type or index matches nothing."""
    import pyopencl as cl

    from tessera import InvalidArgument

    kind = str(options.get("device_type", "all")).lower()
    if kind not in DEVICE_TYPES:
        raise InvalidArgument(
            f"provider 'opencl' option 'device_type' must be one of {', '.join(DEVICE_TYPES)}, "
            f"got {kind!r}"
        )
    platforms = cl.get_platforms()
    wanted = str(options.get("platform", "") or "")
    if wanted.isdigit():
        index = int(wanted)
        if index >= len(platforms):
            raise InvalidArgument(
                f"provider 'opencl' option 'platform' is {index}, but only {len(platforms)} "
                "OpenCL platform(s) exist; run `tessera providers` to list them"
            )
        platforms = [platforms[index]]
    elif wanted:
        platforms = [p for p in platforms if wanted.lower() in p.name.lower()]
        if not platforms:
            names = ", ".join(repr(p.name) for p in cl.get_platforms())
            raise InvalidArgument(
                f"provider 'opencl' option 'platform' {wanted!r} matches no platform; have {names}"
            )
    mask = {
        "all": cl.device_type.ALL,
        "cpu": cl.device_type.CPU,
        "gpu": cl.device_type.GPU,
        "accelerator": cl.device_type.ACCELERATOR,
    }[kind]
    found = []
    for p in platforms:
        try:
            found.extend(p.get_devices(device_type=mask))
        except cl.Error:  # a platform with no device of this type raises DEVICE_NOT_FOUND
            continue
    index = int(options.get("device_index", 0) or 0)
    if not found or index >= len(found):
        raise InvalidArgument(
            f"provider 'opencl' option 'device_index' is {index}, but {len(found)} OpenCL "
            f"device(s) of type {kind!r} match; lower device_index or change device_type/platform"
        )
    return found[index]


class OpenCLProviderFactory(ProviderFactory):
    name = "opencl"
    aliases = ("OpenCLExecutionProvider",)
    vendor = "Tessera"
    version = __version__
    api_version = "1.2"  # uses ExecutionProvider.adopt, GraphView.fusion_allowed, KernelRegistry.check
    default_priority = 50
    distribution = "tessera-opencl"
    options = {
        "platform": OptionSpec(str, "", "platform index ('0') or a substring of its name"),
        "device_index": OptionSpec(int, 0, "index among the matching devices"),
        "device_type": OptionSpec(str, "all", "cpu, gpu, accelerator or all"),
        "fuse_elementwise": OptionSpec(
            bool, True, "run chains of elementwise nodes as one generated kernel each"
        ),
    }

    def devices(self) -> list[str]:
        try:
            import pyopencl as cl
        except ImportError as exc:
            self.unavailable_reason = (
                f"pyopencl is not installed ({exc}); pip install 'pyopencl[pocl]'"
            )
            return []
        try:
            platforms = cl.get_platforms()
        except Exception as exc:  # noqa: BLE001 - no ICD loader or no platform raises cl.Error
            self.unavailable_reason = f"no OpenCL platform ({exc})"
            return []
        names = []
        for pi, p in enumerate(platforms):
            try:
                devs = p.get_devices()
            except Exception:  # noqa: BLE001 - a broken platform must not hide the others
                continue
            names.extend(f"opencl:{pi}:{di} ({d.name.strip()})" for di, d in enumerate(devs))
        if not names:
            self.unavailable_reason = "OpenCL platforms exist but expose no device"
        return names

    def auto_select(self) -> bool:
        """Join sessions that name no providers only when a GPU or accelerator is present: on
        a CPU-type OpenCL device (PoCL) the CPU provider is faster, so that is used when asked."""
        try:
            import pyopencl as cl

            return any(
                d.type & (cl.device_type.GPU | cl.device_type.ACCELERATOR)
                for p in cl.get_platforms()
                for d in p.get_devices()
            )
        except Exception:  # noqa: BLE001 - no platform, no loader: not by default
            return False

    def create(self, options: Mapping[str, Any]) -> ExecutionProvider:
        from tessera_opencl._provider import OpenCLExecutionProvider

        return OpenCLExecutionProvider(self.validate_options(options))
