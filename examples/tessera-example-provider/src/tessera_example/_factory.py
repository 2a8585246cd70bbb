"""The example provider's factory (what discovery sees) and its execution provider.

Values inside its claims live on a pretend device ("example:0") as :class:`ExampleBuffer`s, so the
core's transfers at partition boundaries are visible, as they would be for a real accelerator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tessera import InvalidArgument
from tessera.provider import ExecutionProvider, OptionSpec, ProviderFactory
from tessera_example import __version__

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ExampleBuffer:
    """A tensor on the pretend device. Kernels unwrap it; a host array reaching one is a bug."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class ExampleExecutionProvider(ExecutionProvider):
    """Kernel-based: the default ``get_capability`` claims each node its registry can run."""

    name = "ExampleExecutionProvider"
    precision = "fp32"
    supports_concurrent_run = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        from tessera_example.kernels import registry, registry_without_matmul

        self.device = f"example:{self.options.get('device_id', 0)}"
        self.registry = (
            registry if self.options.get("claim_matmul", True) else registry_without_matmul
        )

    def to_device(self, value: Any) -> ExampleBuffer:
        return ExampleBuffer(np.asarray(value))

    def to_host(self, value: ExampleBuffer) -> np.ndarray:
        return value.array


class ExampleProviderFactory(ProviderFactory):
    name = "example"
    aliases = ("ExampleExecutionProvider",)
    vendor = "Example Corp"
    version = __version__
    api_version = "1.0"  # the provider API this package was written against
    default_priority = 100  # asked before CPU (-1000), so CPU only gets what this declines
    distribution = "tessera-example-provider"
    options = {
        "device_id": OptionSpec(int, 0, "which example device to use (only 0 exists)"),
        "claim_matmul": OptionSpec(bool, True, "claim MatMul nodes; false leaves them to others"),
    }

    def devices(self) -> list[str]:
        return ["example:0"]

    def auto_select(self) -> bool:
        # An example, not hardware: it joins only sessions that name it. Left in default
        # sessions it would split every model it is installed next to (the test environment
        # installs it), moving values to its pretend device and back for no gain. A real
        # provider returns True where its device is faster than the CPU provider.
        return False

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        options = dict(options)
        flag = options.get("claim_matmul")
        # ORT-style provider options often arrive as strings, and bool("false") is True.
        if isinstance(flag, str):
            if flag.lower() not in _TRUE | _FALSE:
                raise InvalidArgument(
                    f"provider 'example' option 'claim_matmul' must be true or false, got {flag!r}"
                )
            options["claim_matmul"] = flag.lower() in _TRUE
        resolved = super().validate_options(options)
        devices = self.devices()
        if not 0 <= resolved["device_id"] < len(devices):
            raise InvalidArgument(
                f"provider 'example' option 'device_id' is {resolved['device_id']}, but the "
                f"devices are {', '.join(devices)}; pass device_id=0"
            )
        return resolved

    def create(self, options: Mapping[str, Any]) -> ExampleExecutionProvider:
        return ExampleExecutionProvider(self.validate_options(options))
