"""Tessera's CUDA execution provider: kernels written against CuPy that keep tensors on the GPU."""

from __future__ import annotations

__version__ = "0.1.0"
