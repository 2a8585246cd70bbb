"""SessionOptions.max_tensor_bytes: absurd allocations fail with the node and size, not MemoryError."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_model, tensor
from onnx import TensorProto, helper, numpy_helper

import tessera

HUGE = np.array([1 << 22, 1 << 22], np.int64)  # 2^44 elements


def test_static_huge_constant_of_shape_is_refused_at_creation():
    model = make_model(
        [helper.make_node("ConstantOfShape", ["s"], ["y"], name="huge")],
        [],
        [tensor("y", None)],
        [numpy_helper.from_array(HUGE, "s")],
    )
    with pytest.raises(
        tessera.InvalidGraph, match=r"'huge' .*64.0 TiB, over the session limit of 8.0 GiB"
    ):
        tessera.InferenceSession(model)


@pytest.mark.parametrize(
    ("node", "feeds"),
    [
        (helper.make_node("ConstantOfShape", ["s"], ["y"], name="n"), {"s": HUGE}),
        (
            helper.make_node("Expand", ["x", "s"], ["y"], name="n"),
            {"x": np.ones(1, np.float32), "s": HUGE},
        ),
        (
            helper.make_node("Tile", ["x", "s"], ["y"], name="n"),
            {"x": np.ones((1, 1), np.float32), "s": HUGE},
        ),
    ],
)
def test_data_dependent_huge_allocations_fail_at_run_naming_the_node(node, feeds):
    inputs = [
        tensor(name, list(v.shape), TensorProto.INT64 if v.dtype == np.int64 else TensorProto.FLOAT)
        for name, v in feeds.items()
    ]
    sess = tessera.InferenceSession(make_model([node], inputs, [tensor("y", None)]))
    with pytest.raises(tessera.InvalidArgument, match=r"node 'n' .*over the session limit"):
        sess.run(None, feeds)


def test_limit_is_configurable():
    opts = tessera.SessionOptions()
    opts.max_tensor_bytes = 1024
    model = make_model(
        [helper.make_node("ConstantOfShape", ["s"], ["y"], name="n")],
        [tensor("s", [1], TensorProto.INT64)],
        [tensor("y", None)],
    )
    sess = tessera.InferenceSession(model, opts)
    assert sess.run(None, {"s": np.array([256], np.int64)})[0].shape == (256,)
    with pytest.raises(tessera.InvalidArgument, match=r"1\.0 KiB"):
        sess.run(None, {"s": np.array([257], np.int64)})
