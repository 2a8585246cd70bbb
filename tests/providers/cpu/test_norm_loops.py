"""LayerNormalization's and BatchNormalization's compiled loops (kernels/_norm_loops.py) and their
NumPy fallbacks (TESSERA_CPU_JIT=0), against onnx's ReferenceEvaluator and NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from support.native_threads import record_parts
from support.single_node import add_parameters

import tessera
from tessera_cpu import _jit
from tessera_cpu.kernels import _norm_loops


def _ln_model(
    shape,
    axis=-1,
    dtype=np.float32,
    param_shape=None,
    bias=True,
    stats=False,
    params_as_inputs=False,
    seed=0,
):
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    rank = len(shape)
    norm_shape = param_shape if param_shape is not None else shape[axis % rank :]
    params = {"scale": rng.standard_normal(norm_shape).astype(dtype)}
    if bias:
        params["bias"] = rng.standard_normal(norm_shape).astype(dtype)
    feeds = {"x": (rng.standard_normal(shape) * 3 + 1).astype(dtype)}
    inputs = [helper.make_tensor_value_info("x", elem, shape)]
    inits = add_parameters(params, elem, params_as_inputs, inputs, feeds)
    outs = ["y", "mean", "inv"] if stats else ["y"]
    node = helper.make_node(
        "LayerNormalization", ["x", *params], outs, axis=axis, epsilon=1e-5, name="ln"
    )
    outputs = [helper.make_tensor_value_info(outs[0], elem, None)] + [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs[1:]
    ]
    model = helper.make_model(
        helper.make_graph([node], "g", inputs, outputs, inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    return model, feeds


def _run(model, feeds, threads=2):
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    return sess.run(None, feeds)


def _reference(model, feeds):
    return ReferenceEvaluator(model).run(None, feeds)


@pytest.mark.parametrize(
    "shape, axis",
    [
        ((1, 128, 768), -1),
        ((2, 5, 7), -1),
        ((2, 5, 7), 1),
        ((3, 4, 5, 6), -2),
        ((6, 9), 0),
        ((4, 1), -1),
        ((5, 13), -1),
    ],
)
def test_layer_norm_matches_the_reference(jit, shape, axis):
    model, feeds = _ln_model(shape, axis)
    got = _run(model, feeds)[0]
    np.testing.assert_allclose(got, _reference(model, feeds)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("params_as_inputs", [False, True])
def test_layer_norm_statistics_and_no_bias(jit, params_as_inputs):
    model, feeds = _ln_model(
        (2, 6, 40), -1, bias=False, stats=True, params_as_inputs=params_as_inputs
    )
    got = _run(model, feeds)
    want = _reference(model, feeds)
    assert [g.shape for g in got] == [w.shape for w in want] == [(2, 6, 40), (2, 6, 1), (2, 6, 1)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    # The second run takes the cached flattened parameters (initializers) or rebuilds them.
    for g, w in zip(_run(model, feeds), want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_layer_norm_scale_broadcast_over_the_normalized_axes(jit):
    model, feeds = _ln_model((2, 3, 4, 5), 1, param_shape=(1, 1, 5))
    np.testing.assert_allclose(
        _run(model, feeds)[0], _reference(model, feeds)[0], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_layer_norm_other_float_types(jit, dtype):
    model, feeds = _ln_model((3, 64), -1, dtype=dtype)
    got = _run(model, feeds)[0]
    assert got.dtype == dtype
    tol = 2e-2 if dtype == np.float16 else 1e-10
    np.testing.assert_allclose(got, _reference(model, feeds)[0], rtol=tol, atol=tol)


def test_layer_norm_rows_with_nan_and_inf_are_nan(jit):
    model, feeds = _ln_model((4, 48), -1)
    feeds["x"][1, 7] = np.nan
    feeds["x"][2, 3] = np.inf
    got = _run(model, feeds)[0]
    assert np.isnan(got[1]).all() and np.isnan(got[2]).all()
    assert np.isfinite(got[[0, 3]]).all()


def test_layer_norm_split_over_threads_matches(jit, monkeypatch):
    monkeypatch.setattr(_norm_loops, "_LN_SPLIT_ELEMENTS", 1)
    model, feeds = _ln_model((1, 97, 96), -1)
    np.testing.assert_allclose(
        _run(model, feeds, threads=2)[0], _reference(model, feeds)[0], rtol=1e-4, atol=1e-4
    )


# --------------------------------------------------------------------------- the loops directly

needs_numba = pytest.mark.skipif(not _jit.enabled(), reason="numba is not usable")


def _numpy_layer_norm(x2, scale, bias, eps):
    x64 = x2.astype(np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(((x64 - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    return (x64 - mean) * inv * scale + bias, mean[:, 0], inv[:, 0]


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 7, 8, 768, 1000])
def test_layer_norm_loop_against_float64_numpy(dtype, cols):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((9, cols)) * 5 + 100).astype(dtype)  # an offset mean
    s, b = rng.standard_normal(cols).astype(dtype), rng.standard_normal(cols).astype(dtype)
    y, mean, inv = _norm_loops.layer_norm(x, s, b, 1e-5)
    want_y, want_mean, want_inv = _numpy_layer_norm(x, s, b, 1e-5)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    assert y.dtype == mean.dtype == inv.dtype == dtype
    np.testing.assert_allclose(y, want_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(inv, want_inv, rtol=tol)


def _numpy_bn(x, a, b, activation, params):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = x * a.reshape(shape) + b.reshape(shape)
    if activation == "Relu":
        y = np.maximum(y, 0)
    elif activation == "LeakyRelu":
        y = (np.maximum if params[0] <= 1 else np.minimum)(y, y * x.dtype.type(params[0]))
    elif activation == "Clip":
        y = np.minimum(np.maximum(y, x.dtype.type(params[0])), x.dtype.type(params[1]))
    return y


@needs_numba
@pytest.mark.parametrize(
    "activation, params",
    [("", []), ("Relu", []), ("LeakyRelu", [0.1]), ("LeakyRelu", [3.0]), ("Clip", [-1.0, 0.5])],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_loop_is_the_numpy_passes_exactly(dtype, activation, params):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6, 7)).astype(dtype)
    x[0, 1, 2, :3] = [np.nan, np.inf, -np.inf]
    a, b = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    got = _norm_loops.batch_norm(x, a, b, activation, params)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, _numpy_bn(x, a, b, activation, params))


@needs_numba
@pytest.mark.parametrize("activation, params", [("Relu", []), ("LeakyRelu", [0.1])])
def test_loops_split_over_numbas_threads_give_the_same_bits(activation, params, monkeypatch):
    """Split in parts on numba's threads (``_native``), each row is computed as on one thread."""
    from tessera_cpu import _native, _parallel

    if not _native.enabled():
        pytest.skip("numba's OpenMP/TBB layer is not usable here")
    monkeypatch.setattr(_norm_loops, "_NATIVE_SPLIT_ELEMENTS", 0)
    seen = record_parts(monkeypatch)
    old = _parallel.threads()
    _parallel.configure(2)
    _parallel.run_started()
    try:
        rng = np.random.default_rng(3)
        x = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
        a, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
        got = _norm_loops.batch_norm(x, a, b, activation, params, native=True)
        np.testing.assert_array_equal(got, _numpy_bn(x, a, b, activation, params))
        x2 = rng.standard_normal((33, 40)).astype(np.float32)
        s, bias = rng.standard_normal(40).astype(np.float32), np.zeros(40, np.float32)
        split = _norm_loops.layer_norm(x2, s, bias, 1e-5, native=True)
        whole = _norm_loops.layer_norm(x2, s, bias, 1e-5)
        for g, w in zip(split, whole):
            np.testing.assert_array_equal(g, w)
    finally:
        _parallel.run_ended()
        _parallel.configure(old)
    assert seen == [2, 2]
