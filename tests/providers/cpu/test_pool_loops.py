"""The pools' compiled loops (kernels/_pool_loops.py) against onnx's ReferenceEvaluator, with the
loops on (split over numba's or Python threads) and off, and the switch that turns them off."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, reference
from support.native_threads import record_parts

import tessera
from tessera_cpu import _jit, _native, _parallel
from tessera_cpu.kernels import _pool_loops

pytest.importorskip("numba")

_rng = np.random.default_rng(7)


@pytest.fixture(params=["native", "loops", "numpy"])
def mode(request, monkeypatch):
    """Each test runs with the compiled loops split over numba's threads (every pool counts as
    large), with the loops split over Python threads, and with the NumPy forms; the loop modes
    also check that the loops ran, and the native mode that they ran in parallel parts."""
    calls, parts = [], []
    if request.param == "numpy":
        monkeypatch.setenv(_jit.ENV, "0")
    else:
        monkeypatch.delenv(_jit.ENV, raising=False)
        for name in ("reduce_axis", "pool2d"):  # per-axis loops, and 2-D pools' single loop
            real = getattr(_pool_loops, name)
            monkeypatch.setattr(
                _pool_loops, name, lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k)
            )
    if request.param == "native":
        if not _native.enabled():
            pytest.skip("numba's OpenMP/TBB layer is not usable here")
        monkeypatch.delenv(_native.ENV, raising=False)
        monkeypatch.setattr(_pool_loops, "_NATIVE_TAPS", 0)
        parts = record_parts(monkeypatch)
    else:
        monkeypatch.setenv(_native.ENV, "0")
    yield request.param
    assert bool(calls) == (request.param != "numpy")
    if request.param == "native" and _parallel.default_threads() > 1:
        assert max(parts, default=0) > 1, "no pool was split over numba's threads"


def _model(op, x, **attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("x", elem, None)],
        [helper.make_tensor_value_info("y", elem, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])


def _run(op, x, **attrs):
    model = _model(op, x, **attrs)
    session = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    return session.run(None, {"x": x})[0]


def _check(op, x, **attrs):
    expected = reference.ReferenceEvaluator(_model(op, x, **attrs)).run(None, {"x": x})[0]
    got = _run(op, x, **attrs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


WINDOWS = [
    dict(kernel_shape=[3, 3], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 2], strides=[1, 3], pads=[2, 0, 1, 1], dilations=[2, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[5, 5], strides=[1, 1], auto_pad="SAME_UPPER"),
]


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(map(str, w.values())))
# Rows 48 and wider take the single 2-D loop (pool2d), narrower ones the per-axis loops.
@pytest.mark.parametrize("shape", [(1, 3, 13, 13), (2, 4, 28, 28), (1, 2, 7, 30), (1, 2, 9, 61)])
def test_max_pool_matches_reference(mode, window, shape):
    _check("MaxPool", _rng.standard_normal(shape).astype(np.float32), **window)


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(map(str, w.values())))
@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("shape", [(2, 3, 14, 15), (1, 2, 9, 61)])
def test_average_pool_matches_reference(mode, window, include_pad, shape):
    x = _rng.standard_normal(shape).astype(np.float32)
    _check("AveragePool", x, count_include_pad=include_pad, **window)


@pytest.mark.parametrize("shape", [(1, 2, 17), (1, 2, 6, 7, 8)])
def test_pools_of_other_ranks(mode, shape):
    nd = len(shape) - 2
    x = _rng.standard_normal(shape).astype(np.float64)
    _check("MaxPool", x, kernel_shape=[3] * nd, strides=[2] * nd, pads=[1] * (2 * nd))
    _check("AveragePool", x, kernel_shape=[2] * nd, pads=[0, 1] * nd)


def test_int8_max_pool(mode):
    for shape in ((1, 3, 9, 9), (1, 2, 5, 50)):  # both loop forms
        x = _rng.integers(-128, 128, shape).astype(np.int8)
        _check("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("width", [12, 52])
def test_max_pool_propagates_nan_like_numpy(mode, width):
    # np.maximum's rule, in both forms (the ReferenceEvaluator skips NaN instead).
    x = _rng.standard_normal((1, 2, 12, width)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan  # a border window
    x[0, 1, 6, 6] = np.nan  # an interior window
    y = _run("MaxPool", x, kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    assert np.isnan(y[0, 0, :2, :2]).all() and np.isnan(y[0, 1, 5:8, 5:8]).all()
    assert np.isnan(y).sum() == 4 + 9


def test_loops_are_off_when_the_environment_says_so(monkeypatch):
    monkeypatch.setenv(_jit.ENV, "0")
    assert not _jit.enabled()
    monkeypatch.setenv(_jit.ENV, "1")
    assert _jit.enabled()


def test_a_loop_without_numba_says_what_the_kernel_should_have_checked(monkeypatch):
    monkeypatch.setattr(_jit, "_numba", lambda: None)
    assert not _jit.enabled()

    @_jit.loop
    def add_one(x):
        return x + 1

    with pytest.raises(RuntimeError, match="enabled"):
        add_one(1)
