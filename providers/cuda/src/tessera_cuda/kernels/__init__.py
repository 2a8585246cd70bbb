"""Kernels by family; importing this package registers every kernel in ``registry``."""

from __future__ import annotations

from tessera_cuda.kernels import (  # noqa: F401 - imported for their registrations
    conv,
    elementwise,
    linalg,
    reduce,
    resize,
    shape,
)
from tessera_cuda.kernels._registry import HOST_INPUTS, registry

__all__ = ["HOST_INPUTS", "registry"]
