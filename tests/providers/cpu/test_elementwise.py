"""CPU elementwise, cast and activation kernels: edge cases and errors the ONNX node suite does not cover."""

from __future__ import annotations

import math
import warnings

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as P
from onnx import helper

import tessera

_ELEM = {
    np.dtype(np.float32): P.FLOAT,
    np.dtype(np.float64): P.DOUBLE,
    np.dtype(np.float16): P.FLOAT16,
    np.dtype(ml_dtypes.bfloat16): P.BFLOAT16,
    np.dtype(np.int8): P.INT8,
    np.dtype(np.int16): P.INT16,
    np.dtype(np.int32): P.INT32,
    np.dtype(np.int64): P.INT64,
    np.dtype(np.uint8): P.UINT8,
    np.dtype(np.uint32): P.UINT32,
    np.dtype(np.uint64): P.UINT64,
    np.dtype(np.bool_): P.BOOL,
    np.dtype(object): P.STRING,
}


def _elem(x: np.ndarray) -> int:
    return _ELEM[np.asarray(x).dtype]


def run_op(op, inputs, out_elems=None, opset=21, n_out=1, input_names=None, **attrs):
    """Run a one-node model; ``inputs`` are arrays (None for an omitted optional input)."""
    names = input_names or [f"i{k}" if x is not None else "" for k, x in enumerate(inputs)]
    present = [(n, x) for n, x in zip(names, inputs) if x is not None]
    if out_elems is None:
        out_elems = [_elem(present[0][1])] * n_out
    graph = helper.make_graph(
        [helper.make_node(op, names, [f"o{k}" for k in range(len(out_elems))], **attrs)],
        "t",
        [helper.make_tensor_value_info(n, _elem(x), None) for n, x in present],
        [helper.make_tensor_value_info(f"o{k}", e, None) for k, e in enumerate(out_elems)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, dict(present))
    return outs if len(outs) > 1 else outs[0]


# ---------------------------------------------------------------------------------------------
# Arithmetic


def test_integer_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 0, -1], np.int32)
    b = np.array([2, 2, -2, -2, 3, 4], np.int32)
    y = run_op("Div", [a, b])
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [3, -3, -3, 3, 0, 0])


def test_mod_integer_follows_divisor_sign_and_fmod_follows_dividend():
    a = np.array([7, -7, 7, -7], np.int64)
    b = np.array([3, 3, -3, -3], np.int64)
    np.testing.assert_array_equal(run_op("Mod", [a, b]), [1, 2, -2, -1])
    np.testing.assert_array_equal(run_op("Mod", [a, b], fmod=1), [1, -1, 1, -1])


def test_mod_float_fmod0_at_opset_28_uses_floor_semantics():
    a = np.array([7.5, -7.5, 1.0, -1.0], np.float32)
    b = np.array([2.0, 2.0, np.inf, np.inf], np.float32)
    y = run_op("Mod", [a, b], opset=28)
    np.testing.assert_array_equal(y, np.array([1.5, 0.5, 1.0, np.inf], np.float32))


def test_mod_rejects_an_fmod_value_other_than_0_or_1():
    with pytest.raises(ValueError, match="fmod must be 0 or 1"):
        run_op("Mod", [np.ones(2, np.int32), np.ones(2, np.int32)], fmod=2)


def test_pow_keeps_the_base_dtype_for_mixed_types():
    base = np.array([1.5, 2.0, 3.0], np.float32)
    y = run_op("Pow", [base, np.array([2, 3, 0], np.int64)])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [2.25, 8.0, 1.0])
    y = run_op("Pow", [np.array([4, 9, 10], np.int32), np.array([0.5, 0.5, 1.5], np.float32)])
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [2, 3, 31])


@pytest.mark.parametrize("exponent", [1, 2, 3, 4, 5, 7, 8, 9, 2.5, -2])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_pow_by_small_integer_exponents_stays_within_a_few_ulp_of_pow(exponent, dtype):
    x = np.concatenate([np.linspace(-4, 4, 401), [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30]])
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    for b in (
        np.array(exponent, dtype),
        np.array([exponent], np.int64 if exponent == int(exponent) else dtype),
    ):
        y = run_op("Pow", [x, b])
        assert y.dtype == dtype and y.shape == x.shape
        with np.errstate(all="ignore"):
            expected = np.power(x.astype(np.float64), float(exponent)).astype(dtype)
        np.testing.assert_allclose(y, expected, rtol=4 * np.finfo(dtype).eps, atol=0)


