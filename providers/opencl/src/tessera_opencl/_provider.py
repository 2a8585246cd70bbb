"""The OpenCL execution provider: claims the nodes its kernels run on this device's dtypes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyopencl.array as cla

from tessera.provider import (
    Claim,
    CompiledSubgraph,
    Compute,
    ExecutionProvider,
    GraphView,
    KernelDef,
    NodeInfo,
)
from tessera_opencl._factory import select_device
from tessera_opencl._fusion import chain_note, compile_chain, find_chains
from tessera_opencl._runtime import Runtime
from tessera_opencl.kernels import registry
from tessera_opencl.kernels._registry import ALL
from tessera_opencl.kernels.elementwise import elementwise_expr

_SHAPE_ONLY = ("Shape", "Size")


class OpenCLExecutionProvider(ExecutionProvider):
    name = "OpenCLExecutionProvider"
    precision = "fp32"
    supports_concurrent_run = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.rt = Runtime(select_device(self.options))
        dev = self.rt.device
        self.device = f"opencl:{dev.platform.name.strip()}:{dev.name.strip()}"
        self.registry = registry

    def _dtype_reason(self, node: NodeInfo) -> str | None:
        types = list(node.output_types)
        if node.op_type not in _SHAPE_ONLY:  # Shape/Size read only the input's dims
            types += node.input_types
        for t in types:
            if t is None:
                continue
            if t == "tensor(bfloat16)":
                return "tensor(bfloat16) has no OpenCL C type"
            if t == "tensor(float16)" and not self.rt.fp16:
                return f"{t} needs cl_khr_fp16, which {self.rt.device.name.strip()} lacks"
            if t == "tensor(double)" and not self.rt.fp64:
                return (
                    f"tensor(double) needs cl_khr_fp64, which {self.rt.device.name.strip()} lacks"
                )
            if t not in ALL:
                return f"{t} has no OpenCL kernel type"
        return None

    def _why_not(self, node: NodeInfo) -> str | None:
        reason = self._dtype_reason(node)  # first: the device's limits explain the most
        if reason:
            return reason
        found = self.registry.find(node)
        return found if isinstance(found, str) else None

    def get_capability(self, view: GraphView) -> list[Claim]:
        """One kernel claim per node this device runs, except that chains of elementwise nodes
        whose intermediates stay inside the chain are claimed as one group, compiled into a
        single generated kernel (``fuse_elementwise`` turns this off, and so does an
        optimization level below ORT_ENABLE_EXTENDED)."""
        claimed = {key: node for key, node in view if self._why_not(node) is None}
        chains: list[tuple[int, ...]] = []
        if self.options.get("fuse_elementwise", True) and view.fusion_allowed:
            fusable = [k for k, node in claimed.items() if elementwise_expr(node) is not None]
            chains = find_chains(view, fusable)
        in_chain = {k for chain in chains for k in chain}
        claims = [Claim(c, "compiled", chain_note(claimed, c)) for c in chains]
        return claims + [Claim((k,)) for k in claimed if k not in in_chain]

    def compile(self, subgraph: CompiledSubgraph) -> Callable[..., tuple[Any, ...]]:
        """The one kernel of an elementwise chain this provider claimed as a group."""
        return compile_chain(subgraph, self.rt)

    def decline_reason(self, node: NodeInfo) -> str:
        return self._why_not(node) or "claimed by a provider earlier in the order"

    def create_kernel(self, node: NodeInfo) -> Compute:
        kdef: KernelDef = self.registry.lookup(node)
        node.since_version = kdef.since_version
        # Kernels here take the runtime too: registry factories are (node, rt) -> compute.
        return kdef.factory(node, self.rt)

    def to_device(self, value: Any) -> Any:
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if isinstance(value, np.ndarray) and value.dtype in _DEVICE_DTYPES:
            return self.rt.upload(value)
        return value

    def to_host(self, value: Any) -> Any:
        if isinstance(value, cla.Array):
            return self.rt.download(value)
        return value

    def adopt(self, value: Any) -> Any | None:
        """Arrays in this device's shared context are read in place, after the queue that wrote
        them has finished (another session's queue, which this one does not wait for)."""
        if not isinstance(value, cla.Array) or value.context != self.rt.context:
            return None
        if value.queue is not None and value.queue != self.rt.queue:
            value.queue.finish()
        return value.with_queue(self.rt.queue)


_DEVICE_DTYPES = {
    np.dtype(t) for t in ("f4", "f8", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "?")
}
