"""The OpenCL provider's kernel registry, dtype sets, and per-op claim checks.

Kernel factories here take ``(node, rt)``: the provider passes its :class:`Runtime`. A check
(``registry.check``) returns why a node the registry matches is still declined (an attribute or
input form the kernel does not implement), or None.
"""

from __future__ import annotations

from tessera.provider import KernelRegistry, NodeInfo

registry = KernelRegistry("OpenCLExecutionProvider")

FLOATS = ("tensor(float)", "tensor(double)")
SIGNED = ("tensor(int8)", "tensor(int16)", "tensor(int32)", "tensor(int64)")
UNSIGNED = ("tensor(uint8)", "tensor(uint16)", "tensor(uint32)", "tensor(uint64)")
INTS = SIGNED + UNSIGNED
NUMERIC = FLOATS + INTS
BOOL = ("tensor(bool)",)
ALL = NUMERIC + BOOL


# A claim check for ops (``@check("Resize")``): the registry's own, so find() declines a node
# whose check gives a reason.
check = registry.check


def flit(value: float, ctype: str = "TA") -> str:
    """A float attribute as an OpenCL C literal of type ``ctype`` (exact for float32 values)."""
    v = float(value)
    if v != v:
        return f"(({ctype})NAN)"
    if v in (float("inf"), float("-inf")):
        return f"(({ctype})({'-' if v < 0 else ''}INFINITY))"
    return f"(({ctype}){v!r})"


def constant_input(node: NodeInfo, index: int):
    """The value of input ``index`` when the model fixes it (an initializer or Constant)."""
    return node.constant_inputs.get(index)
