"""Reduction and linear-algebra CPU kernels: edge cases and error paths the node suite misses."""

from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest

tessera = pytest.importorskip("tessera")
ort = pytest.importorskip("onnxruntime")
from support.single_node import run_single_node, single_node_model  # noqa: E402

# Defaults for this file's cases; each call may still pass opset=, n_out=, consts=.
_model = functools.partial(single_node_model, opset=18)
_run = functools.partial(run_single_node, tessera, opset=18)
_ort = functools.partial(run_single_node, ort, opset=18)


def _axes(*a) -> np.ndarray:
    return np.array(a, dtype=np.int64)


rng = np.random.default_rng(0)


# --- Reduce* -------------------------------------------------------------------------------


def test_reduce_sum_int64_stays_exact_and_int64():
    x = np.array([[2**60, 3], [2**60, -1]], dtype=np.int64)
    (y,) = _run("ReduceSum", [x, _axes(0)], {"keepdims": 0}, opset=13)
    assert y.dtype == np.int64
    assert y.tolist() == [2**61, 2]


def test_reduce_sum_int32_is_not_promoted_to_int64():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    (y,) = _run("ReduceSum", [x], {"keepdims": 1}, opset=13)
    assert y.dtype == np.int32 and y.shape == (1, 1) and y.item() == 66


def test_reduce_sum_float32_stays_float32():
    x = rng.standard_normal((4, 5)).astype(np.float32)
    (y,) = _run("ReduceSum", [x, _axes(-1)], opset=13)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x.sum(-1, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize(
    ("op", "dtype", "expected"),
    [
        ("ReduceMax", np.float32, -np.inf),
        ("ReduceMax", ml_dtypes.bfloat16, -np.inf),
        ("ReduceMin", np.float32, np.inf),
        ("ReduceMax", np.int32, np.iinfo(np.int32).min),
        ("ReduceMin", np.uint8, 255),
        ("ReduceMax", np.bool_, False),
        ("ReduceSum", np.float32, 0.0),
        ("ReduceProd", np.int64, 1),
        ("ReduceLogSumExp", np.float32, -np.inf),
        ("ReduceLogSum", np.float64, -np.inf),
        ("ReduceSumSquare", np.float32, 0.0),
    ],
)
def test_reduce_over_empty_set_gives_identity(op, dtype, expected):
    x = np.zeros((2, 0, 3), dtype=dtype)
    (y,) = _run(op, [x, _axes(1)], {"keepdims": 0}, opset=20)
    assert y.dtype == dtype and y.shape == (2, 3)
    assert np.all(y == expected)


def test_reduce_mean_over_empty_set_is_zero_like_onnxruntime():
    x = np.zeros((2, 0), dtype=np.float32)
    (y,) = _run("ReduceMean", [x, _axes(1)])
    assert np.array_equal(y, np.zeros((2, 1), np.float32))


@pytest.mark.parametrize(
    ("op", "fn"),
    [
        ("ReduceSum", lambda x: x),
        ("ReduceSumSquare", np.square),
        ("ReduceLogSum", np.log),
        ("ReduceL1", np.abs),
        ("ReduceMax", lambda x: x),
        ("ReduceLogSumExp", lambda x: x),
    ],
)
def test_noop_with_empty_axes_keeps_the_elementwise_part(op, fn):
    x = rng.random((2, 3)).astype(np.float32) + 0.5
    (y,) = _run(op, [x, np.zeros(0, np.int64)], {"noop_with_empty_axes": 1}, opset=18)
    np.testing.assert_allclose(y, fn(x), rtol=1e-6)


def test_empty_axes_without_noop_reduce_everything():
    x = rng.random((2, 3)).astype(np.float32)
    (y,) = _run("ReduceMax", [x, np.zeros(0, np.int64)], {"keepdims": 0})
    assert y.shape == () and y.item() == pytest.approx(x.max())


def test_runtime_axes_input_with_negative_axes_matches_onnxruntime():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for op in ("ReduceL2", "ReduceMean", "ReduceProd", "ReduceLogSumExp"):
        got = _run(op, [x, _axes(-1, 0)], {"keepdims": 0})[0]
        want = _ort(op, [x, _axes(-1, 0)], {"keepdims": 0})[0]
        assert got.shape == want.shape == (3,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_axes_attribute_of_old_opsets_with_negative_axis():
    x = rng.standard_normal((2, 3, 4)).astype(np.float64)
    (y,) = _run("ReduceMin", [x], {"axes": [-2], "keepdims": 0}, opset=11)
    np.testing.assert_array_equal(y, x.min(axis=1))


def test_reduce_mean_of_integers_truncates_toward_zero():
    x = np.array([[-3, -4], [3, 4]], dtype=np.int64)
    (y,) = _run("ReduceMean", [x, _axes(1)], {"keepdims": 0})
    assert y.tolist() == [-3, 3]


def test_reduce_log_sum_exp_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf]], dtype=np.float32)
    (y,) = _run("ReduceLogSumExp", [x, _axes(1)], {"keepdims": 0})
    np.testing.assert_allclose(y, [1000 + np.log(2), -1000], rtol=1e-6)


