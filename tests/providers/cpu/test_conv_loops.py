"""The convolution engine's compiled loops (depthwise, im2col columns) and their NumPy fallback.

Every model runs in the engine's three forms (whole on numba's threads, the loops with
Python-threaded GEMMs, NumPy only) and is checked against onnxruntime with its optimizations
off (onnx's ReferenceEvaluator for float64); the engine-level tests check that the loops are
really used and that the forms give bit-identical results.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from support.native_threads import record_parts

import tessera
from tessera_cpu import _jit, _native
from tessera_cpu.kernels import _conv2d
from tessera_cpu.kernels.conv import same_pads

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(params=["native", "jit", "numpy"])
def jit(request, monkeypatch) -> bool:
    """The engine's three forms: whole convolutions on numba's threads (``_native``), the
    compiled loops between Python-threaded GEMMs, and NumPy only."""
    if request.param == "numpy":
        monkeypatch.setenv(_jit.ENV, "0")
        return False
    if not _jit.enabled():
        pytest.skip("numba is not usable here")
    monkeypatch.delenv(_jit.ENV, raising=False)
    if request.param == "native":
        if not _native.available(np.float32):
            pytest.skip("numba's OpenMP/TBB layer or NumPy's CBLAS gemm is not usable here")
        monkeypatch.delenv(_native.ENV, raising=False)
    else:
        monkeypatch.setenv(_native.ENV, "0")
    return True


def _model(x_shape, w_shape, attrs, dtype, tail, seed=0):
    """Conv (initializer weights and bias), then optionally ``+ r`` and Relu (fused by the
    provider into one FusedConv whose epilogue runs on each block)."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    x = rng.standard_normal(x_shape).astype(dtype)
    y_shape = _out_shape(x.shape, w.shape, attrs)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **attrs)]
    inputs = [helper.make_tensor_value_info("x", elem, x_shape)]
    feeds = {"x": x}
    out = "c"
    if "Add" in tail:
        inputs.append(helper.make_tensor_value_info("r", elem, y_shape))
        feeds["r"] = rng.standard_normal(y_shape).astype(dtype)
        nodes.append(helper.make_node("Add", ["c", "r"], ["s"]))
        out = "s"
    if "Relu" in tail:
        nodes.append(helper.make_node("Relu", [out], ["y"]))
        out = "y"
    model = helper.make_model(
        helper.make_graph(
            nodes, "g", inputs, [helper.make_tensor_value_info(out, elem, None)], inits
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    return model, feeds


def _out_shape(x_shape, w_shape, attrs):
    ks = list(w_shape[2:])
    st = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1])
    auto = attrs.get("auto_pad", "NOTSET")
    _, _, out = same_pads(list(x_shape[2:]), ks, st, dil, auto, attrs.get("pads", [0] * 4))
    return (x_shape[0], w_shape[0], *out)


def _check(model, feeds, threads, dtype):
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    if dtype == np.float64:  # onnxruntime has no double Conv
        want = ReferenceEvaluator(model).run(None, feeds)[0]
    else:
        ort_opts = ort.SessionOptions()
        ort_opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        ref = ort.InferenceSession(
            model.SerializeToString(), ort_opts, providers=["CPUExecutionProvider"]
        )
        want = ref.run(None, feeds)[0]
    for _ in range(2):  # the second run reuses the engine and its scratch buffers
        got = sess.run(None, feeds)[0]
        tol = 1e-4 if dtype == np.float32 else 1e-11
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


