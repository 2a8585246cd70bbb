"""Conv + BatchNormalization folding: an inference BatchNormalization after a Conv with constant
weights is a per-channel scale and shift, folded into the Conv's weights and bias."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from tessera.optimizer._rewrite import (
    add_initializer,
    constant_of,
    float_attr,
    graph_input_ids,
    remove_nodes,
    replace_value,
    single_user,
)


def fold_conv_batchnorm(graph: ir.Graph) -> int:
    """Fold each BatchNormalization whose only input producer is a Conv it alone reads."""
    overridable = graph_input_ids(graph)
    folded = 0
    for bn in list(graph):
        if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx"):
            continue
        if len(bn.outputs) != 1 or len(bn.inputs) != 5:
            continue  # training mode outputs running statistics
        conv = bn.inputs[0].producer() if bn.inputs[0] is not None else None
        if conv is None or conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
            continue
        if single_user(conv.outputs[0]) is not bn:
            continue
        weight = constant_of(conv.inputs[1], overridable)
        bias = constant_of(conv.inputs[2], overridable) if len(conv.inputs) > 2 else None
        if weight is None or weight.dtype.kind != "f":
            continue
        if len(conv.inputs) > 2 and conv.inputs[2] is not None and bias is None:
            continue
        params = [constant_of(v, overridable) for v in bn.inputs[1:]]
        if any(p is None for p in params):
            continue
        scale, shift, mean, var = (p.astype(np.float64) for p in params)
        channels = weight.shape[0]
        if any(p.shape != (channels,) for p in (scale, shift, mean, var)):
            continue
        factor = scale / np.sqrt(var + float_attr(bn, "epsilon", 1e-5))
        new_weight = (weight * factor.reshape((channels,) + (1,) * (weight.ndim - 1))).astype(
            weight.dtype
        )
        base = bias.astype(np.float64) if bias is not None else np.zeros(channels)
        new_bias = ((base - mean) * factor + shift).astype(weight.dtype)
        stem = conv.name or conv.outputs[0].name or "conv"
        w_value = add_initializer(graph, f"{stem}_bn_weight", new_weight)
        b_value = add_initializer(graph, f"{stem}_bn_bias", new_bias)
        if not replace_value(bn.outputs[0], conv.outputs[0]):
            continue
        conv.replace_input_with(1, w_value)
        if len(conv.inputs) > 2:
            conv.replace_input_with(2, b_value)
        else:
            conv.resize_inputs(3)
            conv.replace_input_with(2, b_value)
        remove_nodes(graph, [bn])
        folded += 1
    return folded
