"""Constant folding: nodes whose inputs are all constants become initializers, computed once at
session creation with a provider's own kernels; ``Shape``/``Size`` of statically shaped values
fold too, which collapses shape chains (Shape -> Gather -> Concat -> Reshape)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from tessera.optimizer._rewrite import (
    add_initializer,
    constant_of,
    graph_input_ids,
    has_subgraph,
    remove_nodes,
)

logger = logging.getLogger("tessera")

Evaluator = Callable[[ir.Node, Sequence[Any]], Sequence[Any] | None]
"""``evaluate(node, input_arrays) -> output arrays`` or None when it cannot run the node."""

# Ops whose result is not a function of their inputs, or that carry state between runs.
NONDETERMINISTIC = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",  # training_mode may be a graph input; Dropout elimination handles inference
    }
)
# Ops whose output can be far larger than their inputs: folded only when the declared output
# shape is known and under the cap, so a huge constant is never materialised.
EXPANDING = frozenset(
    {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot", "EyeLike"}
)

# 16 MiB of float32: folds the light ResNet-50's largest generated weights (512x512x3x3, 2.4M
# elements), so its last BatchNormalizations fold into their convolutions (57.5 -> 56.5 ms).
DEFAULT_MAX_ELEMENTS = 4_000_000


def _static_size(value: ir.Value) -> int | None:
    if value.shape is None:
        return None
    size = 1
    for d in value.shape:
        if not isinstance(d, int):
            return None
        size *= d
    return size


def _static_dims(value: ir.Value | None) -> list[int] | None:
    if value is None or value.shape is None:
        return None
    dims = list(value.shape)
    return dims if all(isinstance(d, int) and d >= 0 for d in dims) else None


def _fold_shape_op(node: ir.Node) -> list[np.ndarray] | None:
    """Shape and Size of a value whose dims are all static, without running anything."""
    if node.domain not in ("", "ai.onnx") or not node.inputs:
        return None
    dims = _static_dims(node.inputs[0])
    if dims is None:
        return None
    if node.op_type == "Size":
        return [np.array(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)]
    if node.op_type != "Shape":
        return None
    rank = len(dims)
    start = node.attributes.get("start")
    end = node.attributes.get("end")
    lo = int(start.value) if start is not None else 0
    hi = int(end.value) if end is not None else rank
    lo = min(max(lo + rank if lo < 0 else lo, 0), rank)
    hi = min(max(hi + rank if hi < 0 else hi, 0), rank)
    return [np.array(dims[lo:hi], dtype=np.int64)]


def fold_constants(
    graph: ir.Graph,
    evaluate: Evaluator | None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> int:
    """Fold every foldable node of ``graph`` (not its subgraphs); returns how many folded.

    One pass in graph order suffices: a folded node's outputs are constants by the time its
    readers are visited, since ONNX graphs are topologically sorted.
    """
    overridable = graph_input_ids(graph)
    folded = 0
    for node in list(graph):
        if node.domain not in ("", "ai.onnx") or node.op_type in NONDETERMINISTIC:
            continue
        if has_subgraph(node) or any(o.is_graph_output() for o in node.outputs):
            continue
        if not any(o.uses() for o in node.outputs):
            continue  # dead code: folding it would only add an initializer nobody reads
        results = _fold_shape_op(node)
        if results is None:
            if evaluate is None:
                continue
            inputs = [constant_of(v, overridable) if v is not None else None for v in node.inputs]
            if any(a is None for v, a in zip(node.inputs, inputs) if v is not None):
                continue
            if node.op_type in EXPANDING and any(
                (_static_size(o) or max_elements + 1) > max_elements for o in node.outputs
            ):
                continue
            if any((_static_size(o) or 0) > max_elements for o in node.outputs):
                continue
            try:
                results = evaluate(node, inputs)
            except Exception as exc:  # noqa: BLE001 - the run will report it with context
                logger.debug("constant folding skipped %s: %s", node.op_type, exc)
                continue
        if results is None or len(results) != len(node.outputs):
            continue
        arrays = [np.asarray(r) if isinstance(r, np.generic) else r for r in results]
        if not all(isinstance(a, np.ndarray) and a.dtype.kind != "O" for a in arrays):
            continue
        if any(a.size > max_elements for a in arrays):
            continue
        for out, array in zip(node.outputs, arrays):
            if out.dtype is not None and out.dtype.numpy() != array.dtype:
                break
        else:
            _replace_with_constants(graph, node, arrays)
            folded += 1
    return folded


def _replace_with_constants(graph: ir.Graph, node: ir.Node, arrays: list[np.ndarray]) -> None:
    for out, array in zip(node.outputs, arrays):
        name = out.name or f"{node.op_type}_folded"
        out.name = None  # frees the name for the initializer that replaces the value
        constant = add_initializer(graph, name, array)
        out.replace_all_uses_with(constant)
    remove_nodes(graph, [node])


def kernel_evaluator(providers: Sequence[Any], opsets: Mapping[str, int]) -> Evaluator | None:
    """An evaluator running nodes with the first host (``device == "cpu"``) provider that has a
    kernel registry, so the core never imports a provider package itself."""
    from tessera._graph import make_node_info
    from tessera._kernels import KernelDef

    registries = [
        p.registry
        for p in providers
        if getattr(p, "registry", None) is not None and getattr(p, "device", "") == "cpu"
    ]
    if not registries:
        return None
    registry = registries[-1]

    def evaluate(node: ir.Node, inputs: Sequence[Any]) -> Sequence[Any] | None:
        info = make_node_info(node, 0, opsets)
        info.constant_inputs = {i: a for i, a in enumerate(inputs) if a is not None}
        kdef = registry.find(info)
        if not isinstance(kdef, KernelDef):
            return None
        info.since_version = kdef.since_version
        compute = kdef.factory(info)
        # Read-only views: a kernel that writes into its input must not corrupt a weight.
        frozen = []
        for a in inputs:
            if isinstance(a, np.ndarray):
                a = a.view()
                a.setflags(write=False)
            frozen.append(a)
        with np.errstate(all="ignore"):
            return compute(*frozen)

    return evaluate