def test_pow_of_a_scalar_base_by_a_one_element_exponent_broadcasts_to_one_element():
    y = run_op("Pow", [np.array(2.0, np.float32), np.array([3.0], np.float32)])
    assert y.shape == (1,)
    np.testing.assert_array_equal(y, [8.0])


def test_pow_integer_base_with_negative_exponent_truncates_instead_of_raising():
    y = run_op("Pow", [np.array([2, 1, -1], np.int64), np.array([-1, -2, -3], np.int64)])
    np.testing.assert_array_equal(y, [0, 1, -1])


def test_round_is_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999], np.float32)
    np.testing.assert_array_equal(run_op("Round", [x]), [0, 2, 2, -0, -2, -2, 2])


def test_legacy_broadcast_aligns_b_at_axis():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.array([10, 20, 30], np.float32)
    y = run_op("Add", [a, b], opset=6, broadcast=1, axis=1)
    np.testing.assert_array_equal(y, a + b[:, None])


def test_binary_ops_broadcast_and_accept_empty_tensors():
    y = run_op("Mul", [np.zeros((0, 3), np.float32), np.ones(3, np.float32)])
    assert y.shape == (0, 3) and y.dtype == np.float32


def test_bfloat16_add_stays_bfloat16():
    a = np.array([1.5, 2.0], ml_dtypes.bfloat16)
    y = run_op("Add", [a, a])
    assert y.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(y.astype(np.float32), [3.0, 4.0])


def test_variadic_max_sum_mean_broadcast_three_inputs():
    a = np.arange(3, dtype=np.float32).reshape(3, 1)
    b = np.array([5, -5, 0, 1], np.float32)
    c = np.full((2, 1, 1), 1.0, np.float32)
    np.testing.assert_array_equal(run_op("Max", [a, b, c]), np.maximum(np.maximum(a, b), c))
    np.testing.assert_allclose(run_op("Sum", [a, b, c]), a + b + c)
    np.testing.assert_allclose(run_op("Mean", [a, b, c]), (a + b + c) / 3)
    np.testing.assert_array_equal(run_op("Min", [b]), b)


def test_bitshift_unsigned_and_signed_semantics():
    x = np.array([1, 255, 16], np.uint8)
    y = run_op("BitShift", [x, np.array([1, 9, 2], np.uint8)], opset=11, direction="LEFT")
    np.testing.assert_array_equal(y, [2, 0, 64])
    s = np.array([-8, -8, 8, -8], np.int8)
    y = run_op("BitShift", [s, np.array([1, 9, 9, -1], np.int8)], opset=28, direction="RIGHT")
    np.testing.assert_array_equal(y, [-4, -1, 0, -1])


def test_bitshift_rejects_an_unknown_direction():
    with pytest.raises(ValueError, match="direction must be LEFT or RIGHT"):
        run_op("BitShift", [np.ones(2, np.uint8), np.ones(2, np.uint8)], opset=11, direction="UP")


def test_clip_attribute_form_and_input_form():
    x = np.array([-3, -1, 0, 2, 5], np.float32)
    np.testing.assert_array_equal(
        run_op("Clip", [x], opset=6, min=-1.0, max=2.0), np.clip(x, -1, 2)
    )
    # Omitted min, max only; a [1]-shaped bound must not change the output shape.
    y = run_op("Clip", [x.reshape(1, 5), None, np.array([1], np.float32)], opset=13)
    assert y.shape == (1, 5)
    np.testing.assert_array_equal(y, np.minimum(x, 1).reshape(1, 5))


def test_clip_with_min_above_max_yields_max_and_handles_int8():
    x = np.array([-100, 0, 100], np.int8)
    y = run_op("Clip", [x, np.array(5, np.int8), np.array(-5, np.int8)], opset=13)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, [-5, -5, -5])


