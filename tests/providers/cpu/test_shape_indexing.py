"""Shape and indexing CPU kernels: edge cases and error paths the ONNX node suite does not cover."""

from __future__ import annotations

import functools

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

tessera = pytest.importorskip("tessera")
ort = pytest.importorskip("onnxruntime")
from support.single_node import run_single_node, single_node_model  # noqa: E402

I64 = TensorProto.INT64


# Defaults for this file's cases; each call may still pass opset=, n_out=, consts=.
_model = functools.partial(single_node_model, opset=21)
_run = functools.partial(run_single_node, tessera, opset=21)
_ort = functools.partial(run_single_node, ort, opset=21)


def _same(actual, expected) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


# --- views ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "extra", "attrs"),
    [
        ("Reshape", [np.array([3, 4], np.int64)], {}),
        ("Flatten", [], {"axis": 2}),
        ("Transpose", [], {"perm": [2, 0, 1]}),
        ("Squeeze", [np.array([0], np.int64)], {}),
        ("Unsqueeze", [np.array([-1], np.int64)], {}),
        ("Identity", [], {}),
    ],
)
def test_reshape_family_kernels_return_a_view_of_their_input(op, extra, attrs):
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    (y,) = _kernel(op, [x, *extra], attrs)(x, *extra)
    assert np.shares_memory(x, y)


def test_slice_kernel_with_constant_inputs_returns_a_view():
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    args = [x, np.array([1], np.int64), np.array([4], np.int64), np.array([1], np.int64)]
    (y,) = _kernel("Slice", args, consts={1, 2, 3})(*args)
    assert np.shares_memory(x, y)
    _same(y, x[:, 1:4])


def test_session_outputs_never_alias_the_callers_feed():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    (y,) = _run("Identity", [x])
    assert not np.shares_memory(x, y) and y.flags.writeable
    _same(y, x)


def _kernel(op, inputs, attrs=None, **kw):
    """The CPU kernel's compute function for a one-node model, built as a session would."""
    import onnx_ir as ir

    from tessera.provider import node_info
    from tessera_cpu.kernels import registry

    model, _ = _model(op, inputs, attrs, **kw)
    graph = ir.serde.deserialize_model(model).graph
    node = next(iter(graph))
    info = node_info(node, 0, dict(graph.opset_imports))
    return registry.build(info)


# --- slicing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ([-1], [-(2**63)], [1], [-1]),  # full reversal through a clamped negative end
        ([2**62], [0], [0], [-2]),  # start past the end clamps to dim - 1
        ([-100, 1], [100, -1], [0, -1], [3, 1]),  # out-of-range bounds clamp, negative axis
        ([3], [1], [0], [1]),  # empty result
    ],
)
def test_slice_clamps_bounds_like_onnxruntime(starts, ends, axes, steps):
    x = np.arange(42, dtype=np.float32).reshape(6, 7)
    args = [x] + [np.array(v, np.int64) for v in (starts, ends, axes, steps)]
    _same(_run("Slice", args)[0], _ort("Slice", args)[0])


def test_slice_rejects_a_zero_step():
    x = np.zeros((3,), np.float32)
    args = [
        x,
        np.array([0], np.int64),
        np.array([2], np.int64),
        np.array([0], np.int64),
        np.array([0], np.int64),
    ]
    with pytest.raises(Exception, match="step must not be zero"):
        _run("Slice", args)


# --- gathers ----------------------------------------------------------------------------------


def test_gather_accepts_negative_indices():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    (y,) = _run("Gather", [x, np.array([[-1, 0], [-4, 2]], np.int64)], {"axis": 1})
    _same(y, np.take(x, [[3, 0], [0, 2]], axis=1))


def test_gather_reports_out_of_range_index_with_node_name():
    x = np.arange(6, dtype=np.float32)
    with pytest.raises(Exception, match=r"Gather.*index out of range"):
        _run("Gather", [x, np.array([6], np.int64)])


def test_gather_with_empty_indices_gives_empty_output():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = _run("Gather", [x, np.zeros((0,), np.int64)], {"axis": 1})
    _same(y, np.zeros((2, 0), np.float32))


def test_gather_elements_with_smaller_indices_than_data():
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    idx = np.array([[4, -1], [0, 2]], np.int64)
    _same(
        _run("GatherElements", [x, idx], {"axis": 1})[0],
        _ort("GatherElements", [x, idx], {"axis": 1})[0],
    )


