"""Tessera's CPU execution provider: NumPy kernels for the ONNX operator set."""

from __future__ import annotations

__version__ = "0.1.0"