def test_reduce_keeps_16_bit_float_dtypes():
    x = rng.random((3, 4)).astype(np.float16)
    (y,) = _run("ReduceSumSquare", [x, _axes(1)])
    assert y.dtype == np.float16
    np.testing.assert_allclose(
        y.astype(np.float32), np.square(x.astype(np.float32)).sum(1, keepdims=True), rtol=2e-3
    )
    xb = x.astype(ml_dtypes.bfloat16)
    (yb,) = _run("ReduceMean", [xb, _axes(0)])
    assert yb.dtype == ml_dtypes.bfloat16


def test_reduce_axis_out_of_range_is_a_clear_error():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(Exception, match="out of range"):
        _run("ReduceSum", [x, _axes(2)], consts={1}, opset=13)


def test_reduce_repeated_axis_is_rejected():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(Exception, match="repeat"):
        _run("ReduceMax", [x], {"axes": [1, -1]}, opset=13)


def test_reduce_log_sum_exp_declines_integer_input():
    from tessera._kernels import NodeInfo
    from tessera_cpu.kernels import registry

    info = NodeInfo(
        op_type="ReduceLogSumExp",
        domain="",
        name="n",
        opset=18,
        attrs={},
        inputs=["x"],
        outputs=["y"],
        input_types=["tensor(int32)"],
        output_types=[None],
        input_shapes=[None],
    )
    assert isinstance(registry.find(info), str)
    info.input_types = ["tensor(float)"]
    assert not isinstance(registry.find(info), str)


# --- ArgMax / ArgMin -----------------------------------------------------------------------


def test_argmax_select_last_index_picks_the_last_tie():
    x = np.array([[1, 5, 5, 2], [7, 7, 0, 7]], dtype=np.int32)
    (first,) = _run("ArgMax", [x], {"axis": -1, "keepdims": 0}, opset=13)
    (last,) = _run("ArgMax", [x], {"axis": -1, "keepdims": 0, "select_last_index": 1}, opset=13)
    assert first.dtype == np.int64
    assert first.tolist() == [1, 0] and last.tolist() == [2, 3]


def test_argmin_on_bfloat16_keeps_dims():
    x = np.array([[3, 1, 2], [0, 4, 0]], dtype=np.float32).astype(ml_dtypes.bfloat16)
    (y,) = _run("ArgMin", [x], {"axis": 1}, opset=13)
    assert y.shape == (2, 1) and y.ravel().tolist() == [1, 0]


def test_argmax_over_an_empty_axis_is_a_clear_error():
    with pytest.raises(Exception, match="empty axis"):
        _run("ArgMax", [np.zeros((2, 0), np.float32)], {"axis": 1}, opset=13)


# --- CumSum / CumProd ----------------------------------------------------------------------


def _ref_scan(x, axis, exclusive, reverse, fn):
    v = np.flip(x, axis) if reverse else x
    r = fn(v.astype(np.float64), axis=axis)
    if exclusive:
        ident = 1.0 if fn is np.cumprod else 0.0
        first = np.full_like(np.take(r, [0], axis=axis), ident)
        r = np.concatenate([first, np.take(r, range(r.shape[axis] - 1), axis=axis)], axis=axis)
    return np.flip(r, axis) if reverse else r


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_on_wide_tensors_matches_reference(exclusive, reverse, axis):
    # Wide inner blocks take the per-position path; the last axis takes numpy's accumulate.
    x = rng.integers(-5, 6, (6, 5, 700)).astype(np.int32)
    (y,) = _run(
        "CumSum",
        [x, np.array(axis, np.int64)],
        {"exclusive": exclusive, "reverse": reverse},
        opset=14,
    )
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, _ref_scan(x, axis, exclusive, reverse, np.cumsum))


