"""The CPU provider's 2-D convolution forms, its threads, and its FusedConv fusions.

Each model is checked against onnxruntime with its optimizations off, so neither side fuses
anything the other does not compute.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tessera

ort = pytest.importorskip("onnxruntime")


def _chain_model(
    x_shape, w_shape, conv_attrs, tail=("Relu",), dtype=np.float32, extra_output=False, seed=0
):
    """Conv (weights and bias as initializers) followed by ``tail`` ops; "Add" adds input ``r``."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = (rng.standard_normal(w_shape) * 0.1).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", **conv_attrs)]
    inputs = [helper.make_tensor_value_info("x", elem, x_shape)]
    feeds = {"x": rng.standard_normal(x_shape).astype(dtype)}
    prev = "c"
    for i, op in enumerate(tail):
        out = f"t{i}"
        if op == "Add":
            nodes.append(helper.make_node("Add", ["r", prev], [out], name=f"add{i}"))
        elif op == "Clip":
            inits += [
                numpy_helper.from_array(np.array(0, dtype), "lo"),
                numpy_helper.from_array(np.array(6, dtype), "hi"),
            ]
            nodes.append(helper.make_node("Clip", [prev, "lo", "hi"], [out], name=f"clip{i}"))
        elif op == "LeakyRelu":
            nodes.append(helper.make_node("LeakyRelu", [prev], [out], alpha=0.2, name=f"lr{i}"))
        else:
            nodes.append(helper.make_node(op, [prev], [out], name=f"{op.lower()}{i}"))
        prev = out
    outputs = [helper.make_tensor_value_info(prev, elem, None)]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("c", elem, None))
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    inferred = onnx.shape_inference.infer_shapes(model)
    if "Add" in tail:
        shape = [
            d.dim_value
            for d in next(
                v for v in inferred.graph.value_info if v.name == "c"
            ).type.tensor_type.shape.dim
        ]
        inputs.append(helper.make_tensor_value_info("r", elem, shape))
        model.graph.input.append(inputs[-1])
        feeds["r"] = rng.standard_normal(shape).astype(dtype)
    return model, feeds


def _run_both(model, feeds, threads=2):
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    ort_opts = ort.SessionOptions()
    ort_opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(
        model.SerializeToString(), ort_opts, providers=["CPUExecutionProvider"]
    )
    return sess, sess.run(None, feeds), ref.run(None, feeds)


