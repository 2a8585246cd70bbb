"""Conv + BatchNormalization folding into the Conv's weights and bias."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from optimizer_support import build, op_types, optimized, same_as_unoptimized


def _vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def _conv_bn_model(with_bias: bool, extra_reader: bool = False):
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "scale": rng.uniform(0.5, 2, 4).astype(np.float32),
        "shift": rng.standard_normal(4).astype(np.float32),
        "mean": rng.standard_normal(4).astype(np.float32),
        "var": rng.uniform(0.5, 2, 4).astype(np.float32),
    }
    inits = [numpy_helper.from_array(v, k) for k, v in arrays.items()]
    conv_in = ["x", "w", "b"] if with_bias else ["x", "w"]
    nodes = [
        helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["y"], epsilon=1e-3
        ),
    ]
    outputs = [_vi("y", [1, 4, 5, 5])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        outputs.append(_vi("r", [1, 4, 5, 5]))
    return build(nodes, [_vi("x", [1, 3, 5, 5])], outputs, inits)


def test_batchnorm_after_conv_is_folded():
    feed = {"x": np.random.default_rng(1).standard_normal((1, 3, 5, 5)).astype(np.float32)}
    for with_bias in (True, False):
        model = _conv_bn_model(with_bias)
        ir_model, report = optimized(model)
        assert op_types(ir_model) == ["Conv"]
        assert report.changes["conv_bn"] == 1
        assert [v.name for v in ir_model.graph.outputs] == ["y"]
        same_as_unoptimized(model, feed, rtol=1e-4, atol=1e-5)


def test_batchnorm_is_kept_when_the_conv_output_has_other_readers():
    ir_model, _ = optimized(_conv_bn_model(True, extra_reader=True))
    assert "BatchNormalization" in op_types(ir_model)


def test_basic_level_does_not_fold_batchnorm():
    ir_model, _ = optimized(_conv_bn_model(True), level=1)
    assert "BatchNormalization" in op_types(ir_model)
