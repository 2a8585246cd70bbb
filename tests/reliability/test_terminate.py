"""RunOptions.terminate stops a run in progress, as in onnxruntime, even inside an endless Loop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from onnx import TensorProto, helper

import tessera


def _endless_loop_model() -> bytes:
    """A Loop with no trip count whose condition stays true: it never ends by itself."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["x_in", "one"], ["x_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["", "cond", "x"], ["y"], body=body)],
        "g",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model.SerializeToString()


FEEDS = {"cond": np.array(True), "x": np.zeros(1, np.float32)}


def test_terminate_from_another_thread_stops_an_endless_loop():
    sess = tessera.InferenceSession(_endless_loop_model(), providers=["cpu"])
    options = tessera.RunOptions()
    timer = threading.Timer(0.2, lambda: setattr(options, "terminate", True))
    timer.start()
    start = time.perf_counter()
    with pytest.raises(tessera.RuntimeFailure, match="terminate"):
        sess.run(None, FEEDS, options)
    assert time.perf_counter() - start < 30
    timer.cancel()


def test_a_terminated_options_object_stops_the_next_run_at_once_and_others_still_run():
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    stop = tessera.RunOptions()
    stop.terminate = True
    x = np.array([-1.0, 2.0], np.float32)
    with pytest.raises(tessera.RuntimeFailure, match="terminate"):
        sess.run(None, {"x": x}, stop)
    np.testing.assert_array_equal(sess.run(None, {"x": x}, tessera.RunOptions())[0], [0, 2])
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], [0, 2])
