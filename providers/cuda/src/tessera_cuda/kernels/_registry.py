"""The CUDA provider's kernel registry, dtype sets, per-op claim checks and host-read inputs.

Kernel factories here take ``(node, be)``: ``be`` is the provider's :class:`Backend`, whose
``xp`` is CuPy on a GPU and NumPy in the host-module test mode. A check (``registry.check``) returns
why a node the registry matches is still declined (an attribute form the kernel does not
implement), or None. ``HOST_INPUTS`` names the inputs a kernel reads on the host (shapes, axes,
pads): the provider leaves those as NumPy instead of uploading them.
"""

from __future__ import annotations

from tessera.provider import KernelRegistry

registry = KernelRegistry("CUDAExecutionProvider")
HOST_INPUTS: dict[str, frozenset[int]] = {}

FLOATS = ("tensor(float)", "tensor(double)")
SIGNED = ("tensor(int8)", "tensor(int16)", "tensor(int32)", "tensor(int64)")
UNSIGNED = ("tensor(uint8)", "tensor(uint16)", "tensor(uint32)", "tensor(uint64)")
INTS = SIGNED + UNSIGNED
NUMERIC = FLOATS + INTS
BOOL = ("tensor(bool)",)
ALL = NUMERIC + BOOL
INDEX = ("tensor(int32)", "tensor(int64)")


# A claim check for ops (``@check("Resize")``): the registry's own, so find() declines a node
# whose check gives a reason.
check = registry.check


def host_inputs(op: str, *indices: int) -> None:
    """Declare that ``op``'s kernel reads inputs ``indices`` on the host."""
    HOST_INPUTS[op] = frozenset(indices)


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis
