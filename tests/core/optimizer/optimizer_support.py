"""Helpers for the optimizer tests: build a model, optimize it, compare outputs to level 0.

Not named conftest.py, so the `from conftest import ...` of other test folders still works.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

import tessera
from tessera._model import prepare_model
from tessera._providers import resolve
from tessera.optimizer import optimize


def build(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "opt", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def optimized(model: onnx.ModelProto, level: int = 99, **kwargs):
    """The onnx-ir model after the optimizer ran on it with the CPU provider's kernels."""
    ir_model = prepare_model(model)
    providers = [p for _, p, _ in resolve(["cpu"], None, True)]
    report = optimize(ir_model, level, providers=providers, **kwargs)
    return ir_model, report


def op_types(ir_model) -> list[str]:
    return [n.op_type for n in ir_model.graph]


def run(model: onnx.ModelProto, feed: dict, level: int) -> list[np.ndarray]:
    opts = tessera.SessionOptions()
    opts.graph_optimization_level = level
    return tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"]).run(
        None, feed
    )


def same_as_unoptimized(
    model: onnx.ModelProto, feed: dict, rtol: float = 1e-5, atol: float = 1e-5
) -> None:
    """Assert that outputs at ORT_ENABLE_ALL equal those at ORT_DISABLE_ALL."""
    expected = run(model, feed, 0)
    actual = run(model, feed, 99)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
