"""The CPU provider's BatchNormalization -> Relu | LeakyRelu | Clip fusion (FusedBatchNormalization).

Each model is checked against onnxruntime with its optimizations off (so it fuses nothing), with
the compiled loops on and off (TESSERA_CPU_JIT=0: the NumPy passes), and against the same model
run unfused by Tessera.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support.single_node import add_parameters

import tessera
from tessera_cpu.kernels import _norm_loops

ort = pytest.importorskip("onnxruntime")


def _bn_model(
    shape,
    act="Relu",
    dtype=np.float32,
    params_as_inputs=False,
    extra_output=False,
    then_conv=False,
    opset=15,
    seed=0,
):
    """BatchNormalization -> ``act`` ("" for none) [-> Conv 1x1], with feeds."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    c = shape[1]
    params = {
        "scale": rng.standard_normal(c).astype(dtype),
        "bias": rng.standard_normal(c).astype(dtype),
        "mean": rng.standard_normal(c).astype(dtype),
        "var": (rng.random(c) + 0.1).astype(dtype),
    }
    feeds = {"x": rng.standard_normal(shape).astype(dtype)}
    inputs = [helper.make_tensor_value_info("x", elem, shape)]
    inits = add_parameters(params, elem, params_as_inputs, inputs, feeds)
    nodes = [
        helper.make_node("BatchNormalization", ["x", *params], ["bn"], name="bn", epsilon=1e-3)
    ]
    out = "bn"
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["bn"], ["act"], name="relu"))
    elif act.startswith("LeakyRelu"):
        alpha = float(act.split(":")[1]) if ":" in act else 0.2
        nodes.append(helper.make_node("LeakyRelu", ["bn"], ["act"], alpha=alpha, name="lrelu"))
    elif act == "Clip":
        inits += [
            numpy_helper.from_array(np.array(0, dtype), "lo"),
            numpy_helper.from_array(np.array(6, dtype), "hi"),
        ]
        nodes.append(helper.make_node("Clip", ["bn", "lo", "hi"], ["act"], name="clip"))
    elif act == "ClipMax":  # only an upper bound
        inits.append(numpy_helper.from_array(np.array(0.5, dtype), "hi"))
        nodes.append(helper.make_node("Clip", ["bn", "", "hi"], ["act"], name="clip"))
    if act:
        out = "act"
    if then_conv:
        w = (rng.standard_normal((4, c, 1, 1)) * 0.1).astype(dtype)
        inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("Conv", [out, "w"], ["conv"], name="conv"))
        out = "conv"
    outputs = [helper.make_tensor_value_info(out, elem, None)]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("bn", elem, None))
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, inits),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = 9
    return model, feeds


def _session(model, threads=2, fuse=True):
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = threads
    if not fuse:
        opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])


