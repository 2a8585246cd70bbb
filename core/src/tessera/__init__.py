"""Tessera: run ONNX models through execution providers that are ordinary pip packages.

The API mirrors onnxruntime's, so ``import tessera as ort`` runs ORT code unchanged.
"""

from __future__ import annotations

from tessera._errors import (
    Fail,
    InvalidArgument,
    InvalidGraph,
    NoKernelError,
    ProviderError,
    RuntimeFailure,
    TesseraError,
)
from tessera._iobinding import IOBinding, OrtValue
from tessera._options import (
    ExecutionMode,
    GraphOptimizationLevel,
    ModelMetadata,
    NodeArg,
    RunOptions,
    SessionOptions,
)
from tessera._providers import get_available_providers, register_plugin, unregister_plugin
from tessera._session import InferenceSession

__version__ = "0.4.0"


def get_all_providers() -> list[str]:
    """Every installed provider's ORT-style name, usable or not."""
    from tessera._providers import available_factories, public_name

    return [public_name(f) for f in available_factories()]


def get_device() -> str:
    return "CPU"


__all__ = [
    "ExecutionMode",
    "Fail",
    "GraphOptimizationLevel",
    "IOBinding",
    "InferenceSession",
    "InvalidArgument",
    "InvalidGraph",
    "ModelMetadata",
    "NoKernelError",
    "NodeArg",
    "OrtValue",
    "ProviderError",
    "RunOptions",
    "RuntimeFailure",
    "SessionOptions",
    "TesseraError",
    "get_all_providers",
    "get_available_providers",
    "get_device",
    "register_plugin",
    "unregister_plugin",
]
