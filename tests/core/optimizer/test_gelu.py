"""Gelu recognition from the erf pattern, only where Gelu exists (opset 20+)."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _gelu_model(opset: int, half_first: bool):
    inits = [
        numpy_helper.from_array(np.array(math.sqrt(2.0), np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Div", ["x", "sqrt2"], ["s"]),
        helper.make_node("Erf", ["s"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["a"]),
    ]
    if half_first:
        nodes += [
            helper.make_node("Mul", ["x", "half"], ["h"]),
            helper.make_node("Mul", ["h", "a"], ["y"]),
        ]
    else:
        nodes += [
            helper.make_node("Mul", ["x", "a"], ["m"]),
            helper.make_node("Mul", ["m", "half"], ["y"]),
        ]
    return build(nodes, [_vi("x", [2, 6])], [_vi("y", [2, 6])], inits, opset=opset)


def test_erf_gelu_pattern_becomes_gelu_at_opset_20():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    for half_first in (False, True):
        model = _gelu_model(20, half_first)
        ir_model, report = optimized(model)
        assert op_types(ir_model) == ["Gelu"], half_first
        assert report.changes["gelu"] == 1
        same_as_unoptimized(model, {"x": x})


def test_gelu_pattern_is_kept_before_opset_20():
    ir_model, _ = optimized(_gelu_model(17, False))
    assert "Gelu" not in op_types(ir_model)
    assert "Erf" in op_types(ir_model)


def _tanh_gelu_model(opset: int):
    consts = {
        "three": 3.0,
        "c": 0.044715,
        "k": math.sqrt(2 / math.pi),
        "one": 1.0,
        "half": 0.5,
    }
    inits = [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in consts.items()]
    nodes = [
        helper.make_node("Pow", ["x", "three"], ["cube"]),
        helper.make_node("Mul", ["cube", "c"], ["cc"]),
        helper.make_node("Add", ["x", "cc"], ["inner"]),
        helper.make_node("Mul", ["inner", "k"], ["scaled"]),
        helper.make_node("Tanh", ["scaled"], ["t"]),
        helper.make_node("Add", ["t", "one"], ["a"]),
        helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["y"]),
    ]
    return build(nodes, [_vi("x", [2, 6])], [_vi("y", [2, 6])], inits, opset=opset)


def test_tanh_gelu_pattern_becomes_gelu_with_tanh_approximation():
    model = _tanh_gelu_model(20)
    ir_model, report = optimized(model)
    assert op_types(ir_model) == ["Gelu"]
    assert ir_model.graph.node(0).attributes["approximate"].value == "tanh"
    assert report.changes["gelu"] == 1
    same_as_unoptimized(model, {"x": np.linspace(-4, 4, 12, dtype=np.float32).reshape(2, 6)})


def test_tanh_pattern_with_other_cubic_coefficient_is_left_alone():
    model = _tanh_gelu_model(20)
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.array(0.5, np.float32), "c"))
    ir_model, _ = optimized(model)
    assert "Gelu" not in op_types(ir_model)
