"""NumPy kernels of the CPU provider, grouped by op family. Importing this package registers them."""

from __future__ import annotations

import importlib

from tessera_cpu.kernels._registry import registry

# One module per op family; each registers its kernels into `registry` on import.
_FAMILIES = (
    "elementwise",
    "elementwise_cast",
    "activation",
    "shape",
    "indexing",
    "conv",
    "pool",
    "resize",
    "reduce",
    "linalg",
    "normalization",
    "attention",
    "loss",
    "rnn",
    "control_flow",
    "sequence",
    "quantization",
    "random",
    "text",
    "signal",
    "image",
    "training",
    "autodiff",
    "detection",
    "ml",
)

for _family in _FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")

__all__ = ["registry"]
