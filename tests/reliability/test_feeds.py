"""Feeds as onnxruntime users pass them: layouts and flags ORT accepts are accepted, wrong ones get
an InvalidArgument naming the input. Where Tessera differs from ORT, the test says how and why."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from conftest import make_model, tensor
from onnx import helper

import tessera

ort = pytest.importorskip("onnxruntime")

BASE = np.arange(12, dtype=np.float32).reshape(3, 4)


def _model(shape, elem=onnx.TensorProto.FLOAT, op="Neg") -> bytes:
    nodes = [helper.make_node(op, ["x"], ["y"])]
    return make_model(nodes, [tensor("x", shape, elem)], [tensor("y", shape, elem)], ir_version=8)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is the point here
    MATRIX = np.matrix([[1.0, 2.0, 3.0]], np.float32)

LAYOUTS = {
    "strided": ([3, 2], BASE[:, ::2]),
    "transposed": ([4, 3], BASE.T),
    "fortran": ([3, 4], np.asfortranarray(BASE)),
    "negative-stride": ([3, 4], BASE[::-1]),
    "read-only": ([3, 4], _readonly(BASE)),
    "zero-size": (["n", 4], np.zeros((0, 4), np.float32)),
    "nan-inf": ([3], np.array([np.nan, np.inf, -np.inf], np.float32)),
    "unaligned-view": (
        [3],
        np.frombuffer(np.arange(4, dtype=np.float32).tobytes()[4:], np.float32),
    ),
    "list": ([3], [1.0, 2.0, 3.0]),
    "int-list-for-float": ([3], [1, 2, 3]),
    "matrix-subclass": ([1, 3], MATRIX),
    "masked-array": ([3], np.ma.array(np.ones(3, np.float32), mask=[0, 1, 0])),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_feed_layouts_onnxruntime_accepts_give_onnxruntimes_results(name):
    shape, value = LAYOUTS[name]
    model = _model(shape)
    before = np.array(value, copy=True)
    (want,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"x": value}
    )
    (got,) = tessera.InferenceSession(model).run(None, {"x": value})
    assert type(got) is np.ndarray  # subclasses are not passed through, as in ORT
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(value), np.asarray(before))  # the feed is untouched


@pytest.mark.parametrize(
    ("shape", "value", "message"),
    [
        ([3], np.ones(3), "dtype float64 .* convert it with .astype"),
        ([3], np.ones(3, np.int64), "dtype int64"),
        ([3], np.ones(3, bool), "dtype bool"),
        ([3], np.array([1.0, 2.0, 3.0], object), "dtype object"),
        ([3], np.ones(4, np.float32), "dimension 0 must be 3, got 4"),
        ([3], np.ones((3, 1), np.float32), "has rank 2"),
        ([1], np.array(1, np.float32), "has rank 0"),
        ([3], None, "must be a numpy.ndarray of tensor\\(float\\), got NoneType"),
        ([3], {"a": 1}, "got dict"),
        ([3], [[1.0], [2.0, 3.0]], "cannot be converted to a tensor\\(float\\) array"),
        ([3], ["a", "b", "c"], "cannot be converted"),
    ],
)
def test_wrong_feeds_raise_invalid_argument_naming_the_input(shape, value, message):
    sess = tessera.InferenceSession(_model(shape))
    with pytest.raises(tessera.InvalidArgument, match=f"input 'x' .*{message}|{message}") as err:
        sess.run(None, {"x": value})
    assert "'x'" in str(err.value)


def test_wrong_input_name_lists_the_models_inputs():
    sess = tessera.InferenceSession(_model([3]))
    with pytest.raises(tessera.InvalidArgument, match=r"unknown input name\(s\) \['X'\].*\['x'\]"):
        sess.run(None, {"X": np.ones(3, np.float32)})


def test_big_endian_feed_is_converted_where_onnxruntime_misreads_it():
    # Difference from ORT 1.x: ORT reinterprets the big-endian buffer as native and returns
    # garbage; Tessera converts to native byte order and computes the right values.
    x = np.array([1.0, -2.0, 3.0], ">f4")
    (y,) = tessera.InferenceSession(_model([3])).run(None, {"x": x})
    np.testing.assert_array_equal(y, [-1.0, 2.0, -3.0])


@pytest.mark.parametrize("value", [3.0, 3, np.float32(3), np.float64(3)])
def test_python_and_numpy_scalars_are_accepted_for_scalar_inputs(value):
    # Difference from ORT, which raises "Unable to handle object of type"; accepting a scalar
    # for a rank-0 input is a strict superset and cannot change a result ORT would give.
    (y,) = tessera.InferenceSession(_model([])).run(None, {"x": value})
    assert y.shape == () and y.dtype == np.float32 and y == -3.0


@pytest.mark.parametrize("value", [np.array(["a", "b"]), np.array(["a", "b"], object), ["a", "b"]])
def test_string_inputs_accept_str_and_object_arrays_and_lists(value):
    (y,) = tessera.InferenceSession(_model([2], onnx.TensorProto.STRING, "Identity")).run(
        None, {"x": value}
    )
    assert list(y) == ["a", "b"]


def test_bytes_array_for_a_string_input_is_refused_where_onnxruntime_misreads_it():
    # ORT accepts |S arrays and returns corrupted strings; Tessera asks for str or object arrays.
    sess = tessera.InferenceSession(_model([2], onnx.TensorProto.STRING, "Identity"))
    with pytest.raises(tessera.InvalidArgument, match="expected tensor\\(string\\)"):
        sess.run(None, {"x": np.array([b"a", b"b"])})


def test_read_only_feed_to_an_in_place_friendly_op_is_not_written():
    x = _readonly(np.array([1.0, -2.0], np.float32))
    sess = tessera.InferenceSession(
        make_model(
            [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "x"], ["y"])],
            [tensor("x", [2])],
            [tensor("y", [2])],
        )
    )
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], [2.0, -2.0])