def test_where_broadcasts_strings():
    cond = np.array([[True, False], [False, True]])
    x = np.array(["a", "b"], dtype=object)
    y = np.array(["z"], dtype=object)
    out = run_op("Where", [cond, x, y])
    assert out.tolist() == [["a", "z"], ["z", "b"]]


def test_equal_on_strings():
    out = run_op(
        "Equal", [np.array(["a", "b"], dtype=object), np.array(["a"], dtype=object)], [P.BOOL]
    )
    np.testing.assert_array_equal(out, [True, False])


def test_isinf_respects_detect_flags():
    x = np.array([np.inf, -np.inf, 1.0, np.nan], np.float32)
    np.testing.assert_array_equal(run_op("IsInf", [x], [P.BOOL], detect_negative=0), [1, 0, 0, 0])
    np.testing.assert_array_equal(run_op("IsInf", [x], [P.BOOL], detect_positive=0), [0, 1, 0, 0])


# ---------------------------------------------------------------------------------------------
# Erf and friends


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 4e-7), (np.float64, 1e-13)])
def test_erf_matches_math_erf(dtype, rtol):
    x = np.concatenate([np.linspace(-7, 7, 20001), np.logspace(-30, 0.7, 300), [0.0]]).astype(dtype)
    expected = np.array([math.erf(float(v)) for v in x])
    y = run_op("Erf", [x])
    assert y.dtype == dtype
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=0)


def test_erf_keeps_nan_and_saturates_infinities_and_empty():
    y = run_op("Erf", [np.array([np.nan, np.inf, -np.inf, 100.0], np.float32)])
    np.testing.assert_array_equal(y, [np.nan, 1, -1, 1])
    assert run_op("Erf", [np.zeros((2, 0), np.float16)]).shape == (2, 0)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_unary_float_ops_preserve_narrow_float_dtypes(dtype):
    x = np.array([-1.5, 0.25, 2.0], dtype)
    for op, ref in [
        ("Erf", np.vectorize(math.erf)),
        ("Exp", np.exp),
        ("Sigmoid", lambda v: 1 / (1 + np.exp(-v))),
    ]:
        y = run_op(op, [x])
        assert y.dtype == np.dtype(dtype), op
        np.testing.assert_allclose(y.astype(np.float32), ref(x.astype(np.float64)), rtol=1e-2)


@pytest.fixture(params=["loops", "numpy"])
def gelu_form(request, monkeypatch):
    """Float32 Gelu through the compiled loops, then through the NumPy blocks. Returns the
    list of loop calls made, which stays empty for the NumPy form."""
    from tessera_cpu import _jit

    calls: list[int] = []
    if request.param == "numpy":
        monkeypatch.setenv(_jit.ENV, "0")
        return calls
    pytest.importorskip("numba")
    monkeypatch.delenv(_jit.ENV, raising=False)
    from tessera_cpu.kernels import _math_loops

    real = _math_loops.GeluLoops.__call__
    monkeypatch.setattr(
        _math_loops.GeluLoops, "__call__", lambda self, *a: calls.append(1) or real(self, *a)
    )
    calls.append(0)  # marks the loop form: a float32 run must add calls
    return calls


def test_gelu_exact_and_tanh_approximations(gelu_form):
    x = np.linspace(-5, 5, 101).astype(np.float32)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    np.testing.assert_allclose(run_op("Gelu", [x], opset=20), exact, rtol=1e-5, atol=1e-6)
    approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    y = run_op("Gelu", [x], opset=20, approximate="tanh")
    np.testing.assert_allclose(y, approx, rtol=1e-5, atol=1e-6)
    assert len(gelu_form) != 1  # the loop form ran its loops (the NumPy form has none)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_is_accurate_in_both_tails_and_saturates(approximate, dtype, gelu_form):
    x = np.concatenate([np.linspace(-12, 12, 24001), np.logspace(-30, 1.5, 500)])
    x = np.concatenate([x, -x]).astype(dtype)
    xd = x.astype(np.float64)
    if approximate == "none":
        expected = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in xd])
    else:
        u = math.sqrt(2 / math.pi) * (xd + 0.044715 * xd**3)
        with np.errstate(over="ignore"):  # the tanh form without 1 + tanh's cancellation
            expected = xd / (1 + np.exp(-2 * u))
    y = run_op("Gelu", [x], opset=20, approximate=approximate)
    assert y.dtype == dtype
    big = np.abs(expected) > 1e-3
    rtol = 4e-7 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y[x > 0], expected[x > 0], rtol=rtol, atol=0)
    np.testing.assert_allclose(y[big], expected[big], rtol=4e-6 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-7)  # the ONNX suite's tolerance
    edge = np.array([np.inf, np.nan, 1e30, -1e30, 0.0], dtype)
    np.testing.assert_array_equal(run_op("Gelu", [edge], opset=20, approximate=approximate),
                                  np.array([np.inf, np.nan, 1e30, 0.0, 0.0], dtype))  # fmt: skip
    assert len(gelu_form) != 1 or dtype == np.float64  # float32 ran the loops when on


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        run_op("Gelu", [np.ones(2, np.float32)], opset=20, approximate="fast")


