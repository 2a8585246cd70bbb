"""The CPU provider's own GEMM tile kernel (``tessera_cpu._tiles``) and the loops around it
(``kernels/_gemm_loops.py``).

The kernel runs on AVX-512 hosts only; elsewhere products keep NumPy's BLAS and the compiled
tests skip (the packing layouts, pure NumPy, are checked everywhere).
"""

from __future__ import annotations

import numpy as np
import pytest

from tessera_cpu import _jit, _tiles

MR, NR = _tiles.MR, _tiles.NR


@pytest.fixture
def loops(monkeypatch):
    if not _jit.enabled():
        pytest.skip("numba is not usable here")
    monkeypatch.delenv(_tiles.ENV, raising=False)
    if not _tiles.available(np.float32):
        pytest.skip("the tile kernel needs AVX-512")
    from tessera_cpu.kernels import _gemm_loops

    return _gemm_loops


@pytest.mark.parametrize("shape", [(1, 1), (12, 5), (13, 7), (30, 3)])
def test_row_panels_are_k_major_with_zero_rows(shape):
    m, k = shape
    a = np.arange(1, m * k + 1, dtype=np.float32).reshape(m, k)
    packed = _tiles.pack(a)
    assert packed.shape == (_tiles.packed_size(m, k),) == (-(-m // MR) * MR * k,)
    for i in range(-(-m // MR) * MR):
        for kk in range(k):
            assert packed[(i // MR * k + kk) * MR + i % MR] == (a[i, kk] if i < m else 0)


@pytest.mark.parametrize("shape", [(1, 1), (5, 32), (3, 33), (7, 70)])
def test_column_panels_are_k_major_with_zero_columns(shape):
    k, n = shape
    b = np.arange(1, k * n + 1, dtype=np.float32).reshape(k, n)
    packed = _tiles.pack_columns(b)
    assert packed.shape == (-(-n // NR) * NR * k,)
    for kk in range(k):
        for j in range(-(-n // NR) * NR):
            assert packed[(j // NR * k + kk) * NR + j % NR] == (b[kk, j] if j < n else 0)


def test_the_environment_turns_the_kernel_off(monkeypatch):
    monkeypatch.setenv(_tiles.ENV, "0")
    assert not _tiles.available(np.float32)
    monkeypatch.delenv(_tiles.ENV)
    assert not _tiles.available(np.float64)  # float32 only


def test_l2_size_is_read_or_defaults():
    assert _tiles.l2_bytes() >= 64 << 10


@pytest.mark.parametrize("shape", [(1, 1), (13, 7), (25, 300)])
def test_compiled_row_packing_matches_the_reference_layout(loops, shape):
    m, k = shape
    a = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
    ap = np.full(_tiles.packed_size(m, k), np.nan, np.float32)
    rows = -(-m // MR)
    loops._pack_rows(a.reshape(-1), ap, m, k, 0, rows // 2)  # two parts, as two threads do
    loops._pack_rows(a.reshape(-1), ap, m, k, rows // 2, rows)
    np.testing.assert_array_equal(ap, _tiles.pack(a))


CASES = [
    # m, k, n: whole tiles, edges both ways, k over several KC blocks, one k, a single row
    (12, 16, 32),
    (13, 7, 33),
    (24, 600, 64),
    (5, 1, 70),
    (1, 40, 100),
]


@pytest.mark.parametrize(("m", "k", "n"), CASES)
@pytest.mark.parametrize("addends", [False, True])
def test_tile_bands_match_numpy(loops, m, k, n, addends):
    """y = a @ w (+ bias) (+ z) over column panels split in two parts, edges included."""
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    empty = np.empty(0, np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if addends else empty
    z = rng.standard_normal((m, n)).astype(np.float32) if addends else None
    ap = np.empty(_tiles.packed_size(m, k), np.float32)
    loops._pack_rows(a.reshape(-1), ap, m, k, 0, -(-m // MR))
    y = np.full((m, n), np.nan, np.float32)
    wp = _tiles.pack_columns(w)
    panels = -(-n // NR)
    zf = empty if z is None else z.reshape(-1)
    for q0, q1 in ((0, panels // 2), (panels // 2, panels)):
        loops._tile_band(ap, wp, y.reshape(-1), bias, zf, m, k, n, q0, q1)
    want = a.astype(np.float64) @ w.astype(np.float64)
    if addends:
        want = want + bias + z
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_a_kernel_that_fails_its_self_check_leaves_blas_with_a_warning(monkeypatch, caplog):
    """Another llvmlite may refuse the IR or compute wrong: the products then keep BLAS."""
    if not _tiles._host_has_avx512():
        pytest.skip("the tile kernel needs AVX-512")
    from tessera_cpu.kernels import _gemm_loops

    monkeypatch.delenv(_tiles.ENV, raising=False)
    try:
        for outcome in (lambda: False, lambda: (_ for _ in ()).throw(RuntimeError("no such IR"))):
            _tiles._works.cache_clear()
            monkeypatch.setattr(_gemm_loops, "tile_self_check", outcome)
            with caplog.at_level("WARNING", logger="tessera.cpu"):
                assert not _tiles.available(np.float32)
                assert _gemm_loops.pack_weights(np.ones((4, 4), np.float32)) is None
            assert "tile kernel" in caplog.text
            caplog.clear()
    finally:  # the failed outcome must not stay cached for the tests after this one
        _tiles._works.cache_clear()
        monkeypatch.undo()
    if _jit.enabled():
        assert _tiles.available(np.float32)  # the real check passes here


@pytest.mark.parametrize(("dtype", "packs"), [(np.float32, True), (np.float16, False)])
def test_only_float32_matmuls_pack_their_weights(loops, monkeypatch, dtype, packs):
    """A float16 MatMul computes in float32 through BLAS, never the tile form: packing its
    widened weights would only keep a second copy of them."""
    from onnx import TensorProto, helper, numpy_helper

    import tessera

    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.FLOAT16
    w = numpy_helper.from_array(np.ones((64, 40), dtype), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", elem, [3, 64])],
        [helper.make_tensor_value_info("y", elem, None)],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    packed = []
    real = loops.pack_weights
    monkeypatch.setattr(loops, "pack_weights", lambda b: packed.append(b) or real(b))
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    (y,) = sess.run(None, {"x": np.ones((3, 64), dtype)})
    np.testing.assert_allclose(y.astype(np.float32), 64.0)
    assert bool(packed) == packs