@pytest.mark.parametrize(
    ("batch_dims", "index_shape"), [(0, (2, 6, 3)), (1, (2, 6, 2)), (2, (2, 3, 1)), (0, (2, 3, 0))]
)
def test_gather_nd_matches_onnxruntime_for_batch_dims(batch_dims, index_shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    args = [x, rng.integers(-2, 2, size=index_shape).astype(np.int64)]
    attrs = {"batch_dims": batch_dims}
    _same(_run("GatherND", args, attrs)[0], _ort("GatherND", args, attrs)[0])


# --- scatters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_nd_reduction_accumulates_duplicate_indices(reduction):
    data = np.arange(1, 7, dtype=np.float32)
    idx = np.array([[1], [1], [-1], [1]], np.int64)
    upd = np.array([2.0, 3.0, 4.0, 0.5], np.float32)
    expected = data.copy()
    getattr(
        np, {"add": "add", "mul": "multiply", "max": "maximum", "min": "minimum"}[reduction]
    ).at(expected, [1, 1, 5, 1], upd)
    (y,) = _run("ScatterND", [data, idx, upd], {"reduction": reduction}, opset=18)
    _same(y, expected)


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_nd_row_updates_with_repeats_apply_in_index_order(reduction):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((5, 3, 4)).astype(np.float32)
    idx = np.array([[2], [-3], [0], [2], [4], [2]], np.int64)  # row 2 three times
    upd = rng.standard_normal((6, 3, 4)).astype(np.float32)
    ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction]
    expected = data.copy()
    for i, (r,) in enumerate(idx):
        expected[r] = ufunc(expected[r], upd[i])
    (y,) = _run("ScatterND", [data, idx, upd], {"reduction": reduction}, opset=18)
    _same(y, expected)


def test_gather_elements_on_a_non_contiguous_input_with_negative_indices():
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5).transpose(2, 0, 1)
    idx = np.array([[[-1, 0]], [[1, -2]]], np.int32)
    (y,) = _run("GatherElements", [x, idx], {"axis": 1})
    _same(y, np.take_along_axis(x[:2, :, :2], np.where(idx < 0, idx + 3, idx), axis=1))


def test_scatter_elements_does_not_modify_its_input():
    data = np.zeros((2, 3), np.float32)
    idx = np.array([[2, 0]], np.int64)
    (y,) = _run("ScatterElements", [data, idx, np.ones((1, 2), np.float32)], {"axis": 1}, opset=18)
    assert not data.any()
    _same(y, np.array([[1, 0, 1], [0, 0, 0]], np.float32))


def test_scatter_max_is_declined_before_opset_18():
    data = np.zeros((3,), np.float32)
    with pytest.raises(Exception, match="needs opset 18"):
        _run(
            "ScatterND",
            [data, np.array([[0]], np.int64), np.ones(1, np.float32)],
            {"reduction": "max"},
            opset=16,
        )


def test_tensor_scatter_circular_wraps_write_positions():
    past = np.zeros((2, 4, 1), np.float32)
    update = np.arange(1, 7, dtype=np.float32).reshape(2, 3, 1)
    (y,) = _run(
        "TensorScatter",
        [past, update, np.array([3, 0], np.int64)],
        {"axis": 1, "mode": "circular"},
        opset=24,
    )
    expected = np.zeros((2, 4, 1), np.float32)
    expected[0, [3, 0, 1], 0] = [1, 2, 3]
    expected[1, [0, 1, 2], 0] = [4, 5, 6]
    _same(y, expected)


def test_tensor_scatter_linear_overflow_is_an_error():
    past = np.zeros((1, 4, 1), np.float32)
    update = np.ones((1, 2, 1), np.float32)
    with pytest.raises(Exception, match="exceed the cache length"):
        _run("TensorScatter", [past, update, np.array([3], np.int64)], {"axis": 1}, opset=24)


# --- padding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_negative_pads_crop_then_pad(mode):
    x = np.arange(20, dtype=np.int8).reshape(4, 5)
    pads = np.array([-1, 2, 1, -2], np.int64)
    (y,) = _run("Pad", [x, pads], {"mode": mode})
    expected = np.pad(x[1:, :3], [(0, 1), (2, 0)], mode=mode)
    _same(y, expected)


def test_pad_with_axes_input_and_negative_axis():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    args = [x, np.array([1, 2], np.int64), np.array(9.0, np.float32), np.array([-1], np.int64)]
    (y,) = _run("Pad", args)
    _same(y, np.pad(x, [(0, 0), (1, 2)], constant_values=9.0))


def test_pad_reflect_beyond_the_edge_is_an_error():
    x = np.zeros((3,), np.float32)
    with pytest.raises(Exception, match="reflect pads"):
        _run("Pad", [x, np.array([3, 0], np.int64)], {"mode": "reflect"})


