"""Shared helpers of the CUDA provider tests (see tests/support/device_support.py)."""

from __future__ import annotations

from support import device_support
from support.device_support import (
    I64,
    F,
    cpu_session,
    model,
    single_node_case,
    strict_session,
    vi,
)

__all__ = [
    "I64",
    "F",
    "cpu_session",
    "model",
    "single_node_case",
    "strict_session",
    "unavailable",
    "vi",
]


def unavailable() -> str:
    """Why GPU tests cannot run here ('' when they can), in the factory's own words."""
    return device_support.unavailable(
        "tessera_cuda._factory", "CUDAProviderFactory", "tessera-cuda"
    )