def test_cumsum_with_constant_int32_axis_and_float16():
    x = rng.random((3, 4)).astype(np.float16)
    (y,) = _run("CumSum", [x, np.array([1], np.int32)], consts={1}, opset=14)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), np.cumsum(x.astype(np.float64), 1), rtol=2e-3)


def test_cumprod_exclusive_reverse():
    x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    (y,) = _run("CumProd", [x, np.array(0, np.int64)], {"exclusive": 1, "reverse": 1}, opset=26)
    assert y.tolist() == [24.0, 12.0, 4.0, 1.0]


def test_cumsum_rejects_a_non_scalar_axis():
    with pytest.raises(Exception, match="scalar"):
        _run("CumSum", [np.zeros((2, 2), np.float32), np.array([0, 1], np.int64)], opset=14)


# --- Softmax / LogSoftmax / Hardmax --------------------------------------------------------


def test_softmax_opset_11_normalizes_over_the_flattened_trailing_block():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    (old,) = _run("Softmax", [x], {"axis": 1}, opset=11)
    (new,) = _run("Softmax", [x], {"axis": 1}, opset=13)
    np.testing.assert_allclose(old.reshape(2, -1).sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(new.sum(1), 1.0, rtol=1e-5)
    assert not np.allclose(old, new)
    np.testing.assert_allclose(old, _ort("Softmax", [x], {"axis": 1}, opset=11)[0], rtol=1e-5)


def test_softmax_and_log_softmax_are_stable_for_huge_inputs():
    x = np.array([[1e4, 1e4 - 1, -1e4]], dtype=np.float32)
    (s,) = _run("Softmax", [x], opset=13)
    (ls,) = _run("LogSoftmax", [x], opset=13)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(ls))
    np.testing.assert_allclose(ls, _ort("LogSoftmax", [x], opset=13)[0], rtol=1e-6)


def test_softmax_keeps_float16_and_bfloat16():
    x = rng.standard_normal((3, 5)).astype(np.float16)
    (y,) = _run("Softmax", [x], opset=13)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32).sum(-1), 1.0, rtol=2e-3)
    (yb,) = _run("LogSoftmax", [x.astype(ml_dtypes.bfloat16)], opset=13)
    assert yb.dtype == ml_dtypes.bfloat16


def test_softmax_of_an_empty_tensor_is_empty():
    (y,) = _run("Softmax", [np.zeros((0, 3), np.float32)], opset=13)
    assert y.shape == (0, 3) and y.dtype == np.float32


def test_hardmax_marks_only_the_first_maximum():
    x = np.array([[3, 3, 1], [0, 2, 2]], dtype=np.float32)
    (y,) = _run("Hardmax", [x], opset=13)
    assert y.tolist() == [[1, 0, 0], [0, 1, 0]]


def test_hardmax_opset_11_one_hot_over_flattened_block():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    (y,) = _run("Hardmax", [x], {"axis": 1}, opset=11)
    assert y.reshape(2, -1).sum(1).tolist() == [1, 1]
    np.testing.assert_array_equal(y, _ort("Hardmax", [x], {"axis": 1}, opset=11)[0])


def test_softmax_axis_out_of_range_is_a_clear_error():
    with pytest.raises(Exception, match="out of range"):
        _run("Softmax", [np.zeros((2, 3), np.float32)], {"axis": 2}, opset=13)


# --- TopK ----------------------------------------------------------------------------------


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_topk_ties_on_long_rows_prefer_lower_indices(largest, k):
    # Few distinct values over long rows: every cut falls inside a run of ties.
    x = rng.integers(0, 4, (3, 500)).astype(np.float32)
    values, indices = _run(
        "TopK", [x, np.array([k], np.int64)], {"largest": largest}, opset=11, n_out=2
    )
    key = -x if largest else x
    want = np.argsort(key, axis=-1, kind="stable")[:, :k]
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_array_equal(values, np.take_along_axis(x, want, -1))
    assert indices.dtype == np.int64