# ---------------------------------------------------------------------------------------------
# Cast


def test_cast_string_to_float_understands_inf_nan_and_exponents():
    s = np.array(["1.5", "INF", "-inf", "NaN", "1e-5", "+INF"], dtype=object)
    y = run_op("Cast", [s], [P.FLOAT], to=P.FLOAT)
    np.testing.assert_array_equal(
        y, np.array([1.5, np.inf, -np.inf, np.nan, 1e-5, np.inf], np.float32)
    )


def test_cast_numbers_to_strings_like_onnxruntime():
    f = np.array([0.1, 1 / 3, 1e10, np.nan, np.inf, -np.inf, 3.0], np.float32)
    y = run_op("Cast", [f], [P.STRING], to=P.STRING)
    assert y.tolist() == ["0.1", "0.33333334", "1e+10", "NaN", "INF", "-INF", "3"]
    assert run_op("Cast", [np.array([True, False])], [P.STRING], to=P.STRING).tolist() == ["1", "0"]
    assert run_op("Cast", [np.array([-5], np.int64)], [P.STRING], to=P.STRING).tolist() == ["-5"]


def test_cast_opset1_names_the_target_type_as_a_string():
    y = run_op("Cast", [np.array([1.7, -2.2], np.float32)], [P.INT32], opset=1, to="INT32")
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [1, -2])


def test_cast_to_float8_saturates_by_default_and_overflows_when_told_not_to():
    x = np.array([1e6, -1e6, np.inf, 1.0], np.float32)
    sat = run_op("Cast", [x], [P.FLOAT8E4M3FN], to=P.FLOAT8E4M3FN)
    assert sat.dtype == ml_dtypes.float8_e4m3fn
    np.testing.assert_array_equal(sat.astype(np.float32), [448, -448, 448, 1])
    raw = run_op("Cast", [x], [P.FLOAT8E5M2], to=P.FLOAT8E5M2, saturate=0)
    np.testing.assert_array_equal(raw.astype(np.float32), [np.inf, -np.inf, np.inf, 1])


@pytest.mark.parametrize(
    "mode, expected",
    [("up", [2.0, 4.0, 1.0]), ("down", [1.0, 2.0, 1.0]), ("nearest", [2.0, 2.0, 1.0])],
)
def test_cast_to_e8m0_follows_round_mode(mode, expected):
    x = np.array([1.5, 2.9, 1.0], np.float32)
    y = run_op("Cast", [x], [P.FLOAT8E8M0], opset=25, to=P.FLOAT8E8M0, round_mode=mode)
    np.testing.assert_array_equal(y.astype(np.float32), expected)


def test_cast_rejects_an_unknown_round_mode():
    with pytest.raises(ValueError, match="round_mode"):
        run_op(
            "Cast",
            [np.ones(2, np.float32)],
            [P.FLOAT8E8M0],
            opset=25,
            to=P.FLOAT8E8M0,
            round_mode="zero",
        )


def test_cast_float_to_int4_truncates_and_wraps():
    y = run_op("Cast", [np.array([1.7, -2.5, 9.0], np.float32)], [P.INT4], to=P.INT4)
    assert y.dtype == ml_dtypes.int4
    np.testing.assert_array_equal(y.astype(np.int8), [1, -2, -7])


