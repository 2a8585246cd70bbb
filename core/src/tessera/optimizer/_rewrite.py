"""Small graph-editing helpers shared by the passes: constants, use counts, value replacement."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def graph_input_ids(graph: ir.Graph) -> set[int]:
    return {id(v) for v in graph.inputs}


def constant_of(value: ir.Value | None, overridable: set[int]) -> np.ndarray | None:
    """The NumPy value of a constant, or None. Initializers that are also graph inputs can be
    overridden at run time, so they are not constants."""
    if value is None or value.const_value is None or id(value) in overridable:
        return None
    if not value.is_initializer():
        return None
    try:
        return value.const_value.numpy()
    except Exception:  # noqa: BLE001 - string/sparse tensors that NumPy cannot hold
        return None


def scalar_of(value: ir.Value | None, overridable: set[int]) -> float | None:
    array = constant_of(value, overridable)
    if array is None or array.size != 1 or array.dtype.kind not in "fiu":
        return None
    return float(array.reshape(()))


def single_user(value: ir.Value) -> ir.Node | None:
    """The one node reading ``value`` (once), or None when it has several uses or is an output."""
    if value.is_graph_output():
        return None
    uses = list(value.uses())
    if len(uses) != 1:
        return None
    return uses[0][0]


def replace_value(old: ir.Value, new: ir.Value) -> bool:
    """Point every reader of ``old`` at ``new``. When ``old`` is a graph output, ``new`` takes
    its place and its name, so the model's output names never change. Returns False (and does
    nothing) when that would be unsafe."""
    if old.is_graph_output():
        if new.is_graph_output() or new.is_graph_input() or new.is_initializer():
            return False
        if new.producer() is None or new.graph is not old.graph:
            return False
        name = old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
        return True
    old.replace_all_uses_with(new)
    return True


def add_initializer(graph: ir.Graph, base: str, array: np.ndarray) -> ir.Value:
    """Register ``array`` as a new initializer named after ``base`` (made unique)."""
    name = base
    n = 0
    while name in graph.initializers:
        n += 1
        name = f"{base}_{n}"
    # np.ascontiguousarray would turn a 0-d array into a 1-d one.
    array = array if array.flags.c_contiguous else array.copy(order="C")
    tensor = ir.tensor(array, name=name)
    value = ir.Value(
        name=name,
        shape=ir.Shape(array.shape),
        type=ir.TensorType(tensor.dtype),
        const_value=tensor,
    )
    graph.register_initializer(value)
    return value


def remove_nodes(graph: ir.Graph, nodes: list[ir.Node]) -> None:
    """Detach ``nodes`` from their inputs and remove them (their outputs must be unused)."""
    for node in nodes:
        for i in range(len(node.inputs)):
            node.replace_input_with(i, None)
    graph.remove(nodes)


def has_subgraph(node: ir.Node) -> bool:
    return any(
        a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
        for a in node.attributes.values()
        if isinstance(a, ir.Attr)
    )


def int_list_attr(node: ir.Node, name: str) -> list[int] | None:
    attr = node.attributes.get(name)
    if attr is None or not isinstance(attr, ir.Attr) or attr.is_ref():
        return None
    return [int(v) for v in attr.value]


def int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    if attr is None or not isinstance(attr, ir.Attr) or attr.is_ref():
        return default
    return int(attr.value)


def float_attr(node: ir.Node, name: str, default: float) -> float:
    attr = node.attributes.get(name)
    if attr is None or not isinstance(attr, ir.Attr) or attr.is_ref():
        return default
    return float(attr.value)