def test_pad_rejects_unknown_mode_at_creation():
    with pytest.raises(Exception, match="unsupported pad mode"):
        _run("Pad", [np.zeros(2, np.float32), np.array([1, 1], np.int64)], {"mode": "mirror"})


def test_pad_strings_fill_with_empty_string():
    x = np.array(["a", "b"], dtype=object)
    (y,) = _run("Pad", [x, np.array([1, 0], np.int64)])
    assert y.tolist() == ["", "a", "b"]


# --- splitting and joining --------------------------------------------------------------------


def test_split_num_outputs_gives_a_smaller_last_chunk():
    x = np.arange(7, dtype=np.float32)
    outs = _run("Split", [x], {"num_outputs": 3}, opset=18, n_out=3)
    assert [o.tolist() for o in outs] == [[0, 1, 2], [3, 4, 5], [6]]


def test_split_uneven_without_sizes_is_an_error_before_opset_18():
    with pytest.raises(Exception, match="does not split evenly"):
        _run("Split", [np.zeros(7, np.float32)], opset=13, n_out=2)


def test_split_sizes_that_do_not_sum_to_the_dim_are_an_error():
    with pytest.raises(Exception, match="does not fit dim"):
        _run("Split", [np.zeros(7, np.float32), np.array([3, 3], np.int64)], opset=13, n_out=2)


def test_concat_with_an_empty_input_and_negative_axis():
    a = np.ones((2, 0), np.float32)
    b = np.arange(4, dtype=np.float32).reshape(2, 2)
    (y,) = _run("Concat", [a, b], {"axis": -1})
    _same(y, b)


def test_concat_without_axis_is_an_error():
    with pytest.raises(Exception, match="needs the axis attribute"):
        _run("Concat", [np.zeros(2, np.float32), np.zeros(2, np.float32)])


# --- reshape family errors --------------------------------------------------------------------


def test_reshape_error_names_node_and_shapes():
    with pytest.raises(Exception, match=r"Reshape.*cannot reshape \(2, 3\) to \[4, 2\]"):
        _run("Reshape", [np.zeros((2, 3), np.float32), np.array([4, 2], np.int64)])


def test_reshape_allowzero_keeps_a_literal_zero():
    (y,) = _run(
        "Reshape", [np.zeros((0, 3), np.float32), np.array([3, 0], np.int64)], {"allowzero": 1}
    )
    assert y.shape == (3, 0)


def test_squeeze_of_a_non_unit_axis_is_an_error():
    with pytest.raises(Exception, match="cannot squeeze"):
        _run("Squeeze", [np.zeros((1, 3), np.float32), np.array([1], np.int64)])


def test_unsqueeze_negative_axes_count_from_the_output_rank():
    (y,) = _run("Unsqueeze", [np.zeros((3, 4), np.float32), np.array([-1, 0], np.int64)])
    assert y.shape == (1, 3, 4, 1)


def test_shape_start_end_are_clamped():
    (y,) = _run("Shape", [np.zeros((2, 3, 4), np.float32)], {"start": -10, "end": -1})
    _same(y, np.array([2, 3], np.int64))


# --- creation ops -----------------------------------------------------------------------------


def test_constant_value_strings_and_ints():
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Constant", [], ["s"], value_strings=["ab", "c"]),
                helper.make_node("Constant", [], ["i"], value_ints=[1, 2, 3]),
                helper.make_node("Constant", [], ["f"], value_float=1.5),
            ],
            "g",
            [],
            [
                helper.make_tensor_value_info("s", TensorProto.STRING, [2]),
                helper.make_tensor_value_info("i", I64, [3]),
                helper.make_tensor_value_info("f", TensorProto.FLOAT, []),
            ],
        ),
        opset_imports=[helper.make_opsetid("", 21)],
    )
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    s, i, f = sess.run(None, {})
    assert s.dtype == object and s.tolist() == ["ab", "c"]
    _same(i, np.array([1, 2, 3], np.int64))
    _same(f, np.array(1.5, np.float32))


def test_constant_of_shape_with_empty_shape_is_a_scalar():
    value = numpy_helper.from_array(np.array([7], np.int32))
    (y,) = _run("ConstantOfShape", [np.zeros((0,), np.int64)], {"value": value})
    _same(y, np.array(7, np.int32))


def test_range_integer_negative_delta_and_empty():
    (y,) = _run("Range", [np.array(10, np.int32), np.array(3, np.int32), np.array(-3, np.int32)])
    _same(y, np.array([10, 7, 4], np.int32))
    (z,) = _run("Range", [np.array(1, np.int64), np.array(1, np.int64), np.array(1, np.int64)])
    _same(z, np.zeros((0,), np.int64))