def test_cast_integer_overflow_wraps_and_float_nan_is_true_as_bool():
    np.testing.assert_array_equal(
        run_op("Cast", [np.array([200, -200], np.int16)], [P.INT8], to=P.INT8), [-56, 56]
    )
    b = run_op("Cast", [np.array([0.0, -0.0, np.nan, 0.1], np.float32)], [P.BOOL], to=P.BOOL)
    np.testing.assert_array_equal(b, [False, False, True, True])


def test_castlike_takes_the_type_of_its_second_input():
    y = run_op(
        "CastLike",
        [np.array([1.5, 2.5], np.float32), np.zeros(1, np.float16)],
        [P.FLOAT16],
        opset=19,
    )
    assert y.dtype == np.float16


def test_bitcast_reinterprets_bits_and_checks_sizes_at_creation():
    x = np.array([1.0, -2.0], np.float32)
    y = run_op("BitCast", [x], [P.INT32], opset=26, to=P.INT32)
    np.testing.assert_array_equal(y, x.view(np.int32))
    with pytest.raises(ValueError, match="equal element sizes"):
        run_op("BitCast", [x], [P.INT64], opset=26, to=P.INT64)


# ---------------------------------------------------------------------------------------------
# Activations


def test_sigmoid_and_softplus_are_finite_and_quiet_at_extremes():
    x = np.array([-1e4, -100, 0, 100, 1e4], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = run_op("Sigmoid", [x])
        sp = run_op("Softplus", [x])
    np.testing.assert_allclose(s, [0, 1 / (1 + np.exp(100.0)), 0.5, 1, 1], atol=1e-30)
    np.testing.assert_allclose(sp, [0, 0, math.log(2), 100, 1e4], rtol=1e-6, atol=1e-30)


def test_leaky_relu_with_alpha_above_one():
    x = np.array([-2.0, 3.0], np.float32)
    np.testing.assert_array_equal(run_op("LeakyRelu", [x], alpha=2.0), [-4.0, 3.0])


def test_thresholded_relu_zeroes_negative_infinity_instead_of_nan():
    x = np.array([-np.inf, 0.5, 2.0, np.inf], np.float32)
    np.testing.assert_array_equal(run_op("ThresholdedRelu", [x]), [0, 0, 2, np.inf])


def test_prelu_slope_broadcasts_per_channel():
    x = np.array([[[-1.0, 2.0]], [[-3.0, 4.0]]], np.float32).reshape(1, 2, 1, 2)
    slope = np.array([0.5, 0.1], np.float32).reshape(2, 1, 1)
    y = run_op("PRelu", [x, slope])
    np.testing.assert_allclose(y, np.where(x < 0, x * slope, x))
    # Before opset 7 a 1-D slope is per channel (axis 1).
    y6 = run_op("PRelu", [x, slope.reshape(2)], opset=6)
    np.testing.assert_allclose(y6, np.where(x < 0, x * slope, x))


@pytest.mark.parametrize(
    "op, attrs, ref",
    [
        ("Elu", {"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
        (
            "Celu",
            {"alpha": 2.0},
            lambda x: np.maximum(x, 0) + np.minimum(0, 2.0 * np.expm1(x / 2.0)),
        ),
        (
            "Selu",
            {},
            lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
        ),
        ("HardSigmoid", {}, lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
        ("HardSwish", {}, lambda x: x * np.clip(x / 6 + 0.5, 0, 1)),
        ("Softsign", {}, lambda x: x / (1 + np.abs(x))),
        ("Mish", {}, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
        ("Swish", {"alpha": 1.5}, lambda x: x / (1 + np.exp(-1.5 * x))),
    ],
)
def test_activation_formulas(op, attrs, ref):
    x = np.linspace(-6, 6, 49).astype(np.float32)
    opset = {"Celu": 12, "Mish": 18, "Swish": 24}.get(op, 21)
    y = run_op(op, [x], opset=opset, **attrs)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_shrink_on_integers_keeps_dtype():
    x = np.array([-5, -1, 0, 1, 5], np.int32)
    y = run_op("Shrink", [x], lambd=1.5, bias=1.0)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [-4, 0, 0, 0, 4])


def test_swiglu_gates_b_and_rejects_mismatched_shapes():
    a = np.array([-1.0, 0.0, 2.0], np.float32)
    b = np.array([2.0, 3.0, 4.0], np.float32)
    np.testing.assert_allclose(
        run_op("SwiGLU", [a, b], opset=28), a / (1 + np.exp(-a)) * b, rtol=1e-6
    )
    with pytest.raises(Exception, match="must have the same shape"):
        run_op("SwiGLU", [a, b[:2]], opset=28)


# ---------------------------------------------------------------------------------------------
# Dropout


def test_dropout_in_inference_is_identity_with_an_all_true_mask():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    y, mask = run_op("Dropout", [x], [P.FLOAT, P.BOOL], opset=13)
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == np.bool_ and mask.all()


def test_legacy_dropout_mask_has_the_data_type_before_opset_10():
    x = np.ones((2, 2), np.float32)
    _, mask = run_op("Dropout", [x], [P.FLOAT, P.FLOAT], opset=7, ratio=0.3)
    assert mask.dtype == np.float32 and (mask == 1).all()


def test_training_dropout_with_seed_is_reproducible_and_scaled():
    x = np.ones((4, 50), np.float32)
    feeds = [x, np.array(0.25, np.float32), np.array(True)]
    y1, m1 = run_op("Dropout", feeds, [P.FLOAT, P.BOOL], opset=13, seed=7)
    y2, _ = run_op("Dropout", feeds, [P.FLOAT, P.BOOL], opset=13, seed=7)
    np.testing.assert_array_equal(y1, y2)
    expected_mask = np.random.RandomState(7).uniform(0, 1, x.shape) >= 0.25
    np.testing.assert_array_equal(m1, expected_mask)
    np.testing.assert_allclose(y1, expected_mask / 0.75, rtol=1e-6)


def test_training_dropout_rejects_ratio_of_one():
    feeds = [np.ones(3, np.float32), np.array(1.0, np.float32), np.array(True)]
    with pytest.raises(Exception, match=r"ratio must be in \[0, 1\)"):
        run_op("Dropout", feeds, [P.FLOAT], opset=13)


def test_elementwise_cast_module_registers_with_the_cpu_registry():
    from tessera_cpu.kernels import registry

    ops = {op for _, op, _ in registry.ops()}
    assert {"Cast", "CastLike", "BitCast", "Erf", "Gelu", "Dropout"} <= ops
    assert onnx.defs.get_schema("Cast", 21).since_version in registry.versions("", "Cast")


@pytest.mark.parametrize(
    "op, attrs, opset",
    [
        ("Sigmoid", {}, 21),
        ("Gelu", {}, 20),
        ("LeakyRelu", {}, 21),
        ("Relu", {}, 21),
        ("IsNaN", {}, 21),
        ("Clip", {"min": 0.0, "max": 0.5}, 6),
        ("Cast", {"to": P.FLOAT8E8M0}, 25),
        ("Cast", {"to": P.FLOAT8E4M3FN}, 25),
    ],
)
def test_zero_dim_inputs_give_zero_dim_arrays(op, attrs, opset):
    out_elem = {"IsNaN": P.BOOL, "Cast": attrs.get("to")}.get(op, P.FLOAT)
    y = run_op(op, [np.array(0.7, np.float32)], [out_elem], opset=opset, **attrs)
    assert isinstance(y, np.ndarray) and y.shape == ()


def test_zero_dim_binary_and_variadic_ops_give_arrays():
    a, b = np.array(7, np.int32), np.array(-2, np.int32)
    for op in ("Div", "Mod", "Max", "Pow"):
        y = run_op(op, [a, b if op != "Pow" else np.array(2, np.int32)])
        assert isinstance(y, np.ndarray) and y.shape == (), op
    f = np.array(1.5, np.float32)
    for op in ("Sum", "Mean", "Min"):
        y = run_op(op, [f, f, f])
        assert isinstance(y, np.ndarray) and y.shape == (), op
    assert run_op("Div", [a, b]) == -3
