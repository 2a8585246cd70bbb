"""The CUDA provider's kernel code run on NumPy (the host-module testing aid) against the CPU
provider, plus its claims: fused chains, shape arithmetic left on the host, generated CUDA C."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _cuda_support import I64, cpu_session, model, single_node_case, strict_session, vi
from onnx import helper, numpy_helper

import tessera


@pytest.fixture
def host_provider():
    """Registers the NumPy-backed CUDA provider (a testing aid) and yields its name.

    Defined here rather than in a conftest.py: the test tree imports the root conftest by name
    (``from conftest import ...``), which a second conftest module would shadow."""
    from tessera_cuda.testing import NAME, HostTestPlugin

    tessera.register_plugin(HostTestPlugin)
    yield NAME
    tessera.unregister_plugin(HostTestPlugin)


rng = np.random.default_rng(7)
N = helper.make_node


def _f(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _i64(*values):
    return np.asarray(values, np.int64)


CASES = {
    "conv_grouped_strided_dilated": single_node_case(
        N(
            "Conv",
            ["x", "w", "b"],
            ["y"],
            group=2,
            strides=[2, 1],
            pads=[1, 2, 0, 1],
            dilations=[1, 2],
        ),
        {"x": _f(2, 8, 9, 7)},
        {"w": _f(6, 4, 3, 3), "b": _f(6)},
    ),
    "conv3d": single_node_case(
        N("Conv", ["x", "w"], ["y"], pads=[1, 0, 1, 1, 0, 1]),
        {"x": _f(1, 4, 3, 5, 4)},
        {"w": _f(3, 4, 2, 3, 2)},
    ),
    "conv_same_upper": single_node_case(
        N("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2]),
        {"x": _f(1, 3, 7, 8)},
        {"w": _f(4, 3, 3, 3)},
    ),
    "matmul_batched_broadcast": single_node_case(
        N("MatMul", ["a", "b"], ["y"]), {"a": _f(2, 1, 17, 33), "b": _f(3, 33, 19)}
    ),
    "gemm_trans_alpha_beta": single_node_case(
        N("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0),
        {"a": _f(9, 4), "b": _f(6, 9), "c": _f(6)},
    ),
    "max_pool_ceil_pads": single_node_case(
        N(
            "MaxPool",
            ["x"],
            ["y"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
            ceil_mode=1,
        ),
        {"x": _f(1, 2, 6, 7)},
    ),
    "avg_pool_exclude_pad": single_node_case(
        N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        {"x": _f(1, 2, 6, 7)},
    ),
    "global_avg_pool": single_node_case(
        N("GlobalAveragePool", ["x"], ["y"]), {"x": _f(2, 3, 5, 5)}
    ),
    "softmax_axis1": single_node_case(N("Softmax", ["x"], ["y"], axis=1), {"x": _f(2, 5, 3)}),
    "log_softmax_legacy_2d_coercion": single_node_case(
        N("LogSoftmax", ["x"], ["y"], axis=1), {"x": _f(2, 5, 3)}, opset=11
    ),
    "layer_norm": single_node_case(
        N("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1),
        {"x": _f(2, 3, 8)},
        {"s": _f(8), "b": _f(8)},
    ),
    "batch_norm": single_node_case(
        N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
        {"x": _f(2, 3, 4, 4)},
        {"s": _f(3), "b": _f(3), "m": _f(3), "v": np.abs(_f(3)) + 0.5},
    ),
    "reduce_mean_axes_input": single_node_case(
        N("ReduceMean", ["x", "ax"], ["y"], keepdims=0),
        {"x": _f(3, 4, 5)},
        {"ax": _i64(0, -1)},
        opset=18,
    ),
    "reduce_logsumexp": single_node_case(
        N("ReduceLogSumExp", ["x"], ["y"], axes=[1]), {"x": _f(4, 6)}
    ),
    "argmax_last_index": single_node_case(
        N("ArgMax", ["x"], ["y"], axis=1, select_last_index=1),
        {"x": np.array([[1, 3, 3], [2, 2, 0]], np.float32)},
        out_elem=I64,
    ),
    "transpose": single_node_case(N("Transpose", ["x"], ["y"], perm=[2, 0, 1]), {"x": _f(2, 3, 4)}),
    "slice_negative_step": single_node_case(
        N("Slice", ["x", "s", "e", "a", "st"], ["y"]),
        {"x": _f(5, 6)},
        {"s": _i64(-1, 1), "e": _i64(-6, 100), "a": _i64(0, 1), "st": _i64(-2, 2)},
    ),
    "gather_negative_indices": single_node_case(
        N("Gather", ["x", "i"], ["y"], axis=1), {"x": _f(3, 5)}, {"i": _i64(-1, 0, 2)}
    ),
    "concat": single_node_case(
        N("Concat", ["a", "b"], ["y"], axis=1), {"a": _f(2, 1, 3), "b": _f(2, 4, 3)}
    ),
    "split_uneven_18": single_node_case(
        N("Split", ["x"], ["y", "z", "w"], axis=1, num_outputs=3),
        {"x": _f(2, 7)},
        opset=18,
        n_out=3,
    ),
    "expand": single_node_case(
        N("Expand", ["x", "s"], ["y"]), {"x": _f(3, 1)}, {"s": _i64(2, 3, 4)}
    ),
    "cast_to_int32": single_node_case(
        N("Cast", ["x"], ["y"], to=onnx.TensorProto.INT32),
        {"x": _f(6) * 4},
        out_elem=onnx.TensorProto.INT32,
    ),
    "where_broadcast": single_node_case(
        N("Where", ["c", "a", "b"], ["y"]),
        {"c": rng.random((3, 1)) > 0.5, "a": _f(3, 4), "b": _f(4)},
    ),
    "resize_linear_half_pixel": single_node_case(
        N("Resize", ["x", "", "sc"], ["y"], mode="linear"),
        {"x": _f(1, 2, 4, 5)},
        {"sc": np.array([1, 1, 1.5, 0.6], np.float32)},
        opset=13,
    ),
    "resize_nearest_sizes_asymmetric": single_node_case(
        N(
            "Resize",
            ["x", "", "", "sz"],
            ["y"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        {"x": _f(1, 1, 3, 4)},
        {"sz": _i64(1, 1, 7, 3)},
        opset=13,
    ),
    "gelu_tanh": single_node_case(
        N("Gelu", ["x"], ["y"], approximate="tanh"), {"x": _f(3, 5)}, opset=20
    ),
    "pow_int_exponent": single_node_case(
        N("Pow", ["a", "b"], ["y"]), {"a": np.abs(_f(5)), "b": _i64(2)}
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_on_numpy_matches_cpu_provider(name, host_provider):
    data, feeds = CASES[name]
    got = strict_session(data, host_provider).run(None, feeds)  # raises if a node was declined
    want = cpu_session(data).run(None, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def _chain_model():
    nodes = [
        N("Mul", ["x", "half"], ["m"]),
        N("Add", ["m", "b"], ["a"]),
        N("Sigmoid", ["a"], ["s"]),
        N("LeakyRelu", ["s"], ["y"], alpha=0.3),
    ]
    consts = [numpy_helper.from_array(np.float32(0.5), "half")]
    return model(nodes, [vi("x", [2, 3]), vi("b", [3])], [vi("y", [2, 3])], consts)


def test_float_chain_is_one_compiled_claim_and_matches_cpu(host_provider):
    data = _chain_model()
    sess = strict_session(data, host_provider)
    assert set(sess.assignments.values()) == {"cuda_host_test"}
    assert "compiled partitions: 1" in sess.explain()  # one fused step for the four nodes
    feeds = {"x": _f(2, 3), "b": _f(3)}
    np.testing.assert_allclose(
        sess.run(None, feeds)[0], cpu_session(data).run(None, feeds)[0], rtol=1e-6, atol=1e-7
    )


def test_chains_do_not_fuse_below_ort_enable_extended(host_provider):
    opts = tessera.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = tessera.InferenceSession(_chain_model(), opts, providers=[host_provider])
    assert "compiled partitions" not in sess.explain()
    feeds = {"x": _f(2, 3), "b": _f(3)}
    np.testing.assert_allclose(
        sess.run(None, feeds)[0],
        cpu_session(_chain_model()).run(None, feeds)[0],
        rtol=1e-6,
        atol=1e-7,
    )


def test_value_read_outside_the_chain_breaks_it():
    import onnx_ir as ir

    from tessera.provider import GraphView
    from tessera_cuda.kernels.fusion import chains

    nodes = [N("Relu", ["x"], ["r"]), N("Exp", ["r"], ["e"]), N("Add", ["e", "r"], ["y"])]
    proto = onnx.shape_inference.infer_shapes(
        onnx.load_from_string(model(nodes, [vi("x", [4])], [vi("y", [4])]))
    )
    graph = ir.from_proto(proto).graph
    ir_nodes = dict(enumerate(graph))
    infos = {k: tessera.provider.node_info(n, k, {"": 17}, {}) for k, n in ir_nodes.items()}
    view = GraphView(infos, graph, ir_nodes, {"": 17})
    # r has two readers (Exp and Add), so Relu stays alone; Exp -> Add fuse.
    assert chains(view, list(infos)) == [[1, 2]]


def test_generated_cuda_source_inlines_the_chain_and_its_attributes():
    from tessera.provider import NodeInfo
    from tessera_cuda.kernels.fusion import build_source

    def info(op, ins, out, **attrs):
        t = ["tensor(float)"] * len(ins)
        return NodeInfo(op, "", out, 20, attrs, ins, [out], t, ["tensor(float)"], [None] * len(ins))

    nodes = [
        info("Mul", ["x", "w"], "m"),
        info("LeakyRelu", ["m"], "l", alpha=0.25),
        info("Gelu", ["l"], "g", approximate="tanh"),
        info("Max", ["g", "x"], "y"),
    ]
    src = build_source(nodes, ["x", "w"], "y")
    assert src.in_params == "float32 x0, float32 x1" and src.out_params == "float32 y"
    lines = src.body.splitlines()
    assert lines[0] == "float t0 = (x0 * x1);"
    assert lines[1] == "float t1 = (t0 < (float)0 ? ((float)0.25) * t0 : t0);"
    assert lines[2].startswith("float t2 = ((float)0.5 * t1 * ((float)1 + tanh(")
    assert lines[3] == "float t3 = ((t2 != t2 || t2 > x0) ? t2 : x0);"
    assert lines[-1] == "y = t3;"
    assert "(T)" not in src.body and "{" not in src.body  # every placeholder was filled
    from tessera_cuda._backend import HostBackend

    x, w = _f(4), _f(4)
    got = HostBackend().fused(src)(x, w)
    m = x * w
    leak = np.where(m < 0, np.float32(0.25) * m, m)
    inner = np.float32(np.sqrt(2 / np.pi)) * (leak + np.float32(0.044715) * leak**3)
    want = np.maximum(0.5 * leak * (1 + np.tanh(inner)), x)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_double_chain_is_generated_in_double():
    from tessera.provider import NodeInfo
    from tessera_cuda.kernels.fusion import build_source

    t = ["tensor(double)"]
    nodes = [
        NodeInfo("Exp", "", "e", 17, {}, ["x"], ["e"], t, t, [None]),
        NodeInfo("HardSigmoid", "", "h", 17, {}, ["e"], ["y"], t, t, [None]),
    ]
    src = build_source(nodes, ["x"], "y")
    assert src.in_params == "float64 x0" and "double t1 = fmin(fmax(((double)0.2) * t0" in src.body


def test_shape_arithmetic_stays_on_the_host_and_reshape_runs_on_device(host_provider):
    nodes = [
        N("Shape", ["x"], ["s"]),
        N("Gather", ["s", "zero"], ["n"], axis=0),
        N("Unsqueeze", ["n", "zero1"], ["n1"]),
        N("Concat", ["n1", "minus1"], ["shape"], axis=0),
        N("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(_i64(0), "zero1"),
        numpy_helper.from_array(_i64(-1), "minus1"),
    ]
    # A symbolic batch dim keeps the optimizer from folding the shape chain away.
    data = model(nodes, [vi("x", ["batch", 3, 4])], [vi("y", None)], inits)
    sess = tessera.InferenceSession(data, providers=[host_provider, "cpu"])
    by_op = {name.rsplit("_", 1)[0]: p for name, p in sess.assignments.items()}
    assert by_op == {
        "Shape": "CPUExecutionProvider",
        "Gather": "CPUExecutionProvider",
        "Unsqueeze": "CPUExecutionProvider",
        "Concat": "CPUExecutionProvider",
        "Reshape": "cuda_host_test",
    }
    assert "shape arithmetic" in sess.explain() or "computes shapes" in sess.explain()
    x = _f(2, 3, 4)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x.reshape(2, -1))


def test_small_integer_tensors_stay_on_the_host_when_moved_to_the_device(host_provider):
    from tessera_cuda.testing import CUDAHostTestFactory

    provider = CUDAHostTestFactory().create({})
    shape = _i64(2, -1)
    assert provider.to_device(shape) is shape  # not uploaded: kernels read it on the host
    big = np.zeros((3, 4), np.float32)
    assert provider.to_device(big) is not big  # data is moved (copied on the host backend)
    assert provider.device != "cpu"  # so the planner inserts transfers, as on a GPU


def test_float16_is_declined_with_a_reason(host_provider):
    data, _ = single_node_case(
        N("Relu", ["x"], ["y"]), {"x": np.zeros(2, np.float16)}, out_elem=onnx.TensorProto.FLOAT16
    )
    sess = tessera.InferenceSession(data, providers=[host_provider, "cpu"])
    assert sess.assignments == {"Relu_0": "CPUExecutionProvider"}
    assert "float16" in sess.explain()