def test_range_float16_uses_float32_stash_for_large_values():
    start, limit, delta = (np.array(v, np.float16) for v in (2048.0, 2056.0, 1.0))
    (y,) = _run("Range", [start, limit, delta], opset=27)
    _same(y, np.arange(2048, 2056, dtype=np.float32).astype(np.float16))


def test_eye_like_off_diagonal_with_dtype():
    (y,) = _run("EyeLike", [np.zeros((3, 5), np.int32)], {"k": 2, "dtype": TensorProto.DOUBLE})
    _same(y, np.eye(3, 5, 2, dtype=np.float64))


def test_expand_to_a_zero_dim():
    (y,) = _run("Expand", [np.ones((1, 3), np.float32), np.array([0, 1], np.int64)])
    _same(y, np.zeros((0, 3), np.float32))


# --- dtypes -----------------------------------------------------------------------------------


def test_trilu_keeps_bfloat16_and_masks_strings_with_empty():
    x = np.arange(9, dtype=np.float32).reshape(3, 3).astype(ml_dtypes.bfloat16)
    (y,) = _run("Trilu", [x, np.array(1, np.int64)], {"upper": 0})
    _same(y, np.tril(x.astype(np.float32), 1).astype(ml_dtypes.bfloat16))
    (s,) = _run("Trilu", [np.array([["a", "b"], ["c", "d"]], dtype=object)])
    assert s.tolist() == [["a", "b"], ["", "d"]]


def test_depth_to_space_and_back_round_trips_int64():
    x = np.arange(2 * 8 * 2 * 3, dtype=np.int64).reshape(2, 8, 2, 3)
    for mode in ("DCR", "CRD"):
        (d,) = _run("DepthToSpace", [x], {"blocksize": 2, "mode": mode}, opset=28)
        (back,) = _run("SpaceToDepth", [d], {"blocksize": 2, "mode": mode}, opset=28)
        _same(back, x)


def test_center_crop_pad_crops_and_pads_per_axis():
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    (y,) = _run("CenterCropPad", [x, np.array([2, 8], np.int64)], opset=18)
    expected = np.zeros((2, 8), np.float32)
    expected[:, 1:6] = x[1:3]
    _same(y, expected)


# --- selection and index-producing ops --------------------------------------------------------


def test_nonzero_of_a_scalar_is_one_row():
    (y,) = _run("NonZero", [np.array(3.0, np.float32)])
    _same(y, np.zeros((1, 1), np.int64))


def test_compress_ignores_condition_past_the_axis_like_onnxruntime():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    args = [x, np.array([True, False, True, True])]
    _same(_run("Compress", args, {"axis": 1})[0], _ort("Compress", args, {"axis": 1})[0])


def test_one_hot_negative_and_out_of_range_indices():
    idx = np.array([0, -1, 3, -4, -5], np.int64)
    (y,) = _run("OneHot", [idx, np.array(3, np.int64), np.array([0, 9], np.int64)], {"axis": 0})
    expected = np.zeros((3, 5), np.int64)
    expected[0, 0] = expected[2, 1] = 9
    _same(y, expected)


def test_reverse_sequence_batch_major():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    args = [x, np.array([4, 1, 0], np.int64)]
    attrs = {"batch_axis": 0, "time_axis": 1}
    _same(_run("ReverseSequence", args, attrs)[0], _ort("ReverseSequence", args, attrs)[0])


def test_unique_unsorted_with_axis_orders_by_first_occurrence():
    x = np.array([[3, 1], [1, 2], [3, 1], [0, 0]], np.int64)
    y, idx, inv, counts = _run("Unique", [x], {"axis": 0, "sorted": 0}, n_out=4)
    _same(y, np.array([[3, 1], [1, 2], [0, 0]], np.int64))
    _same(idx, np.array([0, 1, 3], np.int64))
    _same(inv, np.array([0, 1, 0, 2], np.int64))
    _same(counts, np.array([2, 1, 1], np.int64))


def test_unique_of_strings_sorted():
    x = np.array(["b", "a", "b", "c"], dtype=object)
    y, idx, inv, counts = _run("Unique", [x], n_out=4)
    assert y.tolist() == ["a", "b", "c"]
    _same(idx, np.array([1, 0, 3], np.int64))
    _same(inv, np.array([1, 0, 1, 2], np.int64))
    _same(counts, np.array([1, 2, 1], np.int64))
