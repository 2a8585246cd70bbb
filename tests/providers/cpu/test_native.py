"""The CPU provider's native threads (``tessera_cpu._native``) and NumPy's GEMM (``_blas``):
who gets the threads, when the native form stays off, and a forked child's fallback."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest
from onnx import helper, numpy_helper

import tessera
from tessera_cpu import _blas, _jit, _native, _parallel


@pytest.fixture
def native(monkeypatch):
    if not (_jit.enabled() and _native.available(np.float32)):
        pytest.skip("numba's OpenMP/TBB layer or NumPy's CBLAS gemm is not usable here")
    monkeypatch.delenv(_native.ENV, raising=False)
    old = _parallel.threads()
    _parallel.configure(2)
    yield
    _parallel.configure(old)


def test_numpys_gemm_is_found_for_float32_and_float64_only():
    if not _blas.address(np.float32):
        pytest.skip("NumPy's BLAS has no 64-bit CBLAS gemm here")
    assert _blas.address(np.float64)
    assert _blas.address(np.float32) != _blas.address(np.float64)
    assert _blas.address(np.float16) == 0 and _blas.address(np.int32) == 0


def test_a_region_splits_only_during_a_run(native):
    with _native.region(2) as parts:
        assert parts == 1  # BLAS may have its own threads outside a run
    _parallel.run_started()
    try:
        with _native.region(2) as parts:
            assert parts == 2
        with _native.region(8) as parts:
            assert parts == 2  # never more than the pool
    finally:
        _parallel.run_ended()


def test_a_concurrent_caller_runs_serially(native):
    """While one thread holds the native threads, another gets 1 (no second OpenMP team)."""
    _parallel.run_started()
    seen = []
    try:
        with _native.region(2) as parts:
            assert parts == 2
            t = threading.Thread(target=lambda: seen.append(_native.region(2).__enter__()))
            t.start()
            t.join()
    finally:
        _parallel.run_ended()
    assert seen == [1]


def test_env_and_blas_threads_turn_the_native_form_off(native, monkeypatch):
    from tessera_cpu._factory import CPUProviderFactory

    factory = CPUProviderFactory()
    assert factory.create({"intra_op_num_threads": 2}).efficient_intra_op
    assert not factory.create({"intra_op_num_threads": 1}).efficient_intra_op
    assert not factory.create({"intra_op_num_threads": 2, "blas_threads": 0}).efficient_intra_op
    monkeypatch.setenv(_native.ENV, "0")
    assert not _native.available(np.float32)
    assert not factory.create({"intra_op_num_threads": 2}).efficient_intra_op


def _conv_model() -> tuple[bytes, dict]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 8, 20, 20)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", 1, x.shape)],
        [helper.make_tensor_value_info("y", 1, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model.SerializeToString(), {"x": x}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_falls_back_to_python_threads(native):
    """GNU OpenMP cannot start a region in a child forked after the parent used it (numba
    kills such a child); the child turns the native form off and still runs convolutions."""
    data, feeds = _conv_model()
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = tessera.InferenceSession(data, opts, providers=["cpu"])
    want = sess.run(None, feeds)[0]  # the parent's OpenMP team is now running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            fresh = tessera.InferenceSession(data, opts, providers=["cpu"])
            got = fresh.run(None, feeds)[0]
            ok = not _native.available(np.float32) and np.allclose(got, want, atol=1e-4)
            ok = ok and not fresh._providers[-1].efficient_intra_op
            code = 0 if ok else 3
        except BaseException:  # noqa: BLE001
            code = 2
        finally:
            os.write(write, bytes([code]))
            sys.stdout.flush()
            os._exit(code)
    os.close(write)
    status = os.read(read, 1)
    os.close(read)
    _, exit_status = os.waitpid(pid, 0)
    assert status == b"\x00", f"child failed with code {status!r} (exit status {exit_status})"


@pytest.mark.parametrize(
    "a_shape, a_perm, b_shape, b_perm",
    [
        ((1, 16, 4, 8), (0, 2, 1, 3), (1, 16, 4, 8), (0, 2, 3, 1)),  # attention's Q @ K^T
        ((1, 4, 16, 16), None, (1, 16, 4, 8), (0, 2, 1, 3)),  # P @ V
        ((3, 1, 5, 7), None, (4, 7, 6), None),  # stacks that broadcast
        ((2, 5, 7), None, (7, 6), None),  # a 2-D right operand, broadcast
        ((6, 9, 1), None, (6, 1, 4), None),  # k = 1
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_stacked_products_are_numpys_bits(a_shape, a_perm, b_shape, b_perm, threads, native):
    """Stacks of products on numba's threads, operands as transposed views (BLAS's transpose
    flag, no copy): the same bits as np.matmul."""
    from tessera_cpu.kernels import _gemm_loops

    rng = np.random.default_rng(4)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    a = a.transpose(a_perm) if a_perm else a
    b = b.transpose(b_perm) if b_perm else b
    _parallel.configure(threads)
    _parallel.run_started()
    try:
        got = _gemm_loops.batched(a, b)
    finally:
        _parallel.run_ended()
    assert got is not None
    want = np.matmul(a, b)
    assert got.shape == want.shape and got.tobytes() == want.tobytes()


def test_stacked_products_decline_layouts_blas_cannot_read(native):
    from tessera_cpu.kernels import _gemm_loops

    a = np.ones((2, 4, 6), np.float32)[:, :, ::2]  # no axis of unit stride
    assert _gemm_loops.batched(a, np.ones((2, 3, 5), np.float32)) is None
    assert (
        _gemm_loops.batched(np.ones((2, 4, 3), np.float16), np.ones((2, 3, 5), np.float16)) is None
    )


@pytest.mark.parametrize("n", [1, 5, 16, 17, 128, 1000])
def test_softmax_loop_matches_float64_and_keeps_nan_rows(n, native):
    """The last-axis Softmax loop (own row maximum, vectorizable exp) on numba's threads:
    within a few ulp of float64, and a NaN or +inf in a row makes that row NaN (NumPy's passes
    do the same)."""
    from tessera_cpu.kernels import _math_loops

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((40, n)) * 4).astype(np.float32)
    x[1, 0] = np.nan
    x[2, n // 2] = np.inf
    x[3] = -np.inf
    if n > 1:
        x[4, 0] = -np.inf  # one -inf among finite values: that output is 0
    _parallel.run_started()
    try:
        got = _math_loops.softmax_rows(x, True)
    finally:
        _parallel.run_ended()
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(x64 - x64.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, atol=1e-30)
    assert np.isnan(got[[1, 2, 3]]).all() and not np.isnan(got[4]).any()


def test_attention_softmax_takes_the_loop(native, monkeypatch):
    from onnx import TensorProto

    from tessera_cpu.kernels import _math_loops

    calls = []
    real = _math_loops.softmax_rows
    monkeypatch.setattr(_math_loops, "softmax_rows", lambda *a: calls.append(1) or real(*a))
    x = np.random.default_rng(6).standard_normal((1, 4, 64, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    got = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"]).run(None, {"x": x})
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(got[0], e / e.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert calls


@pytest.mark.parametrize("native_form", ["1", "0"], ids=["native", "python-threads"])
def test_sessions_with_different_thread_counts_run_at_once(native_form, monkeypatch):
    """The pool is process-wide and each run sizes it to its session's count; a pool replaced
    while another run uses it lets that run finish (no hang, right results)."""
    from tessera_cpu.kernels import _conv2d

    monkeypatch.setenv(_native.ENV, native_form)
    monkeypatch.setattr(_conv2d, "_PARALLEL_MACS", 0)  # every convolution splits
    monkeypatch.setattr(_conv2d, "_NATIVE_PARALLEL_MACS", 0)
    data, feeds = _conv_model()
    sessions = []
    for threads in (1, 2):
        opts = tessera.SessionOptions()
        opts.intra_op_num_threads = threads
        sessions.append(tessera.InferenceSession(data, opts, providers=["cpu"]))
    want = sessions[0].run(None, feeds)[0]
    errors = []

    def work(sess):
        try:
            for _ in range(40):
                np.testing.assert_allclose(sess.run(None, feeds)[0], want, rtol=1e-5, atol=1e-5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a run hung"
    assert not errors, errors[0]
    sessions[1].run(None, feeds)
    assert _parallel.threads() == 2


def test_a_threading_layer_that_fails_leaves_the_python_threads(monkeypatch, caplog):
    """If numba's parallel loops cannot run (no usable threading layer), the native form is
    off with a warning, and convolutions still run."""
    if not _jit.enabled() or not _blas.address(np.float32):
        pytest.skip("needs numba and NumPy's CBLAS gemm")

    def broken(out):
        raise RuntimeError("no threading layer")

    monkeypatch.setattr(_native, "_probe", broken)
    monkeypatch.setitem(_native._state, "checked", False)
    monkeypatch.setitem(_native._state, "ok", False)
    monkeypatch.setitem(_native._state, "layer", None)
    monkeypatch.delenv(_native.ENV, raising=False)
    with caplog.at_level("WARNING", logger="tessera.cpu"):
        assert not _native.available(np.float32)
    assert "no threading layer" in caplog.text
    data, feeds = _conv_model()
    got = tessera.InferenceSession(data, providers=["cpu"]).run(None, feeds)[0]
    assert got.shape == (1, 16, 20, 20)
