"""Identity and inference Dropout elimination keeps output names and leaves training Dropout."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_identity_and_inference_dropout_are_removed():
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Dropout", ["a"], ["b"]),
        helper.make_node("Relu", ["b"], ["y"]),
    ]
    model = build(nodes, [_vi("x", [4])], [_vi("y", [4])])
    ir_model, report = optimized(model, level=1)
    assert op_types(ir_model) == ["Relu"]
    assert report.changes["identity"] == 2
    same_as_unoptimized(model, {"x": np.array([-1, 2, -3, 4], np.float32)})


def test_identity_producing_a_graph_output_keeps_the_output_name():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])]
    model = build(nodes, [_vi("x", [4])], [_vi("y", [4])])
    ir_model, _ = optimized(model, level=1)
    assert op_types(ir_model) == ["Relu"]
    assert [v.name for v in ir_model.graph.outputs] == ["y"]


def test_identity_from_graph_input_to_graph_output_stays():
    model = build([helper.make_node("Identity", ["x"], ["y"])], [_vi("x", [4])], [_vi("y", [4])])
    ir_model, _ = optimized(model, level=1)
    assert op_types(ir_model) == ["Identity"]


def test_dropout_whose_mask_is_read_stays():
    nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"])]
    model = build(nodes, [_vi("x", [4])], [_vi("y", [4]), _vi("mask", [4], TensorProto.BOOL)])
    ir_model, _ = optimized(model, level=1)
    assert op_types(ir_model) == ["Dropout"]
