"""The CUDA execution provider: claims what its kernels run, fuses float elementwise chains,
keeps values on the device, and leaves shape arithmetic to the host."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tessera.provider import (
    Claim,
    CompiledSubgraph,
    Compute,
    ExecutionProvider,
    GraphView,
    KernelDef,
    NodeInfo,
)
from tessera_cuda._backend import Backend
from tessera_cuda.kernels import HOST_INPUTS, registry
from tessera_cuda.kernels._registry import ALL
from tessera_cuda.kernels.fusion import chains, compile_chain, fusable

_INTEGER = {"tensor(int32)", "tensor(int64)"}
SHAPE_OPS = ("Shape", "Size", "ConstantOfShape", "Range", "NonZero")
# int64 tensors this small stay NumPy when moved "to the device": they are shape arguments
# (Reshape's shape, Slice's starts), and kernels that need them as data upload them on use.
HOST_INT_LIMIT = 64


def shape_computation(node: NodeInfo) -> str | None:
    """Why ``node`` is shape arithmetic that stays on the host, or None."""
    if node.op_type == "Constant":
        return None  # a constant costs nothing; small integer ones stay NumPy (see to_device)
    if node.op_type in SHAPE_OPS:
        return f"{node.op_type} computes shapes; it stays on the host (no device round trip)"
    types = [t for t in (*node.input_types, *node.output_types) if t is not None]
    if not types or not all(t in _INTEGER for t in types):
        return None
    for shape in node.output_shapes or [None]:
        if shape is not None and len(shape) > 1:
            return None
    return (
        f"{node.op_type} on small integer tensors is shape arithmetic; it stays on the host "
        "(as with onnxruntime's CUDA provider) so Shape->Gather->Concat chains need no device "
        "round trip"
    )


class CUDAExecutionProvider(ExecutionProvider):
    name = "CUDAExecutionProvider"
    precision = "fp32"
    supports_concurrent_run = True

    def __init__(self, options: Mapping[str, Any] | None, backend: Backend) -> None:
        super().__init__(options)
        self.be = backend
        self.device = backend.device
        if backend.allow_tf32:
            self.precision = "tf32 (MatMul/Gemm/Conv), fp32 elsewhere"
        self.registry = registry
        self._scopes = threading.local()

    # -- capability -----------------------------------------------------------------------------
    def _why_not(self, node: NodeInfo) -> str | None:
        reason = shape_computation(node)
        if reason:
            return reason
        for t in (*node.input_types, *node.output_types):
            if t is not None and t not in ALL and node.op_type not in ("Shape", "Size"):
                return f"{t} has no CUDA kernel here (float32/64, integers and bool do)"
        found = self.registry.find(node)
        if isinstance(found, str):
            return found
        node.since_version = found.since_version
        return None

    def get_capability(self, view: GraphView) -> list[Claim]:
        ok = [key for key, node in view if self._why_not(node) is None]
        # Chains fuse only where the session's optimization level allows provider fusions.
        grouped = (
            chains(view, [k for k in ok if fusable(view.nodes[k])]) if view.fusion_allowed else []
        )
        fused = {k for g in grouped for k in g}
        claims = [Claim(tuple(g), kind="compiled", note="fused elementwise chain") for g in grouped]
        claims += [Claim((k,)) for k in ok if k not in fused]
        return claims

    def decline_reason(self, node: NodeInfo) -> str:
        return self._why_not(node) or "claimed by a provider earlier in the order"

    # -- execution ------------------------------------------------------------------------------
    def create_kernel(self, node: NodeInfo) -> Compute:
        kdef: KernelDef = self.registry.lookup(node)
        node.since_version = kdef.since_version
        compute = kdef.factory(node, self.be)
        return _with_device_inputs(compute, HOST_INPUTS.get(node.op_type, frozenset()), self.be)

    def compile(self, subgraph: CompiledSubgraph) -> Callable[..., Sequence[Any]]:
        return compile_chain(subgraph, self.be)

    def to_device(self, value: Any) -> Any:
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
            return value
        if value.dtype.kind in "iu" and value.ndim <= 1 and value.size <= HOST_INT_LIMIT:
            return value
        with self.be.scope():
            return self.be.asarray(np.array(value, copy=True) if self.be.xp is np else value)

    def to_host(self, value: Any) -> Any:
        if isinstance(value, np.ndarray) or value is None:
            return value
        if isinstance(value, self.be.xp.ndarray):
            return self.be.host(value)
        return value

    def adopt(self, value: Any) -> Any | None:
        return self.be.adopt(value)

    # -- run hooks: the device and the provider's stream are current for the whole run ---------
    def on_run_start(self) -> None:
        stack = getattr(self._scopes, "stack", None)
        if stack is None:
            stack = self._scopes.stack = []
        scope = self.be.scope()
        scope.__enter__()
        stack.append(scope)

    def on_run_end(self) -> None:
        stack = getattr(self._scopes, "stack", None)
        if stack:
            stack.pop().__exit__(None, None, None)


def _with_device_inputs(compute: Compute, host: frozenset[int], be: Backend) -> Compute:
    """Upload inputs that arrived as NumPy (small int64 tensors kept on the host) unless the
    kernel reads them on the host. On the host-module backend this is the identity."""
    if be.xp is np:
        return compute
    ndarray, asarray = be.xp.ndarray, be.asarray

    def run(*xs: Any) -> tuple:
        args = [
            x if (i in host or x is None or isinstance(x, ndarray)) else asarray(x)
            for i, x in enumerate(xs)
        ]
        return compute(*args)

    return run
