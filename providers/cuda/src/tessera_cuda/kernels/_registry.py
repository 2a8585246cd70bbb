"""The CUDA provider's kernel registry, dtype sets, per-op claim checks and host-read inputs.

Kernel factories here take ``(node, be)``: ``be`` is the provider's :class:`Backend`, whose
``xp`` is CuPy on a GPU and NumPy in the host-module test mode. A check in ``CHECKS`` returns
why a node the registry matches is still declined (an attribute form the kernel does not
implement), or None. ``HOST_INPUTS`` names the inputs a kernel reads on the host (shapes, axes,
pads): the provider leaves those as NumPy instead of uploading them.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.provider import KernelRegistry, NodeInfo

registry = KernelRegistry("CUDAExecutionProvider")
CHECKS: dict[str, Callable[[NodeInfo], str | None]] = {}
HOST_INPUTS: dict[str, frozenset[int]] = {}

FLOATS = ("tensor(float)", "tensor(double)")
SIGNED = ("tensor(int8)", "tensor(int16)", "tensor(int32)", "tensor(int64)")
UNSIGNED = ("tensor(uint8)", "tensor(uint16)", "tensor(uint32)", "tensor(uint64)")
INTS = SIGNED + UNSIGNED
NUMERIC = FLOATS + INTS
BOOL = ("tensor(bool)",)
ALL = NUMERIC + BOOL
INDEX = ("tensor(int32)", "tensor(int64)")


def check(*ops: str):
    """Register a claim check for ``ops``; checks of one op chain (all must pass)."""

    def deco(fn: Callable[[NodeInfo], str | None]):
        for op in ops:
            prev = CHECKS.get(op)
            CHECKS[op] = fn if prev is None else (lambda n, a=prev, b=fn: a(n) or b(n))
        return fn

    return deco


def host_inputs(op: str, *indices: int) -> None:
    """Declare that ``op``'s kernel reads inputs ``indices`` on the host."""
    HOST_INPUTS[op] = frozenset(indices)


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis
