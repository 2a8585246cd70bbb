"""The example provider's kernels: Add, Mul, Relu and MatMul on float32, on the pretend device.

Each kernel lists exactly the ONNX schema versions it implements (``since=``), and restricts its type
parameter to float32, so the default capability query declines anything else and CPU takes it.
"""

from __future__ import annotations

import numpy as np

from tessera.provider import KernelRegistry, NodeInfo
from tessera_example._factory import ExampleBuffer

FLOAT32 = ["tensor(float)"]

registry = KernelRegistry("ExampleExecutionProvider")
registry_without_matmul = KernelRegistry("ExampleExecutionProvider")


def _binary(ufunc):
    def factory(node: NodeInfo):
        # Called once per node at session creation; the closure is what run() calls.
        def compute(a: ExampleBuffer, b: ExampleBuffer) -> tuple:
            return (ExampleBuffer(ufunc(a.array, b.array)),)

        return compute

    return factory


def _relu(node: NodeInfo):
    def compute(x: ExampleBuffer) -> tuple:
        return (ExampleBuffer(np.maximum(x.array, np.float32(0))),)

    return compute


# Add and Mul before version 7 had a `broadcast` attribute with other semantics: not claimed.
for _reg in (registry, registry_without_matmul):
    _reg.kernel("Add", since=(7, 13, 14), types={"T": FLOAT32})(_binary(np.add))
    _reg.kernel("Mul", since=(7, 13, 14), types={"T": FLOAT32})(_binary(np.multiply))
    _reg.kernel("Relu", since=(6, 13, 14), types={"T": FLOAT32})(_relu)

registry.kernel("MatMul", since=(1, 9, 13), types={"T": FLOAT32})(_binary(np.matmul))
