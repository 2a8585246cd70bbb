"""Memory: repeated runs and repeated session creation do not grow the process's resident set."""

from __future__ import annotations

import gc

import numpy as np
import onnx
import pytest
from conftest import make_model, tensor
from onnx import helper, numpy_helper

import tessera


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:  # resident pages; Linux, like the CI machines
        return int(fh.read().split()[1]) * 4096


def _small_model() -> bytes:
    w = numpy_helper.from_array(np.full((64, 256), 0.01, np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Softmax", ["r"], ["y"], axis=-1),
    ]
    return make_model(nodes, [tensor("x", [8, 64])], [tensor("y", [8, 256])], [w])


def test_thousand_runs_with_fixed_shapes_keep_rss_flat():
    sess = tessera.InferenceSession(_small_model())
    feeds = {"x": np.ones((8, 64), np.float32)}
    for _ in range(200):
        sess.run(None, feeds)
    gc.collect()
    before = _rss_bytes()
    for _ in range(1000):
        sess.run(None, feeds)
    gc.collect()
    growth = (_rss_bytes() - before) / before
    assert growth < 0.05, f"RSS grew {growth:.1%} over 1,000 runs"


def test_creating_and_dropping_sessions_does_not_leak():
    model = _small_model()
    feeds = {"x": np.ones((8, 64), np.float32)}

    def churn(n: int) -> None:
        for _ in range(n):
            tessera.InferenceSession(model).run(None, feeds)

    churn(50)  # warm-up: imports, kernel caches, allocator pools
    gc.collect()
    before = _rss_bytes()
    churn(200)
    gc.collect()
    grown_mib = (_rss_bytes() - before) / 2**20
    # A leaked session holds its plan and a 64 KiB weight: 200 of them take over 14 MiB.
    assert grown_mib < 8, f"RSS grew {grown_mib:.1f} MiB over 200 sessions"


@pytest.mark.parametrize("at_run_time", [False, True], ids=["shape-constant", "shape-fed"])
def test_model_asking_for_a_huge_tensor_fails_before_allocating(at_run_time):
    shape = np.array([1 << 20, 1 << 20], np.int64)  # 4 TiB of float32
    node = helper.make_node("ConstantOfShape", ["s"], ["y"], name="bomb")
    if at_run_time:
        model = make_model([node], [tensor("s", [2], onnx.TensorProto.INT64)], [tensor("y", None)])
        sess = tessera.InferenceSession(model)
        with pytest.raises(tessera.TesseraError, match=r"'bomb'.*max_tensor_bytes"):
            sess.run(None, {"s": shape})
    else:
        model = make_model([node], [], [tensor("y", None)], [numpy_helper.from_array(shape, "s")])
        with pytest.raises(tessera.TesseraError, match=r"'bomb'.*max_tensor_bytes"):
            tessera.InferenceSession(model)
