"""Shared helpers of the OpenCL provider tests (see tests/support/device_support.py)."""

from __future__ import annotations

from support import device_support
from support.device_support import F, cpu_session, model, vi

import tessera

__all__ = ["F", "cpu_session", "model", "strict_session", "unavailable", "vi"]


def unavailable() -> str:
    """Why OpenCL tests cannot run here ('' when they can), in the factory's own words."""
    return device_support.unavailable(
        "tessera_opencl._factory", "OpenCLProviderFactory", "tessera-opencl"
    )


def strict_session(data: bytes) -> tessera.InferenceSession:
    """A session on OpenCL alone: a declined node raises instead of falling back to CPU."""
    return device_support.strict_session(data, "opencl")
