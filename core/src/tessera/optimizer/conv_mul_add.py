"""Conv / BatchNormalization + Mul / Add folding: a Mul or Add by a per-channel constant after a
Conv with constant weights is folded into the Conv's weights and bias (onnxruntime's
ConvMulFusion and ConvAddFusion), and one after an inference BatchNormalization into its scale
and bias. Exporters write a BatchNormalization, or a scale layer after one, this way (Mul by the
scale, Add of the shift); folded, the output goes straight to its activation, which a provider
can fuse, and two passes over the tensor are gone."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from tessera.optimizer._rewrite import (
    add_initializer,
    constant_of,
    graph_input_ids,
    remove_nodes,
    replace_value,
    single_user,
)


def _per_channel(array: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """``array`` as a (channels,) vector when it broadcasts against an (N, channels, ...) output
    only along the channel axis (a scalar counts); None otherwise."""
    if array.ndim > rank:
        return None
    full = (1,) * (rank - array.ndim) + array.shape
    if full[0] != 1 or full[1] not in (1, channels) or any(d != 1 for d in full[2:]):
        return None
    return np.broadcast_to(
        array.reshape(-1)[0] if full[1] == 1 else array.reshape(channels), (channels,)
    )


def fold_conv_mul_add(graph: ir.Graph) -> int:
    """Fold each Mul/Add by a per-channel constant whose other input is a Conv it alone reads."""
    overridable = graph_input_ids(graph)
    folded = 0
    for node in list(graph):
        if node.op_type not in ("Mul", "Add") or node.domain not in ("", "ai.onnx"):
            continue
        if len(node.inputs) != 2 or len(node.outputs) != 1 or None in node.inputs:
            continue
        if _fold_into_batchnorm(graph, node, overridable):
            folded += 1
            continue
        conv = next(
            (
                v.producer()
                for v in node.inputs
                if v.producer() is not None and v.producer().op_type == "Conv"
            ),
            None,
        )
        if (
            conv is None
            or conv.domain not in ("", "ai.onnx")
            or single_user(conv.outputs[0]) is not node
        ):
            continue
        other = node.inputs[1] if node.inputs[0] is conv.outputs[0] else node.inputs[0]
        if other is conv.outputs[0]:
            continue
        weight = constant_of(conv.inputs[1], overridable)
        has_bias = len(conv.inputs) > 2 and conv.inputs[2] is not None
        bias = constant_of(conv.inputs[2], overridable) if has_bias else None
        factor = constant_of(other, overridable)
        if weight is None or weight.dtype.kind != "f" or (has_bias and bias is None):
            continue
        if factor is None or factor.dtype != weight.dtype:
            continue
        channels = weight.shape[0]
        vector = _per_channel(factor, channels, weight.ndim)
        if vector is None:
            continue
        vector = vector.astype(np.float64)
        base = bias.astype(np.float64) if bias is not None else np.zeros(channels)
        stem = conv.name or conv.outputs[0].name or "conv"
        if node.op_type == "Mul":
            shape = (channels,) + (1,) * (weight.ndim - 1)
            new_weight = (weight.astype(np.float64) * vector.reshape(shape)).astype(weight.dtype)
            new_bias = (base * vector).astype(weight.dtype) if bias is not None else None
        else:
            new_weight = None
            new_bias = (base + vector).astype(weight.dtype)
        if not replace_value(node.outputs[0], conv.outputs[0]):
            continue
        if new_weight is not None:
            conv.replace_input_with(1, add_initializer(graph, f"{stem}_mul_weight", new_weight))
        if new_bias is not None:
            b_value = add_initializer(graph, f"{stem}_{node.op_type.lower()}_bias", new_bias)
            if len(conv.inputs) < 3:
                conv.resize_inputs(3)
            conv.replace_input_with(2, b_value)
        remove_nodes(graph, [node])
        folded += 1
    return folded


def _fold_into_batchnorm(graph: ir.Graph, node: ir.Node, overridable: set[int]) -> bool:
    """Fold Mul/Add ``node`` into the inference BatchNormalization feeding it, if any."""
    bn = next(
        (
            v.producer()
            for v in node.inputs
            if v.producer() is not None and v.producer().op_type == "BatchNormalization"
        ),
        None,
    )
    if bn is None or bn.domain not in ("", "ai.onnx") or len(bn.outputs) != 1:
        return False
    if len(bn.inputs) != 5 or single_user(bn.outputs[0]) is not node:
        return False
    other = node.inputs[1] if node.inputs[0] is bn.outputs[0] else node.inputs[0]
    if other is bn.outputs[0]:
        return False
    scale = constant_of(bn.inputs[1], overridable)
    shift = constant_of(bn.inputs[2], overridable)
    factor = constant_of(other, overridable)
    if scale is None or shift is None or factor is None or scale.dtype.kind != "f":
        return False
    if factor.dtype != scale.dtype or scale.ndim != 1 or shift.shape != scale.shape:
        return False
    if bn.outputs[0].shape is None:
        return False  # the broadcast of a (C, 1, 1) factor depends on the output's rank
    vector = _per_channel(factor, scale.shape[0], len(bn.outputs[0].shape))
    if vector is None:
        return False
    vector = vector.astype(np.float64)
    stem = bn.name or bn.outputs[0].name or "batchnorm"
    if node.op_type == "Mul":
        new_scale = (scale.astype(np.float64) * vector).astype(scale.dtype)
        new_shift = (shift.astype(np.float64) * vector).astype(shift.dtype)
    else:
        new_scale = None
        new_shift = (shift.astype(np.float64) + vector).astype(shift.dtype)
    if not replace_value(node.outputs[0], bn.outputs[0]):
        return False
    if new_scale is not None:
        bn.replace_input_with(1, add_initializer(graph, f"{stem}_mul_scale", new_scale))
    bn.replace_input_with(
        2, add_initializer(graph, f"{stem}_{node.op_type.lower()}_bias", new_shift)
    )
    remove_nodes(graph, [node])
    return True