def test_topk_largest_on_int8_handles_the_minimum_value():
    x = np.array([-128, 127, -128, 0, 5], dtype=np.int8)
    values, indices = _run("TopK", [x, np.array([5], np.int64)], {"axis": 0}, opset=11, n_out=2)
    assert values.dtype == np.int8
    assert values.tolist() == [127, 5, 0, -128, -128] and indices.tolist() == [1, 4, 3, 0, 2]


def test_topk_opset_1_takes_k_from_the_attribute_on_a_middle_axis():
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    values, indices = _run("TopK", [x], {"axis": 1, "k": 2}, opset=1, n_out=2)
    want = np.argsort(-x, axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(indices, want)
    assert values.shape == (2, 2, 3)


def test_topk_with_k_zero_gives_empty_outputs():
    values, indices = _run(
        "TopK", [np.ones((2, 3), np.float32), np.array([0], np.int64)], opset=11, n_out=2
    )
    assert values.shape == indices.shape == (2, 0)


def test_topk_with_k_larger_than_the_axis_is_a_clear_error():
    with pytest.raises(Exception, match="out of range"):
        _run("TopK", [np.ones((2, 3), np.float32), np.array([4], np.int64)], opset=11, n_out=2)


# --- MatMul / Gemm -------------------------------------------------------------------------


def test_matmul_keeps_float32_and_broadcasts_batches():
    a = rng.standard_normal((2, 1, 3, 4)).astype(np.float32)
    b = rng.standard_normal((5, 4, 6)).astype(np.float32)
    (y,) = _run("MatMul", [a, b], opset=13)
    assert y.dtype == np.float32 and y.shape == (2, 5, 3, 6)
    np.testing.assert_allclose(y, np.matmul(a, b), rtol=1e-5)


def test_matmul_of_two_vectors_is_a_0d_array():
    (y,) = _run("MatMul", [np.ones(3, np.float32), np.ones(3, np.float32)], opset=13)
    assert isinstance(y, np.ndarray) and y.shape == () and y.item() == 3.0


def test_matmul_float16_with_constant_b():
    a = rng.standard_normal((3, 4)).astype(np.float16)
    b = rng.standard_normal((4, 2)).astype(np.float16)
    (y,) = _run("MatMul", [a, b], consts={1}, opset=13)
    assert y.dtype == np.float16
    np.testing.assert_allclose(
        y.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32), rtol=2e-3, atol=2e-3
    )


@pytest.mark.parametrize("consts", [(), (1,), (1, 2)])
def test_gemm_constant_b_transposed_with_alpha_beta_and_vector_c(consts):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    c = rng.standard_normal((5,)).astype(np.float32)
    attrs = {"transA": 1, "transB": 1, "alpha": 0.5, "beta": -2.0}
    a_t = np.ascontiguousarray(a.T)
    (y,) = _run("Gemm", [a_t, b, c], attrs, consts=set(consts), opset=13)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 0.5 * a @ b.T - 2.0 * c, rtol=1e-5, atol=1e-6)


def test_gemm_without_c_and_with_zero_beta():
    a = rng.standard_normal((2, 3)).astype(np.float64)
    b = rng.standard_normal((3, 4)).astype(np.float64)
    (y,) = _run("Gemm", [a, b], opset=13)
    np.testing.assert_allclose(y, a @ b)
    (z,) = _run("Gemm", [a, b, np.full((2, 4), np.nan)], {"beta": 0.0}, opset=13)
    np.testing.assert_allclose(z, a @ b)


def test_gemm_int32_stays_exact():
    a = np.array([[2**20, 1]], np.int32)
    b = np.array([[3], [4]], np.int32)
    (y,) = _run("Gemm", [a, b, np.array([5], np.int32)], opset=13)
    assert y.dtype == np.int32 and y.tolist() == [[3 * 2**20 + 9]]


