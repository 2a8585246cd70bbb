"""Sequence and optional ops; sequences are Python lists of arrays and an empty optional is None."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tessera.provider import NodeInfo, np_dtype
from tessera_cpu.kernels._registry import registry

_POSITION = {"I": ("tensor(int32)", "tensor(int64)")}


def _position(node: NodeInfo, pos, length: int, allow_end: bool) -> int:
    """A scalar position as a non-negative index; ``allow_end`` admits ``length`` (insert)."""
    p = np.asarray(pos)
    if p.size != 1:
        raise ValueError(f"{node.describe()}: position must be a scalar, got shape {p.shape}")
    p = int(p.reshape(()))
    hi = length if allow_end else length - 1
    if not -length <= p <= hi:
        raise ValueError(
            f"{node.describe()}: position {p} is out of range for a sequence of length {length}"
        )
    return p + length if p < 0 else p


@registry.kernel("SequenceConstruct", since=11)
def sequence_construct(node: NodeInfo) -> Callable[..., tuple]:
    def compute(*tensors):
        return (list(tensors),)

    return compute


@registry.kernel("SequenceEmpty", since=11)
def sequence_empty(node: NodeInfo) -> Callable[..., tuple]:
    try:
        np_dtype(node.attr("dtype", 1))
    except ValueError as exc:
        raise ValueError(f"{node.describe()}: {exc}") from None

    def compute():
        return ([],)

    return compute


@registry.kernel("SequenceAt", since=11, types=_POSITION)
def sequence_at(node: NodeInfo) -> Callable[..., tuple]:
    def compute(seq, pos):
        return (seq[_position(node, pos, len(seq), False)],)

    return compute


@registry.kernel("SequenceErase", since=11, types=_POSITION)
def sequence_erase(node: NodeInfo) -> Callable[..., tuple]:
    def compute(seq, pos=None):
        if not seq:
            raise ValueError(f"{node.describe()}: cannot erase from an empty sequence")
        i = len(seq) - 1 if pos is None else _position(node, pos, len(seq), False)
        return (seq[:i] + seq[i + 1 :],)

    return compute


@registry.kernel("SequenceInsert", since=11, types=_POSITION)
def sequence_insert(node: NodeInfo) -> Callable[..., tuple]:
    def compute(seq, tensor, pos=None):
        if seq and seq[0].dtype != tensor.dtype:
            raise ValueError(
                f"{node.describe()}: cannot insert a {tensor.dtype} tensor into a sequence of {seq[0].dtype}"
            )
        i = len(seq) if pos is None else _position(node, pos, len(seq), True)
        return ([*seq[:i], tensor, *seq[i:]],)

    return compute


@registry.kernel("SequenceLength", since=11)
def sequence_length(node: NodeInfo) -> Callable[..., tuple]:
    def compute(seq):
        return (np.asarray(len(seq), dtype=np.int64),)

    return compute


@registry.kernel("SplitToSequence", since=(11, 24), types=_POSITION)
def split_to_sequence(node: NodeInfo) -> Callable[..., tuple]:
    axis = int(node.attr("axis", 0))
    keepdims = bool(node.attr("keepdims", 1))

    def compute(x, split=None):
        rank = x.ndim
        if not -rank <= axis < rank:
            raise ValueError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        ax = axis % rank
        dim = x.shape[ax]
        if split is None:
            parts = np.split(x, dim, axis=ax) if dim else []
            if not keepdims:
                parts = [np.squeeze(p, axis=ax) for p in parts]
            return (parts,)
        split = np.asarray(split)
        if split.ndim == 0:
            size = int(split)
            if size <= 0:
                raise ValueError(f"{node.describe()}: split must be positive, got {size}")
            bounds = list(range(size, dim, size))
        else:
            sizes = split.astype(np.int64).reshape(-1)
            if (sizes < 0).any() or int(sizes.sum()) != dim:
                raise ValueError(
                    f"{node.describe()}: split {sizes.tolist()} must be non-negative and sum to "
                    f"the axis length {dim}"
                )
            bounds = np.cumsum(sizes)[:-1].tolist()
        return (np.split(x, bounds, axis=ax),)

    return compute


@registry.kernel("ConcatFromSequence", since=11)
def concat_from_sequence(node: NodeInfo) -> Callable[..., tuple]:
    axis = int(node.attr("axis"))
    new_axis = bool(node.attr("new_axis", 0))

    def compute(seq):
        if not seq:
            raise ValueError(f"{node.describe()}: cannot concatenate an empty sequence")
        rank = seq[0].ndim + (1 if new_axis else 0)
        if not -rank <= axis < rank:
            raise ValueError(f"{node.describe()}: axis {axis} is out of range for rank {rank}")
        if new_axis:
            return (np.stack(seq, axis=axis),)
        return (np.concatenate(seq, axis=axis),)

    return compute


@registry.kernel("SequenceMap", since=17)
def sequence_map(node: NodeInfo) -> Callable[..., tuple]:
    body = node.subgraph("body")
    n_explicit = node.num_inputs
    n_out = node.num_outputs

    def compute(*args):
        explicit, captured = args[:n_explicit], args[n_explicit:]
        seq, extra = explicit[0], explicit[1:]
        n = len(seq)
        for e in extra:
            if isinstance(e, list) and len(e) != n:
                raise ValueError(
                    f"{node.describe()}: additional sequence of length {len(e)} does not match "
                    f"the input sequence of length {n}"
                )
        results: list[list] = [[] for _ in range(n_out)]
        for i in range(n):
            feeds = [seq[i]] + [e[i] if isinstance(e, list) else e for e in extra]
            for acc, value in zip(results, body(feeds, captured)):
                acc.append(value)
        return tuple(results)

    return compute


@registry.kernel("Optional", since=(15, 28))
def optional(node: NodeInfo) -> Callable[..., tuple]:
    if not node.has_input(0) and "type" not in node.attrs:
        raise ValueError(f"{node.describe()}: an Optional without input needs the 'type' attribute")

    def compute(value=None):
        return (value,)

    return compute


@registry.kernel("OptionalGetElement", since=(15, 18, 28))
def optional_get_element(node: NodeInfo) -> Callable[..., tuple]:
    def compute(value):
        if value is None:
            raise ValueError(f"{node.describe()}: the optional input is empty")
        return (value,)

    return compute


@registry.kernel("OptionalHasElement", since=(15, 18, 28))
def optional_has_element(node: NodeInfo) -> Callable[..., tuple]:
    def compute(value=None):
        return (np.asarray(value is not None),)

    return compute