DEPTHWISE = [
    # x shape, w shape, attributes
    ((1, 8, 14, 14), (8, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    ((2, 6, 15, 11), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ((1, 5, 12, 13), (5, 1, 5, 3), {"group": 5, "pads": [2, 0, 1, 3], "strides": [2, 1]}),
    ((1, 4, 13, 12), (4, 1, 3, 3), {"group": 4, "pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    ((1, 3, 9, 9), (3, 1, 3, 3), {"group": 3, "strides": [3, 3]}),  # no padding
    ((1, 3, 2, 2), (3, 1, 3, 3), {"group": 3, "pads": [3, 3, 3, 3]}),  # taps wholly outside
    ((1, 3, 5, 4), (3, 1, 3, 3), {"group": 3, "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
]

IM2COL = [
    ((1, 8, 9, 11), (12, 8, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 6, 40, 40), (8, 3, 3, 3), {"group": 2, "pads": [1, 0, 2, 1], "strides": [2, 2]}),
    ((1, 3, 64, 64), (16, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ((1, 4, 12, 12), (6, 2, 3, 2), {"group": 2, "pads": [0, 1, 1, 0], "dilations": [2, 2]}),
    ((1, 4, 3, 3), (6, 4, 3, 3), {"pads": [4, 4, 4, 4]}),  # rows and columns wholly padding
    ((1, 16, 36, 36), (16, 16, 3, 3), {"pads": [1, 1, 1, 1]}),  # a plane split by rows
    ((1, 6, 12, 12), (4, 3, 1, 1), {"group": 2, "strides": [2, 2]}),  # 1x1, strided
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("tail", [(), ("Add", "Relu")])
@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), DEPTHWISE + IM2COL)
def test_conv_forms_match_onnxruntime(jit, x_shape, w_shape, attrs, tail, threads, monkeypatch):
    # Every convolution counts as large, so the two-thread runs take the split paths.
    monkeypatch.setattr(_conv2d, "_PARALLEL_MACS", 0)
    monkeypatch.setattr(_conv2d, "_NATIVE_PARALLEL_MACS", 0)
    model, feeds = _model(x_shape, w_shape, attrs, np.float32, tail)
    _check(model, feeds, threads, np.float32)


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), [DEPTHWISE[2], IM2COL[3]])
def test_conv_forms_float64(jit, x_shape, w_shape, attrs):
    model, feeds = _model(x_shape, w_shape, attrs, np.float64, ("Add", "Relu"))
    _check(model, feeds, 1, np.float64)


def _engine(x_shape, w, attrs, jit):
    ks = list(w.shape[2:])
    st = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1])
    pb, pe, out = same_pads(list(x_shape[2:]), ks, st, dil, "NOTSET", attrs.get("pads", [0] * 4))
    return _conv2d.Conv2D(w, attrs.get("group", 1), x_shape, ks, st, dil, pb, pe, out, jit=jit)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), IM2COL)
def test_im2col_loop_is_bit_identical(x_shape, w_shape, attrs, parallel, monkeypatch):
    """The loop builds the same columns as the padded strided view, so the same GEMMs give the
    same bits; and the engine really takes the loop when it may."""
    if not _jit.enabled():
        pytest.skip("numba is not usable here")
    monkeypatch.setenv(_native.ENV, "0")  # the Python-threaded loop form (native: below)
    if parallel:
        monkeypatch.setattr(_conv2d, "_PARALLEL_MACS", 0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    epi = _conv2d.Epilogue(rng.standard_normal(w_shape[0]).astype(np.float32), None)
    loop, plain = _engine(x_shape, w, attrs, True), _engine(x_shape, w, attrs, False)
    assert loop.jit and not plain.jit and loop.form == "im2col"
    calls = []
    real = _conv2d._conv_loops.im2col
    monkeypatch.setattr(_conv2d._conv_loops, "im2col", lambda *a: (calls.append(1), real(*a)))
    y1 = loop(x, epi, None)
    assert calls, "the im2col engine did not use the compiled loop"
    y0 = plain(x, epi, None)
    assert y0.tobytes() == y1.tobytes()


def test_jit_env_turns_loops_off(monkeypatch):
    monkeypatch.setenv(_jit.ENV, "0")
    w = np.ones((4, 1, 3, 3), np.float32)
    assert not _engine((1, 4, 8, 8), w, {"group": 4, "pads": [1] * 4}, None).jit


@pytest.mark.parametrize("where", ["input", "weight"])
def test_depthwise_propagates_nan_and_inf(jit, where):
    """NaN in the input reaches exactly the outputs whose taps read it; an infinite weight
    times the zero padding gives NaN at the borders, as the GEMM over padded columns does."""
    x = np.ones((1, 2, 6, 6), np.float32)
    w = np.ones((2, 1, 3, 3), np.float32)
    if where == "input":
        x[0, 1, 2, 3] = np.nan
    else:
        w[0, 0, 0, 0] = np.inf
    eng = _engine(x.shape, w, {"group": 2, "pads": [1] * 4}, None)
    assert eng.jit == jit and eng.form == "depthwise"
    with np.errstate(invalid="ignore"):  # the NumPy path's GEMM warns about inf * 0
        y = eng(x, _conv2d.Epilogue(), None)
    got = np.isnan(y)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    with np.errstate(invalid="ignore"):
        want = np.zeros_like(y, dtype=np.float64)
        for ki in range(3):
            for kj in range(3):
                want += w[None, :, 0, ki, kj, None, None] * xp[:, :, ki : ki + 6, kj : kj + 6]
    np.testing.assert_array_equal(got, np.isnan(want))
    assert got.any()


def test_depthwise_float16_computes_in_float32(jit):
    """float16 computes in float32 (the loop's dtype) and comes back as float16."""
    attrs = {"group": 4, "pads": [1] * 4}
    model, feeds = _model((1, 4, 7, 7), (4, 1, 3, 3), attrs, np.float16, ())
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    got = sess.run(None, feeds)[0]
    assert got.dtype == np.float16
    # The same (float16-valued) weights and input, in float32, through onnxruntime.
    f32, _ = _model((1, 4, 7, 7), (4, 1, 3, 3), attrs, np.float32, ())
    for init in f32.graph.initializer:
        up = next(t for t in model.graph.initializer if t.name == init.name)
        init.CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(up).astype(np.float32), init.name)
        )
    ref = ort.InferenceSession(f32.SerializeToString(), providers=["CPUExecutionProvider"])
    want = ref.run(None, {"x": feeds["x"].astype(np.float32)})[0]
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-3)


