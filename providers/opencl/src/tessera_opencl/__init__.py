"""Tessera's OpenCL execution provider: OpenCL C kernels that keep tensors on the device."""

from __future__ import annotations

__version__ = "0.1.0"
