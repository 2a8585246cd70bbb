"""Quick checks of the example provider that need no conformance data."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

import tessera


def _model() -> bytes:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["y"]),
    ]
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", f, [2, 3]),
            helper.make_tensor_value_info("w", f, [3, 4]),
        ],
        [helper.make_tensor_value_info("y", f, [2, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_example_runs_its_ops_and_cpu_runs_the_rest():
    session = tessera.InferenceSession(_model(), providers=["example", "cpu"])
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    (y,) = session.run(None, {"x": x, "w": w})
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-np.maximum(x @ w, 0))), rtol=1e-5)
    assert sorted(set(session.assignments.values())) == [
        "CPUExecutionProvider",
        "ExampleExecutionProvider",
    ]
