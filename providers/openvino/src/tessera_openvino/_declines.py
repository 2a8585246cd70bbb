"""Nodes OpenVINO accepts but runs differently from ONNX, found by the conformance suite.

``Core.query_model`` says what OpenVINO *can* run; these rules decline what it would run wrong,
so the node falls back to the next provider instead of giving a wrong answer. Each rule names
the onnx backend test that shows the difference (OpenVINO 2026.4, CPU plugin).
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.provider import NodeInfo

# Types OpenVINO does not carry through a compiled model as NumPy holds them: sub-byte and 8-bit
# floats and bfloat16 (test_cast_*), and float64, which the CPU plugin computes in float32 so
# large values overflow to inf (test_cast_DOUBLE_to_FLOAT, test_operator_add_broadcast).
_UNSUPPORTED_TYPES = (
    "tensor(string)",
    "tensor(double)",
    "tensor(bfloat16)",
    "tensor(float8",
    "tensor(float4",
    "tensor(int4)",
    "tensor(uint4)",
    "tensor(int2)",
    "tensor(uint2)",
    "seq(",
    "map(",
    "optional(",
)

# Ops whose float16 results are exact whatever precision computes them (moves, compares, casts).
# Other float16 arithmetic runs in float32 inside a compiled subgraph and is rounded only at its
# boundary, a few ulps away from ONNX's step-by-step float16 (test_attention_4d_causal_fp16_expanded).
_F16_EXACT = frozenset(
    "Abs Cast CastLike Concat Constant ConstantOfShape Equal Expand Flatten Gather GatherElements "
    "GatherND Greater GreaterOrEqual Identity IsInf IsNaN Less LessOrEqual Max MaxPool Min Neg "
    "Pad Relu Reshape Shape Sign Size Slice Split Squeeze Tile Transpose Unsqueeze Where".split()
)

_WHOLE_OPS = {
    "Attention": "differs on local windows, past key/values and biases (test_attention_local_window)",
    "BitShift": "differs for shifts >= the bit width, negative shifts and overflow (test_bitshift_*)",
    "DFT": "gives wrong values and shapes for onesided and inverse transforms (test_dft_*)",
    "QuantizeLinear": "rounds some ties differently (test_dynamicquantizelinear_expanded)",
    "DynamicQuantizeLinear": "rounds some ties differently (test_dynamicquantizelinear)",
    "NonMaxSuppression": "keeps boxes at the IoU threshold (test_nonmaxsuppression_iou_threshold_boundary)",
    "TopK": "orders tied values differently (test_top_k_same_values)",
}


def _attr(node: NodeInfo, name: str, default: object = None) -> object:
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def _float_reduce_extreme(node: NodeInfo) -> str | None:
    if node.input_types and node.input_types[0] in ("tensor(float)", "tensor(float16)"):
        return "starts from the lowest finite float, so all -inf rows give -3.4e38, not -inf (test_reduce_max_empty_set)"
    return None


def _recurrent(node: NodeInfo) -> str | None:
    if _attr(node, "layout", 0) == 1:
        return "differs with layout=1 (test_lstm_batchwise)"
    if node.op_type == "LSTM" and len(node.inputs) > 7 and node.inputs[7]:
        return "differs with peephole weights (test_lstm_with_peepholes)"
    return None


def _resize(node: NodeInfo) -> str | None:
    if _attr(node, "mode", "nearest") == "cubic":
        return "differs in cubic mode (test_resize_upsample_scales_cubic_A_n0p5_exclude_outside)"
    if _attr(node, "antialias", 0):
        return "differs with antialias (test_resize_downsample_scales_linear_antialias)"
    if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return "sizes outputs differently with keep_aspect_ratio_policy (test_resize_*_not_larger)"
    if _attr(node, "coordinate_transformation_mode", "half_pixel") == "align_corners":
        return "differs with align_corners (test_resize_downsample_scales_linear_align_corners)"
    return None


def _global_average_pool(node: NodeInfo) -> str | None:
    shape = node.input_shapes[0] if node.input_shapes else None
    if shape is None or len(shape) < 3:
        # Claimed GlobalAveragePools are rewritten (``_lowering``) so that every channel is
        # averaged in the same order; the rewrite restores the output's rank, so it needs it.
        return "is claimed only with an input of known rank >= 3 (its rewrite needs the rank)"
    return None


_RULES: dict[str, Callable[[NodeInfo], str | None]] = {
    "ReduceMax": _float_reduce_extreme,
    "ReduceMin": _float_reduce_extreme,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "RNN": _recurrent,
    "Resize": _resize,
    "GlobalAveragePool": _global_average_pool,
    "MaxPool": lambda n: (
        "sizes ceil_mode outputs differently (test_maxpool_2d_ceil_output_size_reduce_by_one)"
        if _attr(n, "ceil_mode", 0)
        else None
    ),
    "RoiAlign": lambda n: (
        "differs with mode=max (test_roialign_mode_max)"
        if _attr(n, "mode", "avg") == "max"
        else None
    ),
    "SpaceToDepth": lambda n: (
        "supports only DCR order (test_spacetodepth_crd_mode_example)"
        if _attr(n, "mode", "DCR") != "DCR"
        else None
    ),
    "Tile": lambda n: (
        "differs when repeats is a runtime input (test_tile)"
        if 1 not in n.constant_inputs
        else None
    ),
}


def decline_reason(node: NodeInfo) -> str | None:
    """Why ``node`` must not be claimed even though OpenVINO would accept it, or None."""
    for t in (*node.input_types, *node.output_types):
        if t and t.startswith(_UNSUPPORTED_TYPES):
            return f"OpenVINO does not keep {t} values exact"
    if "tensor(float16)" in (*node.input_types, *node.output_types) and (
        node.op_type not in _F16_EXACT
    ):
        return "OpenVINO computes float16 arithmetic in float32 and rounds only at the boundary"
    for shape in node.input_shapes:
        if shape and 0 in shape:
            return (
                "OpenVINO reduces and indexes empty tensors differently (test_reduce_max_empty_set)"
            )
    if node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type in _WHOLE_OPS:
        return f"OpenVINO's {node.op_type} {_WHOLE_OPS[node.op_type]}"
    rule = _RULES.get(node.op_type)
    why = rule(node) if rule else None
    return f"OpenVINO's {node.op_type} {why}" if why else None
