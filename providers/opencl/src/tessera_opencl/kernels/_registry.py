"""The OpenCL provider's kernel registry, dtype sets, and per-op claim checks.

Kernel factories here take ``(node, rt)``: the provider passes its :class:`Runtime`. A check in
``CHECKS`` returns why a node the registry matches is still declined (an attribute or input form
the kernel does not implement), or None.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.provider import KernelRegistry, NodeInfo

registry = KernelRegistry("OpenCLExecutionProvider")
CHECKS: dict[str, Callable[[NodeInfo], str | None]] = {}

FLOATS = ("tensor(float)", "tensor(double)")
SIGNED = ("tensor(int8)", "tensor(int16)", "tensor(int32)", "tensor(int64)")
UNSIGNED = ("tensor(uint8)", "tensor(uint16)", "tensor(uint32)", "tensor(uint64)")
INTS = SIGNED + UNSIGNED
NUMERIC = FLOATS + INTS
BOOL = ("tensor(bool)",)
ALL = NUMERIC + BOOL


def check(*ops: str):
    """Register a claim check for ``ops``; checks of one op chain (all must pass)."""

    def deco(fn: Callable[[NodeInfo], str | None]):
        for op in ops:
            prev = CHECKS.get(op)
            CHECKS[op] = fn if prev is None else (lambda n, a=prev, b=fn: a(n) or b(n))
        return fn

    return deco


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
