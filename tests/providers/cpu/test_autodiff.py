"""Gradient (ai.onnx.preview.training): reverse-mode results against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import tessera


def _gradient_model(nodes, inputs, y, xs, outputs):
    graph = helper.make_graph(
        [
            *nodes,
            helper.make_node(
                "Gradient",
                xs,
                [f"d_{x}" for x in xs],
                domain="ai.onnx.preview.training",
                xs=xs,
                y=y,
            ),
        ],
        "g",
        inputs,
        outputs + [helper.make_tensor_value_info(f"d_{x}", TensorProto.FLOAT, None) for x in xs],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("ai.onnx.preview.training", 1),
        ],
    )
    return model.SerializeToString()


def test_gradient_through_matmul_and_broadcast_add(rng):
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["h"]),
        helper.make_node("Add", ["h", "bias"], ["s"]),
        helper.make_node("Mul", ["s", "s"], ["y"]),
    ]
    inputs = [
        helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4]),
        helper.make_tensor_value_info("bias", TensorProto.FLOAT, [4]),
    ]
    model = _gradient_model(
        nodes,
        inputs,
        "y",
        ["a", "w", "bias"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    a = rng.standard_normal((2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    _, da, dw, dbias = tessera.InferenceSession(model).run(None, {"a": a, "w": w, "bias": bias})
    g = 2 * (a @ w + bias)  # dy/ds for y = s*s, summed over all outputs
    np.testing.assert_allclose(da, g @ w.T, rtol=1e-5)
    np.testing.assert_allclose(dw, a.T @ g, rtol=1e-5)
    np.testing.assert_allclose(dbias, g.sum(axis=0), rtol=1e-5)
    assert dbias.shape == (4,)


def test_gradient_of_an_op_without_a_rule_is_a_clear_error():
    nodes = [helper.make_node("Floor", ["a"], ["y"])]
    inputs = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])]
    model = _gradient_model(
        nodes, inputs, "y", ["a"], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    )
    with pytest.raises(tessera.InvalidGraph, match="no gradient rule for node 'Floor_0'"):
        tessera.InferenceSession(model)
