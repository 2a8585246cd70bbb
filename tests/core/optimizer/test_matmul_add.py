"""MatMul + Add to Gemm, only when Gemm's 2-D shape rules hold."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(a_shape, bias_shape):
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(bias_shape).astype(np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["bias", "h"], ["y"]),
    ]
    return build(nodes, [_vi("x", a_shape)], [_vi("y", [*a_shape[:-1], 5])], inits)


def test_2d_matmul_plus_bias_becomes_gemm():
    for bias_shape in ((5,), (1, 5), (3, 5)):
        model = _model([3, 4], bias_shape)
        ir_model, report = optimized(model)
        assert op_types(ir_model) == ["Gemm"], bias_shape
        assert report.changes["matmul_add"] == 1
        assert [v.name for v in ir_model.graph.outputs] == ["y"]
        x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
        same_as_unoptimized(model, {"x": x})


def test_3d_matmul_is_not_turned_into_gemm():
    ir_model, _ = optimized(_model([2, 3, 4], (5,)))
    assert op_types(ir_model) == ["MatMul", "Add"]


def test_bias_that_does_not_broadcast_to_the_result_is_not_fused():
    ir_model, _ = optimized(_model(["m", 4], (2, 5)))
    assert op_types(ir_model) == ["MatMul", "Add"]