def test_gemm_bfloat16_with_alpha_keeps_dtype():
    a = rng.standard_normal((3, 4)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((4, 5)).astype(ml_dtypes.bfloat16)
    (y,) = _run("Gemm", [a, b], {"alpha": 2.0}, opset=13)
    assert y.dtype == ml_dtypes.bfloat16
    want = 2.0 * a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(y.astype(np.float32), want, rtol=5e-2, atol=5e-2)


def test_gemm_with_a_c_that_does_not_broadcast_is_a_clear_error():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(Exception, match="broadcast"):
        _run("Gemm", [a, b, np.ones((3,), np.float32)], opset=13)


# --- MatMulInteger / QLinearMatMul ---------------------------------------------------------


def test_matmul_integer_is_exact_for_long_k_and_per_row_zero_point():
    a = rng.integers(0, 256, (3, 1000)).astype(np.uint8)
    b = rng.integers(-128, 128, (1000, 4)).astype(np.int8)
    azp = np.array([0, 255, 17], np.uint8)
    bzp = np.array(-128, np.int8)
    (y,) = _run("MatMulInteger", [a, b, azp, bzp], consts={1, 3}, opset=13)
    want = (a.astype(np.int64) - azp[:, None]) @ (b.astype(np.int64) - (-128))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, want)


def test_qlinear_matmul_matches_onnxruntime_with_saturation():
    a = rng.integers(0, 256, (4, 300)).astype(np.uint8)
    b = rng.integers(-128, 128, (300, 3)).astype(np.int8)
    inputs = [
        a,
        np.array(0.05, np.float32),
        np.array(128, np.uint8),
        b,
        np.array(0.02, np.float32),
        np.array(0, np.int8),
        np.array(0.01, np.float32),
        np.array(10, np.uint8),
    ]
    (y,) = _run("QLinearMatMul", inputs, opset=13)
    (want,) = _ort("QLinearMatMul", inputs, opset=13)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, want)
    assert (y == 0).any() or (y == 255).any()


# --- Einsum / Det --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        ("bhid,bhjd->bhij", [(2, 3, 4, 5), (2, 3, 6, 5)]),
        ("ij,jk", [(3, 4), (4, 5)]),
        ("...ij,...jk->...ik", [(2, 3, 4), (5, 2, 4, 6)]),
        ("...ij,...jk->...ik", [(1, 3, 4), (5, 4, 6)]),
        ("abc,cd->da", [(2, 3, 4), (4, 5)]),
        ("ij,kl->", [(2, 3), (4, 5)]),
        ("ii,ij->j", [(3, 3), (3, 4)]),
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
        ("Ab,bC", [(2, 3), (3, 4)]),
    ],
)
def test_einsum_matches_numpy(equation, shapes):
    xs = [rng.integers(-3, 4, s).astype(np.int64) for s in shapes]
    (y,) = _run("Einsum", xs, {"equation": equation}, opset=12)
    want = np.einsum(equation, *xs)
    assert y.dtype == np.int64 and y.shape == want.shape
    np.testing.assert_array_equal(y, want)


def test_einsum_with_spaces_and_bfloat16():
    a = rng.standard_normal((2, 3)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((3, 4)).astype(ml_dtypes.bfloat16)
    (y,) = _run("Einsum", [a, b], {"equation": "i j , j k -> i k"}, opset=28)
    assert y.dtype == ml_dtypes.bfloat16
    np.testing.assert_allclose(
        y.astype(np.float32), a.astype(np.float32) @ b.astype(np.float32), rtol=2e-2, atol=2e-2
    )


def test_einsum_with_wrong_operand_count_is_a_clear_error():
    with pytest.raises(Exception, match="operands"):
        _run("Einsum", [np.ones((2, 2), np.float32)], {"equation": "ij,jk->ik"}, opset=12)


def test_det_of_a_batch_keeps_dtype():
    x = rng.standard_normal((3, 4, 4)).astype(np.float32)
    (y,) = _run("Det", [x], opset=11)
    assert y.dtype == np.float32 and y.shape == (3,)
    np.testing.assert_allclose(y, np.linalg.det(x.astype(np.float64)), rtol=1e-4)
    (h,) = _run("Det", [x.astype(np.float16)], opset=11)
    assert h.dtype == np.float16


def test_det_of_a_non_square_matrix_is_a_clear_error():
    with pytest.raises(Exception, match=r"\[\.\.\., M, M\]"):
        _run("Det", [np.ones((2, 3), np.float32)], opset=11)
