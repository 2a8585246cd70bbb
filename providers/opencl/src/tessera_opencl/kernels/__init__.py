"""OpenCL kernels by family; importing this package registers every kernel in ``registry``."""

from __future__ import annotations

from tessera_opencl.kernels import (  # noqa: F401 - imported for their registrations
    attention,
    elementwise,
    linalg,
    loss,
    nn,
    reduce,
    resize,
    scatter,
    shape,
)
from tessera_opencl.kernels._registry import registry

__all__ = ["registry"]
