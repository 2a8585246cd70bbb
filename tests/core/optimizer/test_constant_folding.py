"""Constant folding: constant subgraphs become initializers; random ops, overridable
initializers and oversized results are left alone."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized

from tessera.optimizer.constant_folding import fold_constants


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_constant_chain_folds_into_one_initializer():
    a = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "a")
    nodes = [
        helper.make_node("Transpose", ["a"], ["t"]),
        helper.make_node("Mul", ["t", "t"], ["sq"]),
        helper.make_node("MatMul", ["x", "sq"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [4, 3])], [_vi("y", [4, 2])], [a])
    ir_model, report = optimized(model)
    assert op_types(ir_model) == ["MatMul"]
    assert report.changes["constant_folding"] == 2
    folded = ir_model.graph.node(0).inputs[1].const_value.numpy()
    np.testing.assert_array_equal(folded, (np.arange(6).reshape(2, 3).T ** 2).astype(np.float32))
    same_as_unoptimized(model, {"x": np.ones((4, 3), np.float32)})


def test_shape_chain_of_static_value_folds_to_constant_reshape():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["d0"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "zero1"], ["d0u"]),
        helper.make_node("Concat", ["d0u", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "zero1"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    model = build(nodes, [_vi("x", [2, 3, 4])], [_vi("y", [2, 12])], inits)
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["Reshape"]
    np.testing.assert_array_equal(ir_model.graph.node(0).inputs[1].const_value.numpy(), [2, -1])
    same_as_unoptimized(model, {"x": np.arange(24, dtype=np.float32).reshape(2, 3, 4)})


def test_shape_of_symbolic_value_is_not_folded():
    nodes = [helper.make_node("Shape", ["x"], ["y"])]
    model = build(nodes, [_vi("x", ["n", 3])], [_vi("y", [2], TensorProto.INT64)])
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["Shape"]


def test_random_ops_are_never_folded():
    nodes = [
        helper.make_node("RandomUniform", [], ["r"], shape=[2, 2]),
        helper.make_node("Add", ["x", "r"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [2, 2])], [_vi("y", [2, 2])])
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["RandomUniform", "Add"]


def test_initializer_that_is_also_a_graph_input_is_not_treated_as_constant():
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    nodes = [helper.make_node("Neg", ["w"], ["nw"]), helper.make_node("Add", ["x", "nw"], ["y"])]
    model = build(nodes, [_vi("x", [3]), _vi("w", [3])], [_vi("y", [3])], [w])
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["Neg", "Add"]


def test_result_larger_than_the_cap_is_not_materialised():
    shape = numpy_helper.from_array(np.array([2500, 2000], np.int64), "shape")
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["big"]),
        helper.make_node("Add", ["x", "big"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [2500, 2000])], [_vi("y", [2500, 2000])], [shape])
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["ConstantOfShape", "Add"]
    ir_model, _ = optimized(model, max_fold_elements=6_000_000)
    assert op_types(ir_model) == ["Add"]


def test_without_an_evaluator_only_shape_ops_fold():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Neg", ["s"], ["y"])]
    model = build(nodes, [_vi("x", [2, 5])], [_vi("y", [2], TensorProto.INT64)])
    from tessera._model import prepare_model

    ir_model = prepare_model(model)
    assert fold_constants(ir_model.graph, None) == 1
    assert op_types(ir_model) == ["Neg"]


def test_folding_keeps_graph_output_names():
    c = numpy_helper.from_array(np.ones(2, np.float32), "c")
    nodes = [helper.make_node("Neg", ["c"], ["y"]), helper.make_node("Add", ["x", "y"], ["z"])]
    model = build(nodes, [_vi("x", [2])], [_vi("y", [2]), _vi("z", [2])], [c])
    ir_model, _ = optimized(model)
    assert [v.name for v in ir_model.graph.outputs] == ["y", "z"]
