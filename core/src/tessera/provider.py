"""The API that provider packages build against: factories, providers, claims and kernels.

A provider package imports only from here (and ``tessera`` for errors)::

    from tessera.provider import ExecutionProvider, KernelRegistry, ProviderFactory
"""

from __future__ import annotations

from tessera._errors import NoKernelError
from tessera._fusion import Fusion
from tessera._graph import make_node_info as node_info
from tessera._kernels import Compute, KernelDef, KernelRegistry, NodeInfo, schema_version
from tessera._provider import (
    API_VERSION,
    Claim,
    CompiledSubgraph,
    ExecutionProvider,
    GraphView,
    OptionSpec,
    ProviderFactory,
)
from tessera._resize_tables import RESIZE_TRANSFORMS, cubic_kernel, resize_axis_table
from tessera._types import (
    ALL_TENSOR_TYPES,
    FLOAT_TYPES,
    INT_TYPES,
    NUMERIC_TYPES,
    SIGNED_INT_TYPES,
    UNSIGNED_INT_TYPES,
    elem_type,
    np_dtype,
    tensor_type_string,
)

__all__ = [
    "ALL_TENSOR_TYPES",
    "API_VERSION",
    "FLOAT_TYPES",
    "INT_TYPES",
    "NUMERIC_TYPES",
    "RESIZE_TRANSFORMS",
    "SIGNED_INT_TYPES",
    "UNSIGNED_INT_TYPES",
    "Claim",
    "CompiledSubgraph",
    "Compute",
    "ExecutionProvider",
    "Fusion",
    "GraphView",
    "KernelDef",
    "KernelRegistry",
    "NoKernelError",
    "NodeInfo",
    "OptionSpec",
    "ProviderFactory",
    "cubic_kernel",
    "elem_type",
    "node_info",
    "np_dtype",
    "resize_axis_table",
    "schema_version",
    "tensor_type_string",
]