@pytest.fixture
def pinned_run():
    """BLAS pinned to one thread, as during a session's run (native regions need it)."""
    from tessera_cpu import _parallel

    _parallel.run_started()
    yield
    _parallel.run_ended()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), DEPTHWISE + IM2COL)
def test_native_form_is_bit_identical(x_shape, w_shape, attrs, threads, monkeypatch, pinned_run):
    """Whole on numba's threads, a convolution makes the same columns and the same GEMM calls
    as the Python-threaded loop form, so the same bits, with bias, residual and Relu; and the
    engine really takes the native drivers, in parallel when it splits."""
    from tessera_cpu import _parallel
    from tessera_cpu.kernels import _conv_loops

    if not (_jit.enabled() and _native.available(np.float32)):
        pytest.skip("the native form is not usable here")
    monkeypatch.setattr(_conv2d, "_PARALLEL_MACS", 0)
    monkeypatch.setattr(_conv2d, "_NATIVE_PARALLEL_MACS", 0)
    old_threads = _parallel.threads()
    _parallel.configure(threads)
    try:
        rng = np.random.default_rng(2)
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        bias = rng.standard_normal(w_shape[0]).astype(np.float32)
        native = _engine(x_shape, w, attrs, True)
        monkeypatch.setenv(_native.ENV, "0")
        python = _engine(x_shape, w, attrs, True)
        assert native._plan is not None and python._plan is None
        z = rng.standard_normal((x_shape[0], w_shape[0], *native.out)).astype(np.float32)
        relu = _conv2d.Epilogue(bias, lambda a: np.maximum(a, 0, out=a), (_conv_loops.RELU, 0, 0))
        parts = record_parts(monkeypatch)
        got = native(x, relu, z)
        assert parts == [threads], "the engine did not take the native form on every thread"
        want = python(x, relu, z)
        assert got.tobytes() == want.tobytes()
    finally:
        _parallel.configure(old_threads)


def test_native_env_turns_native_form_off(monkeypatch):
    monkeypatch.setenv(_native.ENV, "0")
    w = np.ones((4, 4, 3, 3), np.float32)
    assert _engine((1, 4, 8, 8), w, {"pads": [1] * 4}, True)._plan is None