# (x shape, w shape, attrs): each of Conv2D's forms and work splits, with enough work to use
# both threads (>= 10M multiply-adds) or not.
FORMS = {
    "pointwise-rows": ((1, 64, 48, 48), (96, 64, 1, 1), {}),
    "pointwise-channels": ((2, 256, 14, 14), (128, 256, 1, 1), {}),
    "im2col-rows": ((1, 32, 40, 40), (64, 32, 3, 3), {"pads": [1, 1, 1, 1]}),
    "im2col-channels": ((1, 128, 12, 12), (256, 128, 3, 3), {"pads": [1, 1, 1, 1]}),
    "im2col-strided": ((1, 3, 97, 97), (24, 3, 7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    "im2col-dilated": ((1, 16, 33, 33), (32, 16, 3, 3), {"dilations": [2, 2]}),
    "grouped": ((1, 64, 28, 28), (128, 16, 3, 3), {"group": 4, "pads": [1, 0, 1, 2]}),
    "depthwise": ((3, 72, 30, 30), (72, 1, 3, 3), {"group": 72, "pads": [1, 1, 1, 1]}),
    "depthwise-strided": ((1, 48, 31, 31), (48, 1, 5, 5), {"group": 48, "strides": [2, 2]}),
    "small": ((1, 4, 6, 6), (8, 4, 3, 3), {"auto_pad": "SAME_UPPER"}),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_conv_form_matches_onnxruntime(form, threads):
    x_shape, w_shape, attrs = FORMS[form]
    model, feeds = _chain_model(x_shape, w_shape, attrs, tail=("Add", "Relu"))
    sess, got, want = _run_both(model, feeds, threads)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    assert "FusedConv" in sess.explain()


@pytest.mark.parametrize(
    "tail",
    [
        ("Relu",),
        ("LeakyRelu",),
        ("Clip",),
        ("Add",),
        ("Add", "Relu"),
        ("Add", "Clip"),
        ("Sigmoid",),
    ],
)
def test_conv_chains_fuse_and_match_onnxruntime(tail):
    model, feeds = _chain_model((1, 16, 20, 20), (32, 16, 3, 3), {"pads": [1, 1, 1, 1]}, tail)
    sess, got, want = _run_both(model, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    fused = sess._plan.fused
    if tail == ("Sigmoid",):  # not an activation FusedConv applies: nothing fuses
        assert not fused
    else:
        expected = len(tail) + 1 if tail[-1] != "Sigmoid" else len(tail)
        assert [len(parts) for parts in fused.values()] == [expected]


@pytest.mark.parametrize("form", ["native", "compiled-epilogue", "numpy-epilogue"])
@pytest.mark.parametrize("tail", [("Add", "Relu"), ("LeakyRelu",), ("Add", "Clip"), ("Add",)])
def test_fused_and_unfused_results_are_identical(tail, form, monkeypatch):
    from tessera_cpu import _jit, _native
    from tessera_cpu.kernels import _conv_loops

    calls = []
    loops = form != "numpy-epilogue"
    if form == "native":
        pytest.importorskip("numba")
        if not _native.available(np.float32):
            pytest.skip("the CPU provider's native threads are not usable here")
        monkeypatch.delenv(_jit.ENV, raising=False)
        monkeypatch.delenv(_native.ENV, raising=False)
        real_acquire = _native.acquire
        monkeypatch.setattr(_native, "acquire", lambda n: calls.append(n) or real_acquire(n))
    elif form == "compiled-epilogue":
        pytest.importorskip("numba")
        monkeypatch.delenv(_jit.ENV, raising=False)
        monkeypatch.setenv(_native.ENV, "0")
        real = _conv_loops.epilogue
        monkeypatch.setattr(_conv_loops, "epilogue", lambda *a: calls.append(1) or real(*a))
    else:
        monkeypatch.setenv(_jit.ENV, "0")
    model, feeds = _chain_model((1, 32, 24, 24), (64, 32, 3, 3), {"pads": [1, 1, 1, 1]}, tail)
    feeds["x"][0, 3, 5, 5] = np.nan  # NaN reaches the activation, which must keep it
    fused = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    opts = tessera.SessionOptions()
    opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    plain = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    assert fused._plan.fused and not plain._plan.fused
    got = fused.run(None, feeds)[0]
    np.testing.assert_array_equal(got, plain.run(None, feeds)[0])
    assert np.isnan(got).any()
    assert bool(calls) == loops


def test_a_conv_output_read_elsewhere_is_not_fused():
    model, feeds = _chain_model((1, 8, 10, 10), (8, 8, 3, 3), {}, ("Relu",), extra_output=True)
    sess, got, want = _run_both(model, feeds)
    assert not sess._plan.fused
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_float16_chains_are_not_fused():
    model, feeds = _chain_model((1, 8, 10, 10), (8, 8, 3, 3), {}, ("Relu",), dtype=np.float16)
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    assert not sess._plan.fused
    assert sess.run(None, feeds)[0].dtype == np.float16


def test_the_saved_model_declares_fused_conv_in_its_domain_and_runs_again(tmp_path):
    model, feeds = _chain_model(
        (1, 8, 12, 12), (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}, ("Add", "Relu")
    )
    path = tmp_path / "optimized.onnx"
    opts = tessera.SessionOptions()
    opts.optimized_model_filepath = str(path)
    first = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    saved = onnx.load(str(path))
    onnx.checker.check_model(saved)
    assert [(n.domain, n.op_type) for n in saved.graph.node] == [("ai.tessera.cpu", "FusedConv")]
    assert {o.domain for o in saved.opset_import} >= {"", "ai.tessera.cpu"}
    again = tessera.InferenceSession(str(path), providers=["cpu"])
    np.testing.assert_array_equal(again.run(None, feeds)[0], first.run(None, feeds)[0])


def test_fused_conv_with_an_unknown_activation_is_a_clear_error():
    node = helper.make_node(
        "FusedConv", ["x", "w"], ["y"], domain="ai.tessera.cpu", activation="Swish"
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.tessera.cpu", 1)],
    )
    with pytest.raises(tessera.InvalidGraph, match="activation 'Swish' is not one of"):
        tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
