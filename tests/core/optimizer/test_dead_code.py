"""Dead-code and unused-initializer removal, respecting values read inside subgraphs."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_nodes_no_output_depends_on_are_removed():
    nodes = [
        helper.make_node("Relu", ["x"], ["unused"]),
        helper.make_node("Exp", ["unused"], ["unused2"]),
        helper.make_node("Neg", ["x"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [3])], [_vi("y", [3])])
    ir_model, report = optimized(model, level=1)
    assert op_types(ir_model) == ["Neg"]
    assert report.changes["dead_nodes"] == 2
    same_as_unoptimized(model, {"x": np.arange(3, dtype=np.float32)})


def test_unused_initializers_are_dropped_but_overridable_ones_stay():
    inits = [
        numpy_helper.from_array(np.ones(3, np.float32), "unused"),
        numpy_helper.from_array(np.ones(3, np.float32), "overridable"),
    ]
    nodes = [helper.make_node("Neg", ["x"], ["y"])]
    model = build(nodes, [_vi("x", [3]), _vi("overridable", [3])], [_vi("y", [3])], inits)
    ir_model, _ = optimized(model, level=1)
    assert sorted(ir_model.graph.initializers) == ["overridable"]


def test_node_read_only_inside_an_if_branch_is_kept():
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["h"], ["out"])], "then", [], [_vi("out", [3])]
    )
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["out2"])], "else", [], [_vi("out2", [3])]
    )
    nodes = [
        helper.make_node("Neg", ["x"], ["h"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    model = build(nodes, [_vi("x", [3]), _vi("cond", [], TensorProto.BOOL)], [_vi("y", [3])])
    ir_model, _ = optimized(model)
    assert op_types(ir_model) == ["Neg", "If"]
    same_as_unoptimized(model, {"x": np.arange(3, dtype=np.float32), "cond": np.array(True)})
