"""Per-channel Mul/Add folding into the Conv or BatchNormalization before them."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _model(first: str, tail, factor_shape=(4, 1, 1), extra_reader=False, with_bias=True):
    """x -> Conv or BatchNormalization -> ``tail`` (Mul/Add by constants of ``factor_shape``)."""
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "scale": rng.uniform(0.5, 2, 4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.5, 2, 4).astype(np.float32),
    }
    if first == "Conv":
        nodes = [helper.make_node("Conv", ["x", "w", "b"] if with_bias else ["x", "w"], ["h0"])]
        in_shape, out_shape = [1, 3, 5, 5], [1, 4, 3, 3]
    else:
        nodes = [helper.make_node("BatchNormalization", ["x", "scale", "b", "mean", "var"], ["h0"])]
        in_shape = out_shape = [1, 4, 5, 5]
    for i, op in enumerate(tail):
        arrays[f"k{i}"] = rng.uniform(0.5, 2, factor_shape).astype(np.float32)
        nodes.append(helper.make_node(op, [f"h{i}", f"k{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("Relu", [f"h{len(tail)}"], ["y"]))
    outputs = [_vi("y", out_shape)]
    if extra_reader:
        outputs.append(_vi("h0", out_shape))
    inits = [numpy_helper.from_array(v, k) for k, v in arrays.items()]
    feed = {"x": np.random.default_rng(1).standard_normal(in_shape).astype(np.float32)}
    return build(nodes, [_vi("x", in_shape)], outputs, inits), feed


@pytest.mark.parametrize("first", ["Conv", "BatchNormalization"])
@pytest.mark.parametrize("factor_shape", [(4, 1, 1), (1, 4, 1, 1), (1,), ()])
def test_mul_then_add_fold_into_the_node_before_them(first, factor_shape):
    model, feed = _model(first, ("Mul", "Add"), factor_shape)
    ir_model, report = optimized(model)
    assert op_types(ir_model) == [first, "Relu"]
    assert report.changes["conv_mul_add"] == 2
    same_as_unoptimized(model, feed, rtol=1e-5, atol=1e-5)


def test_a_conv_without_bias_gets_one_from_an_add():
    model, feed = _model("Conv", ("Mul", "Add"), with_bias=False)
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["Conv", "Relu"]
    same_as_unoptimized(model, feed)


def test_nothing_folds_when_the_output_has_other_readers():
    model, feed = _model("Conv", ("Mul",), extra_reader=True)
    ir_model, report = optimized(model)
    assert "Mul" in op_types(ir_model) and report.changes["conv_mul_add"] == 0
    same_as_unoptimized(model, feed)


def test_a_constant_along_a_spatial_axis_does_not_fold():
    model, feed = _model("Conv", ("Mul",), factor_shape=(1, 1, 3))
    ir_model, _ = optimized(model)
    assert "Mul" in op_types(ir_model)
    same_as_unoptimized(model, feed)


def test_basic_level_leaves_them():
    model, _ = _model("Conv", ("Mul", "Add"))
    ir_model, _ = optimized(model, level=1)
    assert op_types(ir_model) == ["Conv", "Mul", "Add", "Relu"]