def _onnxruntime(model, feeds):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize(
    "act", ["Relu", "LeakyRelu", "LeakyRelu:1.5", "LeakyRelu:-0.5", "Clip", "ClipMax"]
)
@pytest.mark.parametrize("shape", [(2, 16, 9, 11), (1, 8, 30), (2, 4, 3, 5, 6), (3, 7)])
def test_bn_activation_fuses_and_matches_onnxruntime(jit, shape, act):
    model, feeds = _bn_model(shape, act)
    sess = _session(model)
    got = sess.run(None, feeds)[0]
    want = _onnxruntime(model, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert [len(parts) for parts in sess._plan.fused.values()] == [2]
    assert "FusedBatchNormalization" in sess.explain()


@pytest.mark.parametrize("params_as_inputs", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_and_unfused_results_are_identical(jit, dtype, params_as_inputs):
    model, feeds = _bn_model((2, 24, 14, 14), "Relu", dtype, params_as_inputs, then_conv=True)
    x = feeds["x"]
    x[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    fused = _session(model)
    plain = _session(model, fuse=False)
    assert "FusedBatchNormalization" in fused.explain()
    assert not plain._plan.fused
    got = fused.run(None, feeds)[0]
    np.testing.assert_array_equal(got, plain.run(None, feeds)[0])
    assert got.dtype == dtype
    # NaN propagates through BN -> Relu -> the 1x1 conv's first column.
    assert np.isnan(got[0, :, 0, 0]).all() and not np.isnan(got[1]).any()


@pytest.mark.parametrize("act", ["", "Relu", "LeakyRelu", "Clip"])
def test_nan_and_inf_propagate_like_the_unfused_ops(jit, act):
    model, feeds = _bn_model((1, 6, 8, 8), act)
    feeds["x"][0, :, 0, 0] = np.nan
    feeds["x"][0, :, 1, 1] = np.inf
    feeds["x"][0, :, 2, 2] = -np.inf
    got = _session(model).run(None, feeds)[0]
    want = _session(model, fuse=False).run(None, feeds)[0]
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0, :, 0, 0]).all()


def test_the_split_over_threads_matches(jit, monkeypatch):
    monkeypatch.setattr(_norm_loops, "_BN_SPLIT_ELEMENTS", 1)
    model, feeds = _bn_model((2, 32, 20, 20), "LeakyRelu")
    got = _session(model, threads=2).run(None, feeds)[0]
    np.testing.assert_allclose(got, _onnxruntime(model, feeds)[0], rtol=1e-5, atol=1e-5)


def test_plain_batch_normalization_matches_onnxruntime(jit):
    model, feeds = _bn_model((2, 16, 7, 9), "", params_as_inputs=True)
    sess = _session(model)
    assert not sess._plan.fused
    np.testing.assert_allclose(
        sess.run(None, feeds)[0], _onnxruntime(model, feeds)[0], rtol=1e-5, atol=1e-5
    )


def test_a_bn_output_read_elsewhere_is_not_fused(jit):
    model, feeds = _bn_model((1, 8, 10, 10), "Relu", extra_output=True)
    sess = _session(model)
    assert not sess._plan.fused
    for g, w in zip(sess.run(None, feeds), _onnxruntime(model, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_float16_and_training_mode_are_not_fused():
    model, feeds = _bn_model((1, 8, 10, 10), "Relu", dtype=np.float16)
    sess = _session(model)
    assert not sess._plan.fused
    assert sess.run(None, feeds)[0].dtype == np.float16
    model, _ = _bn_model((1, 8, 10, 10), "Relu")
    model.graph.node[0].attribute.append(helper.make_attribute("training_mode", 1))
    assert not _session(model)._plan.fused


def test_the_saved_model_declares_fused_bn_in_its_domain_and_runs_again(jit, tmp_path):
    model, feeds = _bn_model((1, 8, 12, 12), "Clip")
    path = tmp_path / "optimized.onnx"
    opts = tessera.SessionOptions()
    opts.optimized_model_filepath = str(path)
    first = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    saved = onnx.load(str(path))
    onnx.checker.check_model(saved)
    assert [(n.domain, n.op_type) for n in saved.graph.node] == [
        ("ai.tessera.cpu", "FusedBatchNormalization")
    ]
    attrs = {a.name: helper.get_attribute_value(a) for a in saved.graph.node[0].attribute}
    assert attrs["activation"] == b"Clip"
    assert list(attrs["activation_params"]) == [0.0, 6.0]
    assert attrs["epsilon"] == pytest.approx(1e-3)
    again = tessera.InferenceSession(str(path), providers=["cpu"])
    np.testing.assert_array_equal(again.run(None, feeds)[0], first.run(None, feeds)[0])


def test_fused_bn_with_an_unknown_activation_is_a_clear_error():
    node = helper.make_node(
        "FusedBatchNormalization",
        ["x", "s", "b", "m", "v"],
        ["y"],
        domain="ai.tessera.cpu",
        activation="Swish",
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones(2, np.float32), n) for n in "sbmv"],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.tessera.cpu", 1)],
    )
    with pytest.raises(tessera.InvalidGraph, match="activation 'Swish' is not one of"):
        tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
