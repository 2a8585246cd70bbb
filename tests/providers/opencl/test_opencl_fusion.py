"""Elementwise-chain fusion on OpenCL: one generated kernel per chain, the same numbers as the
unfused nodes, and chains that stop where an intermediate value must materialise."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _opencl_support import cpu_session, model, unavailable, vi
from onnx import helper, numpy_helper

import tessera

_REASON = unavailable()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

N = helper.make_node
F, B, I64, I32 = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.BOOL,
    onnx.TensorProto.INT64,
    onnx.TensorProto.INT32,
)
rng = np.random.default_rng(11)


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _session(data: bytes, fuse: bool = True) -> tessera.InferenceSession:
    opts = tessera.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return tessera.InferenceSession(data, opts, providers=[("opencl", {"fuse_elementwise": fuse})])


def _launches(sess: tessera.InferenceSession, feeds: dict) -> tuple[list[np.ndarray], int]:
    """The outputs of one run and the kernels it launched (after a warm-up run)."""
    sess.run(None, feeds)
    (provider,) = sess._providers
    before = provider.rt.launches
    out = sess.run(None, feeds)
    return out, provider.rt.launches - before


def _compiled_steps(sess: tessera.InferenceSession) -> list[tuple[str, ...]]:
    return [info.nodes for info in sess._plan.step_info if info.kind == "compiled"]


def _gelu_bias_model() -> bytes:
    """Erf-GELU as exporters write it, plus a broadcast bias: six nodes, one chain."""
    nodes = [
        N("Div", ["x", "r2"], ["d"], name="div"),
        N("Erf", ["d"], ["e"], name="erf"),
        N("Add", ["e", "one"], ["a"], name="add1"),
        N("Mul", ["x", "a"], ["m"], name="mul"),
        N("Mul", ["m", "half"], ["g"], name="half"),
        N("Add", ["g", "b"], ["y"], name="bias"),
    ]
    consts = [
        _const("r2", np.float32(np.sqrt(2))),
        _const("one", np.float32(1)),
        _const("half", np.float32(0.5)),
    ]
    return model(nodes, [vi("x", [2, 3, 8]), vi("b", [8])], [vi("y", [2, 3, 8])], consts)


def test_a_chain_of_six_nodes_launches_one_kernel_and_matches_cpu():
    data = _gelu_bias_model()
    feeds = {
        "x": rng.standard_normal((2, 3, 8), np.float32) * 3,
        "b": rng.standard_normal(8, np.float32),
    }
    sess = _session(data)
    (got,), launches = _launches(sess, feeds)
    assert launches == 1
    assert _compiled_steps(sess) == [("div", "erf", "add1", "mul", "half", "bias")]
    assert set(sess.assignments.values()) == {"OpenCLExecutionProvider"}
    np.testing.assert_allclose(got, cpu_session(data).run(None, feeds)[0], rtol=1e-6, atol=1e-6)


def test_fused_chain_matches_the_unfused_kernels():
    data = _gelu_bias_model()
    feeds = {
        "x": rng.standard_normal((2, 3, 8), np.float32) * 3,
        "b": rng.standard_normal(8, np.float32),
    }
    (fused,), one = _launches(_session(data), feeds)
    (unfused,), six = _launches(_session(data, fuse=False), feeds)
    assert (one, six) == (1, 6)
    np.testing.assert_allclose(fused, unfused, rtol=1e-6, atol=0)


def test_an_intermediate_that_is_a_graph_output_breaks_the_chain():
    nodes = [
        N("Relu", ["x"], ["r"], name="relu"),
        N("Exp", ["r"], ["e"], name="exp"),
        N("Neg", ["e"], ["n"], name="neg"),
        N("Add", ["n", "x"], ["y"], name="add"),
    ]
    data = model(nodes, [vi("x", [5, 4])], [vi("y", [5, 4]), vi("e", [5, 4])])
    feeds = {"x": rng.standard_normal((5, 4), np.float32)}
    sess = _session(data)
    (y, e), launches = _launches(sess, feeds)
    # e must materialise: relu+exp end one chain, neg+add form the next.
    assert _compiled_steps(sess) == [("relu", "exp"), ("neg", "add")]
    assert launches == 2
    want_y, want_e = cpu_session(data).run(None, feeds)
    np.testing.assert_allclose(e, want_e, rtol=1e-6)
    np.testing.assert_allclose(y, want_y, rtol=1e-6, atol=1e-7)


def test_an_intermediate_read_by_a_non_elementwise_node_breaks_the_chain():
    nodes = [
        N("Mul", ["x", "s"], ["m"], name="scale"),
        N("Tanh", ["m"], ["t"], name="tanh"),
        N("Sigmoid", ["t"], ["g"], name="sigmoid"),
        N("ReduceSum", ["t", "ax"], ["r"], name="sum", keepdims=1),
        N("Mul", ["g", "r"], ["y"], name="gate"),
    ]
    data = model(
        nodes,
        [vi("x", [3, 6])],
        [vi("y", [3, 6])],
        [_const("s", np.float32(0.7)), _const("ax", np.int64([1]))],
    )
    feeds = {"x": rng.standard_normal((3, 6), np.float32)}
    sess = _session(data)
    (y,), launches = _launches(sess, feeds)
    # t is read by ReduceSum, so it materialises; sigmoid+gate fuse after it.
    assert _compiled_steps(sess) == [("scale", "tanh"), ("sigmoid", "gate")]
    assert launches == 3
    np.testing.assert_allclose(y, cpu_session(data).run(None, feeds)[0], rtol=1e-5, atol=1e-6)


def test_a_value_read_twice_inside_the_chain_is_computed_once_in_the_kernel():
    nodes = [
        N("Exp", ["x"], ["e"], name="exp"),
        N("Mul", ["e", "e"], ["sq"], name="square"),
        N("Add", ["sq", "e"], ["s"], name="add"),
        N("Sqrt", ["s"], ["y"], name="sqrt"),
    ]
    data = model(nodes, [vi("x", [7])], [vi("y", [7])])
    feeds = {"x": rng.standard_normal(7, np.float32)}
    sess = _session(data)
    (y,), launches = _launches(sess, feeds)
    assert launches == 1 and len(_compiled_steps(sess)) == 1
    np.testing.assert_allclose(y, cpu_session(data).run(None, feeds)[0], rtol=1e-6)


def test_broadcasting_shapes_dtypes_and_where_fuse_into_one_kernel():
    nodes = [
        N("Add", ["a", "b"], ["ab"], name="add"),  # (2,1,4) + (3,1) -> (2,3,4)
        N("Greater", ["ab", "zero"], ["pos"], name="gt"),
        N("Mul", ["ab", "c"], ["abc"], name="mul"),  # * (4,)
        N("Where", ["pos", "abc", "neg"], ["w"], name="where"),
        N("Clip", ["w", "", "hi"], ["cl"], name="clip"),  # min omitted
        N("Cast", ["cl"], ["y"], name="cast", to=I32),
    ]
    data = model(
        nodes,
        [vi("a", [2, 1, 4]), vi("b", [3, 1]), vi("c", [4])],
        [vi("y", [2, 3, 4], I32)],
        [
            _const("zero", np.float32(0)),
            _const("neg", np.float32(-2.5)),
            _const("hi", np.float32(3.0)),
        ],
    )
    feeds = {
        "a": rng.standard_normal((2, 1, 4), np.float32) * 4,
        "b": rng.standard_normal((3, 1), np.float32) * 4,
        "c": rng.standard_normal(4, np.float32) * 4,
    }
    sess = _session(data)
    (y,), launches = _launches(sess, feeds)
    assert launches == 1 and len(_compiled_steps(sess)) == 1
    want = cpu_session(data).run(None, feeds)[0]
    assert y.dtype == np.int32 and y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y, want)


def test_bool_and_integer_chains_fuse():
    nodes = [
        N("Cast", ["i"], ["f"], name="to_float", to=F),
        N("Mul", ["f", "k"], ["m"], name="mul"),
        N("Less", ["m", "lim"], ["lt"], name="less"),
        N("Not", ["lt"], ["ge"], name="not"),
        N("And", ["ge", "mask"], ["y"], name="and"),
    ]
    data = model(
        nodes,
        [vi("i", [4, 5], I64), vi("mask", [5], B)],
        [vi("y", [4, 5], B)],
        [_const("k", np.float32(0.5)), _const("lim", np.float32(3.0))],
    )
    feeds = {"i": rng.integers(-10, 10, (4, 5)), "mask": rng.random(5) > 0.3}
    sess = _session(data)
    (y,), launches = _launches(sess, feeds)
    assert launches == 1
    np.testing.assert_array_equal(y, cpu_session(data).run(None, feeds)[0])


def test_a_fused_chain_is_built_once_and_shared_across_sessions():
    from tessera_opencl import _runtime

    data = _gelu_bias_model()
    feeds = {
        "x": rng.standard_normal((2, 3, 8), np.float32),
        "b": rng.standard_normal(8, np.float32),
    }
    _session(data).run(None, feeds)
    before = len(_runtime._PROGRAMS)
    _session(data).run(None, feeds)
    assert len(_runtime._PROGRAMS) == before


def test_empty_and_scalar_tensors_run_through_a_chain():
    nodes = [N("Abs", ["x"], ["a"]), N("Add", ["a", "s"], ["y"])]
    data = model(nodes, [vi("x", None), vi("s", [])], [vi("y", None)])
    sess = _session(data)
    for shape in [(0, 3), (), (4,)]:
        feeds = {"x": rng.standard_normal(shape).astype(np.float32), "s": np.float32(2.0)}
        (y,) = sess.run(None, feeds)
        assert y.shape == shape
        np.testing.assert_allclose(y, np.abs(feeds["x"]) + 2.0, rtol=1e-6)


def test_below_ort_enable_extended_nothing_fuses():
    opts = tessera.SessionOptions()
    opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = tessera.InferenceSession(_gelu_bias_model(), opts, providers=["opencl", "cpu"])
    assert _compiled_steps(sess) == []
    assert _compiled_steps(_session(_gelu_bias_model())) != []
