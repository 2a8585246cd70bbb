"""LayerNormalization recognition from the decomposed pattern, from opset 17 on."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _layer_norm_model(opset: int):
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "beta"),
    ]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([-1], np.int64), "axes"))
        mean = lambda i, o: helper.make_node("ReduceMean", [i, "axes"], [o])  # noqa: E731
    else:
        mean = lambda i, o: helper.make_node("ReduceMean", [i], [o], axes=[-1])  # noqa: E731
    nodes = [
        mean("x", "mu"),
        helper.make_node("Sub", ["x", "mu"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        mean("d2", "var"),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["s"]),
        helper.make_node("Add", ["s", "beta"], ["y"]),
    ]
    return build(nodes, [_vi("x", [2, 3, 8])], [_vi("y", [2, 3, 8])], inits, opset=opset)


def test_decomposed_layer_norm_becomes_one_node():
    x = np.random.default_rng(3).standard_normal((2, 3, 8)).astype(np.float32)
    for opset in (17, 18):
        model = _layer_norm_model(opset)
        ir_model, report = optimized(model)
        assert op_types(ir_model) == ["LayerNormalization"], opset
        assert report.changes["layer_norm"] == 1
        assert [v.name for v in ir_model.graph.outputs] == ["y"]
        same_as_unoptimized(model, {"x": x})


def test_layer_norm_is_not_introduced_before_opset_17():
    ir_model, _ = optimized(_layer_norm_model(16))
    assert "LayerNormalization" not in op_types(ir_model)


def test_pattern_with_an_intermediate_read_elsewhere_is_left_alone():
    model = _layer_norm_model(17)
    model.graph.output.append(_vi("sd", [2, 3, 1]))
    ir_model, _ = optimized(model)
    assert "LayerNormalization" not in op_types(ir_model)
