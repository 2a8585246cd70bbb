"""Identity and inference-mode Dropout elimination: readers of the output read the input."""

from __future__ import annotations

import onnx_ir as ir

from tessera.optimizer._rewrite import graph_input_ids, remove_nodes, replace_value, scalar_of


def _is_inference_dropout(node: ir.Node, overridable: set[int]) -> bool:
    if len(node.outputs) > 1 and node.outputs[1].uses():
        return False  # the mask is read
    if len(node.outputs) > 1 and node.outputs[1].is_graph_output():
        return False
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is None:
        return True
    flag = scalar_of(training, overridable)
    return flag is not None and flag == 0.0


def eliminate_identities(graph: ir.Graph) -> int:
    """Remove Identity nodes and Dropouts that are no-ops at inference; returns how many.

    An output that is also a graph output keeps its name: the producer of the input takes it
    over, or the node stays when the input is itself a graph input, initializer or output.
    """
    overridable = graph_input_ids(graph)
    removed = 0
    for node in list(graph):
        if node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] is None:
            continue
        if node.op_type == "Identity":
            pass
        elif node.op_type == "Dropout" and _is_inference_dropout(node, overridable):
            pass
        else:
            continue
        source, out = node.inputs[0], node.outputs[0]
        if not replace_value(out, source):
            continue
        remove_nodes(graph, [node])
        removed += 1
    return removed
