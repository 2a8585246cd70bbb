"""Common subexpression elimination merges identical nodes, never random ones."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_identical_nodes_are_computed_once():
    nodes = [
        helper.make_node("Softmax", ["x"], ["a"], axis=-1),
        helper.make_node("Softmax", ["x"], ["b"], axis=-1),
        helper.make_node("Softmax", ["x"], ["c"], axis=0),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Add", ["s", "c"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    ir_model, report = optimized(model, level=1)
    assert op_types(ir_model).count("Softmax") == 2
    assert report.changes["cse"] == 1
    same_as_unoptimized(model, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})


def test_random_nodes_are_not_merged():
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["a"]),
        helper.make_node("RandomNormalLike", ["x"], ["b"]),
        helper.make_node("Sub", ["a", "b"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [3])], [_vi("y", [3])])
    ir_model, _ = optimized(model, level=1)
    assert op_types(ir_model).count("RandomNormalLike") == 2


def test_duplicates_that_are_both_graph_outputs_keep_both_names():
    nodes = [helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"])]
    model = build(nodes, [_vi("x", [3])], [_vi("a", [3]), _vi("b", [3])])
    ir_model, _ = optimized(model, level=1)
    assert [v.name for v in ir_model.graph.outputs] == ["a", "b"]
