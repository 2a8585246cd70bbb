"""SessionOptions.enable_cpu_mem_arena reaches the CPU provider, which keeps freed memory."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest
from onnx import TensorProto, helper

import tessera
from tessera_cpu import _arena


def _relu_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _cpu_options(sess) -> dict:
    return sess.get_provider_options()["CPUExecutionProvider"]


def test_the_session_option_reaches_the_cpu_provider():
    opts = tessera.SessionOptions()
    opts.enable_cpu_mem_arena = False
    off = tessera.InferenceSession(_relu_model(), opts, providers=["cpu"])
    assert _cpu_options(off)["enable_cpu_mem_arena"] == "False"
    on = tessera.InferenceSession(_relu_model(), providers=["cpu"])
    assert _cpu_options(on)["enable_cpu_mem_arena"] == "True"
    given = tessera.InferenceSession(
        _relu_model(), opts, providers=[("cpu", {"enable_cpu_mem_arena": True})]
    )
    assert _cpu_options(given)["enable_cpu_mem_arena"] == "True"


def _growing_concat_model() -> bytes:
    """Relu and Concat four times over: arrays of four sizes, as in a DenseNet block."""
    nodes, prev = [], "x"
    for i in range(4):
        nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
        nodes.append(helper.make_node("Concat", [prev, f"r{i}"], [f"c{i}"], axis=1))
        prev = f"c{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 56, 56])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_with_the_arena_runs_stop_page_faulting_their_outputs():
    # Without the arena this model page-faults about 2,200 times a run (measured); the arena is
    # process-wide, so this test can only check the enabled state.
    sess = tessera.InferenceSession(_growing_concat_model(), providers=["cpu"])
    assert _arena.enable()
    x = np.random.default_rng(0).standard_normal((1, 32, 56, 56)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"x": x})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        sess.run(None, {"x": x})
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20 < 200
