"""CPU convolution, pooling and resampling kernels: cases and errors the ONNX node suite does not cover."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import tessera

ort = pytest.importorskip("onnxruntime")

_rng = np.random.default_rng(1234)


def f32(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def _model(op, inputs, attrs, opset, n_out, constants):
    """A one-node model; ``inputs`` is [(name, array or None)], constants become initializers."""
    names, graph_inputs, inits = [], [], []
    for name, arr in inputs:
        if arr is None:
            names.append("")
            continue
        names.append(name)
        if name in constants:
            inits.append(onnx.numpy_helper.from_array(arr, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, None))
    outs = [f"y{i}" for i in range(n_out)]
    graph = helper.make_graph(
        [helper.make_node(op, names, outs, **attrs)], "t", graph_inputs, [], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for o in outs:
        model.graph.output.append(
            helper.make_tensor_value_info(o, inferred[o].type.tensor_type.elem_type, None)
        )
    return model.SerializeToString()


def run(op, inputs, attrs=None, opset=22, n_out=1, constants=()):
    data = _model(op, inputs, attrs or {}, opset, n_out, set(constants))
    feeds = {n: a for n, a in inputs if a is not None and n not in constants}
    sess = tessera.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_both(op, inputs, attrs=None, opset=22, n_out=1, constants=()):
    """(tessera outputs, onnxruntime outputs) of the same one-node model."""
    data = _model(op, inputs, attrs or {}, opset, n_out, set(constants))
    feeds = {n: a for n, a in inputs if a is not None and n not in constants}
    ours = tessera.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    return ours, theirs


def assert_same_as_ort(
    op, inputs, attrs=None, opset=22, n_out=1, constants=(), rtol=1e-4, atol=1e-4
):
    ours, theirs = run_both(op, inputs, attrs, opset, n_out, constants)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# Convolution


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("group,cin,cout", [(1, 4, 6), (2, 4, 6), (4, 4, 8)])
@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_matches_onnxruntime_for_groups_strides_dilations_and_auto_pad(
    nd, group, cin, cout, auto_pad
):
    attrs = {"group": group, "strides": [2, 1, 2][:nd], "auto_pad": auto_pad}
    if auto_pad == "NOTSET":  # onnxruntime refuses dilations together with SAME padding
        attrs.update(pads=[1, 0, 2][:nd] + [0, 1, 1][:nd], dilations=[1, 2, 1][:nd])
    x = f32(2, cin, *[7, 6, 5][:nd])
    w = f32(cout, cin // group, *[3, 2, 3][:nd])
    assert_same_as_ort("Conv", [("x", x), ("w", w), ("b", f32(cout))], attrs, constants=("w",))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("group", [1, 2])
@pytest.mark.parametrize(
    "attrs",
    [
        {"pads": "asym"},
        {"dilations": 2, "pads": "asym"},
        {"auto_pad": "SAME_UPPER"},
        {"auto_pad": "SAME_LOWER"},
        {"auto_pad": "VALID"},
    ],
)
def test_stride_one_conv_with_fewer_outputs_than_inputs_matches_onnxruntime(nd, group, attrs):
    # 16 input and 8 output channels per group take the shifted-GEMM path (M <= C, stride 1).
    a = {"group": group}
    for k, v in attrs.items():
        if v == "asym":
            a[k] = [1, 0, 2][:nd] + [2, 1, 0][:nd]
        elif k == "auto_pad":
            a[k] = v
        else:
            a[k] = [v] * nd
    x = f32(2, 16 * group, *[9, 8, 7][:nd])
    w = f32(8 * group, 16, *[3, 2, 3][:nd])
    assert_same_as_ort("Conv", [("x", x), ("w", w), ("b", f32(8 * group))], a, constants=("w",))


def test_depthwise_conv_matches_onnxruntime():
    x, w = f32(2, 16, 9, 9), f32(16, 1, 3, 3)
    assert_same_as_ort(
        "Conv", [("x", x), ("w", w)], {"group": 16, "pads": [1, 1, 1, 1], "strides": [2, 2]}
    )


def test_pointwise_conv_with_runtime_weights_matches_onnxruntime():
    assert_same_as_ort("Conv", [("x", f32(3, 8, 5, 4)), ("w", f32(16, 8, 1, 1)), ("b", f32(16))])


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_conv_keeps_the_input_dtype(dtype):
    x, w = f32(1, 3, 8, 8).astype(dtype), f32(4, 3, 3, 3).astype(dtype)
    (y,) = run("Conv", [("x", x), ("w", w)], {"pads": [1, 1, 1, 1]})
    assert y.dtype == dtype and y.shape == (1, 4, 8, 8)
    (ref,) = run(
        "Conv", [("x", x.astype(np.float32)), ("w", w.astype(np.float32))], {"pads": [1, 1, 1, 1]}
    )
    np.testing.assert_allclose(y.astype(np.float32), ref, rtol=1e-2, atol=1e-2)


def test_conv_on_an_empty_batch_returns_an_empty_output():
    (y,) = run("Conv", [("x", np.zeros((0, 3, 6, 6), np.float32)), ("w", f32(5, 3, 3, 3))])
    assert y.shape == (0, 5, 4, 4) and y.dtype == np.float32


def test_conv_with_channel_group_mismatch_raises_a_clear_error():
    with pytest.raises(tessera.TesseraError, match="inconsistent"):
        run("Conv", [("x", f32(1, 4, 5, 5)), ("w", f32(2, 3, 3, 3))])


def test_conv_with_unknown_auto_pad_is_refused_at_creation():
    with pytest.raises(tessera.TesseraError, match="auto_pad"):
        run("Conv", [("x", f32(1, 3, 5, 5)), ("w", f32(2, 3, 3, 3))], {"auto_pad": "SAME"})


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"strides": 2, "pads": (1, 0), "output_padding": 1},
        {"strides": 2, "dilations": 2},
        {"strides": 2, "auto_pad": "SAME_UPPER"},
        {"strides": 2, "auto_pad": "SAME_LOWER"},
        {"strides": 3, "output_shape": "larger"},
        {"strides": 3, "output_shape": "smaller"},
    ],
)
@pytest.mark.parametrize("group", [1, 2])
def test_conv_transpose_matches_onnxruntime(nd, attrs, group):
    sp = [4, 5, 3][:nd]
    a = {"group": group}
    for k, v in attrs.items():
        if k == "pads":
            a[k] = [v[0]] * nd + [v[1]] * nd
        elif k == "output_shape":
            a[k] = [s * 3 + (1 if v == "larger" else -2) for s in sp]
        elif k == "auto_pad":
            a[k] = v
        else:
            a[k] = [v] * nd
    x, w = f32(2, 4, *sp), f32(4, 6 // group, *[3, 2, 3][:nd])
    assert_same_as_ort("ConvTranspose", [("x", x), ("w", w), ("b", f32(6))], a)


def test_conv_integer_pads_with_the_zero_point_like_onnxruntime():
    x = _rng.integers(0, 255, (1, 4, 6, 6)).astype(np.uint8)
    w = _rng.integers(-128, 127, (6, 4, 3, 3)).astype(np.int8)
    inputs = [("x", x), ("w", w), ("xz", np.array(7, np.uint8)), ("wz", np.array(3, np.int8))]
    ours, theirs = run_both("ConvInteger", inputs, {"pads": [1, 1, 1, 1], "strides": [2, 2]})
    assert ours[0].dtype == np.int32
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_qlinear_conv_with_per_channel_weight_scales_matches_onnxruntime():
    x = _rng.integers(0, 255, (1, 4, 6, 6)).astype(np.uint8)
    w = _rng.integers(-127, 127, (6, 4, 3, 3)).astype(np.int8)
    inputs = [
        ("x", x),
        ("xs", np.array(0.05, np.float32)),
        ("xz", np.array(128, np.uint8)),
        ("w", w),
        ("ws", (_rng.random(6) * 0.02 + 0.001).astype(np.float32)),
        ("wz", np.zeros(6, np.int8)),
        ("ys", np.array(0.2, np.float32)),
        ("yz", np.array(100, np.uint8)),
        ("b", _rng.integers(-500, 500, 6).astype(np.int32)),
    ]
    ours, theirs = run_both(
        "QLinearConv", inputs, {"pads": [1, 1, 1, 1]}, constants=("w", "ws", "wz")
    )
    assert ours[0].dtype == np.uint8
    assert np.abs(ours[0].astype(int) - theirs[0].astype(int)).max() <= 1


def test_deform_conv_with_zero_offsets_equals_conv():
    x, w, b = f32(2, 4, 7, 7), f32(6, 2, 3, 3), f32(6)
    attrs = {"group": 2, "pads": [1, 1, 1, 1], "strides": [2, 2]}
    (ref,) = run("Conv", [("x", x), ("w", w), ("b", b)], attrs)
    offset = np.zeros((2, 2 * 9 * 2, 4, 4), np.float32)
    (y,) = run(
        "DeformConv", [("x", x), ("w", w), ("o", offset), ("b", b)], dict(attrs, offset_group=2)
    )
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_deform_conv_integer_offsets_shift_the_sampled_pixels():
    x, w = f32(1, 1, 6, 6), np.ones((1, 1, 1, 1), np.float32)
    offset = np.zeros((1, 2, 6, 6), np.float32)
    offset[:, 1] = 1.0  # sample one column to the right; the last column falls outside (zero)
    (y,) = run("DeformConv", [("x", x), ("w", w), ("o", offset)])
    np.testing.assert_allclose(y[0, 0, :, :5], x[0, 0, :, 1:], rtol=1e-6)
    np.testing.assert_array_equal(y[0, 0, :, 5], 0)


def test_causal_conv_with_state_in_two_chunks_equals_one_pass():
    x, w, b = f32(2, 3, 10), f32(3, 1, 4), f32(3)
    full, _ = run(
        "CausalConvWithState",
        [("x", x), ("w", w), ("b", b)],
        {"activation": "silu"},
        opset=27,
        n_out=2,
    )
    y1, state = run(
        "CausalConvWithState",
        [("x", x[..., :6]), ("w", w), ("b", b)],
        {"activation": "silu"},
        opset=27,
        n_out=2,
    )
    y2, _ = run(
        "CausalConvWithState",
        [("x", x[..., 6:]), ("w", w), ("b", b), ("s", state)],
        {"activation": "silu"},
        opset=27,
        n_out=2,
    )
    assert state.shape == (2, 3, 3)
    np.testing.assert_allclose(np.concatenate([y1, y2], -1), full, rtol=1e-5, atol=1e-6)


def test_col2im_of_ones_counts_overlapping_blocks():
    cols = np.ones((1, 4, 9), np.float32)  # 2x2 blocks over a 4x4 image, stride 1
    (y,) = run(
        "Col2Im",
        [("x", cols), ("i", np.array([4, 4], np.int64)), ("b", np.array([2, 2], np.int64))],
        opset=18,
    )
    expected = np.outer([1, 2, 2, 1], [1, 2, 2, 1]).astype(np.float32)
    np.testing.assert_array_equal(y[0, 0], expected)


# ---------------------------------------------------------------------------------------------
# Pooling

_POOL_CASES = [
    {"kernel_shape": 3, "pads": (1, 1)},
    {"kernel_shape": 3, "pads": (0, 2)},
    {"kernel_shape": 3, "dilations": 2, "pads": (2, 2)},
    {"kernel_shape": 2, "pads": (1, 0)},
    {"kernel_shape": 4, "pads": (3, 3)},
    {"kernel_shape": 3, "strides": 2, "pads": (1, 1)},
    {"kernel_shape": 4, "strides": 2, "pads": (1, 1)},
    {"kernel_shape": 2, "strides": 2, "dilations": 3, "pads": (1, 1)},
    {"kernel_shape": 3},
    {"kernel_shape": 2, "strides": 2, "ceil_mode": 1},
    {"kernel_shape": 3, "strides": 2, "pads": (1, 2), "ceil_mode": 1},
    {"kernel_shape": 2, "strides": 2, "dilations": 2},
    {"kernel_shape": 3, "strides": 2, "dilations": 2, "pads": (1, 1), "ceil_mode": 1},
    {"kernel_shape": 3, "strides": 2, "auto_pad": "SAME_UPPER"},
    {"kernel_shape": 4, "strides": 3, "auto_pad": "SAME_LOWER"},
    {"kernel_shape": 3, "strides": 2, "auto_pad": "VALID"},
]


def _pool_attrs(case, nd):
    out = {}
    for k, v in case.items():
        if k == "pads":
            out[k] = [v[0]] * nd + [v[1]] * nd
        elif k in ("ceil_mode", "auto_pad"):
            out[k] = v
        else:
            out[k] = [v] * nd
    return out


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("case", _POOL_CASES)
def test_max_pool_values_and_indices_match_onnxruntime(nd, case):
    x = f32(2, 3, *[9, 8, 7][:nd])
    assert_same_as_ort("MaxPool", [("x", x)], _pool_attrs(case, nd), n_out=2)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 5, 7, 7), {"kernel_shape": [7, 7]}),  # one window over the whole input
        ((1, 3, 6, 6), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ((1, 3, 13, 13), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
        ((1, 2, 1, 8), {"kernel_shape": [1, 3], "pads": [0, 1, 0, 1]}),  # one row
        ((1, 1, 4, 4), {"kernel_shape": [3, 3], "pads": [2, 2, 2, 2]}),  # windows in padding
    ],
)
def test_pool_fast_paths_match_onnxruntime(op, shape, attrs):
    """Global windows, flat stride-1 and flat strided reductions, and their boundary fixes."""
    assert_same_as_ort(op, [("x", f32(*shape))], attrs)


def test_max_pool_column_major_indices_match_onnxruntime():
    x = f32(2, 3, 7, 6)
    attrs = {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "storage_order": 1}
    assert_same_as_ort("MaxPool", [("x", x)], attrs, n_out=2)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_on_small_integers_keeps_dtype_and_ignores_padding(dtype):
    info = np.iinfo(dtype)
    x = _rng.integers(info.min, info.max, (1, 2, 6, 6)).astype(dtype)
    ours, theirs = run_both(
        "MaxPool", [("x", x)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}
    )
    assert ours[0].dtype == dtype
    np.testing.assert_array_equal(ours[0], theirs[0])


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("case", _POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_matches_onnxruntime(nd, case, count_include_pad):
    x = f32(2, 3, *[9, 8, 7][:nd])
    attrs = dict(_pool_attrs(case, nd), count_include_pad=count_include_pad)
    assert_same_as_ort("AveragePool", [("x", x)], attrs)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool_matches_onnxruntime(p):
    attrs = {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1], "p": p}
    assert_same_as_ort("LpPool", [("x", f32(2, 3, 8, 7))], attrs)


@pytest.mark.parametrize(
    "op,opset", [("GlobalAveragePool", 22), ("GlobalMaxPool", 22), ("GlobalLpPool", 18)]
)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_global_pools_reduce_every_spatial_axis(op, opset, nd):
    x = f32(2, 3, *[5, 4, 3][:nd])
    ours, theirs = run_both(op, [("x", x)], opset=opset)
    assert ours[0].shape == (2, 3) + (1,) * nd
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)


def test_global_average_pool_keeps_float16():
    x = f32(1, 4, 3, 3).astype(np.float16)
    (y,) = run("GlobalAveragePool", [("x", x)])
    assert y.dtype == np.float16
    np.testing.assert_allclose(
        y.ravel(), x.astype(np.float32).mean((2, 3)).ravel(), rtol=1e-3, atol=1e-3
    )


def test_max_unpool_puts_pooled_maxima_back_in_place():
    x = f32(1, 2, 4, 4)
    y, idx = run("MaxPool", [("x", x)], {"kernel_shape": [2, 2], "strides": [2, 2]}, n_out=2)
    (up,) = run("MaxUnpool", [("y", y), ("i", idx)], {"kernel_shape": [2, 2], "strides": [2, 2]})
    assert up.shape == x.shape
    kept = up != 0
    np.testing.assert_array_equal(up[kept], x[kept])
    assert kept.sum() == y.size


def test_max_unpool_with_an_out_of_range_index_raises():
    with pytest.raises(tessera.TesseraError, match="outside"):
        run(
            "MaxUnpool",
            [("y", f32(1, 1, 1, 1)), ("i", np.array([[[[99]]]], np.int64))],
            {"kernel_shape": [2, 2]},
        )


def test_pool_without_kernel_shape_raises_a_clear_error():
    m = helper.make_model(
        helper.make_graph(
            [helper.make_node("MaxPool", ["x"], ["y"])],
            "t",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", 22)],
    )
    with pytest.raises(tessera.TesseraError, match="kernel_shape"):
        sess = tessera.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        sess.run(None, {"x": f32(1, 1, 4, 4)})


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ctm", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_matches_onnxruntime(mode, ctm, sampling_ratio):
    x = f32(2, 3, 10, 12)
    rois = np.array(
        [[0, 0, 9, 9], [1.5, 2.2, 7.3, 8.9], [-2, -1, 14, 15], [3, 3, 3.5, 3.2]], np.float32
    )
    attrs = {
        "mode": mode,
        "coordinate_transformation_mode": ctm,
        "sampling_ratio": sampling_ratio,
        "output_height": 3,
        "output_width": 4,
        "spatial_scale": 0.8,
    }
    inputs = [("x", x), ("r", rois), ("b", np.array([0, 1, 1, 0], np.int64))]
    assert_same_as_ort("RoiAlign", inputs, attrs, opset=16)


def test_max_roi_pool_matches_onnxruntime():
    rois = np.array([[0, 0, 0, 9, 9], [1, 1.5, 2.2, 7.3, 8.9], [1, -2, -1, 14, 15]], np.float32)
    assert_same_as_ort(
        "MaxRoiPool",
        [("x", f32(2, 3, 10, 12)), ("r", rois)],
        {"pooled_shape": [3, 2], "spatial_scale": 0.9},
        opset=16,
    )


# ---------------------------------------------------------------------------------------------
# Resampling

_SCALES = [[1, 1, 2, 1.5], [1, 1, 0.5, 0.75], [1, 1, 3, 0.25]]


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize(
    "ctm", ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "asymmetric"]
)
@pytest.mark.parametrize("scales", _SCALES)
def test_resize_with_scales_matches_onnxruntime(mode, ctm, scales):
    inputs = [("x", f32(2, 3, 8, 12)), ("roi", None), ("s", np.array(scales, np.float32))]
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    assert_same_as_ort("Resize", inputs, attrs, opset=19, constants=("s",))


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("ctm", ["align_corners", "half_pixel", "tf_crop_and_resize"])
def test_resize_with_sizes_matches_onnxruntime(mode, ctm):
    roi = np.array([0.1, -0.2, 0.8, 1.1], np.float32) if ctm == "tf_crop_and_resize" else None
    inputs = [("x", f32(2, 3, 7, 9)), ("roi", roi), ("s", None), ("z", np.array([5, 13], np.int64))]
    attrs = {
        "mode": mode,
        "coordinate_transformation_mode": ctm,
        "axes": [2, 3],
        "extrapolation_value": -2.0,
    }
    assert_same_as_ort("Resize", inputs, attrs, opset=19)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("exclude_outside", [0, 1])
def test_resize_antialias_downsampling_matches_onnxruntime(mode, exclude_outside):
    inputs = [
        ("x", f32(1, 2, 20, 30)),
        ("roi", None),
        ("s", np.array([1, 1, 0.4, 0.3], np.float32)),
    ]
    attrs = {
        "mode": mode,
        "antialias": 1,
        "exclude_outside": exclude_outside,
        "cubic_coeff_a": -0.5,
    }
    assert_same_as_ort("Resize", inputs, attrs, opset=19)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_of_a_long_axis_uses_banded_blocks_and_matches_onnxruntime(mode):
    inputs = [("x", f32(1, 2, 4, 600)), ("roi", None), ("s", np.array([1, 1, 1, 1.7], np.float32))]
    assert_same_as_ort("Resize", inputs, {"mode": mode}, opset=19)


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_resize_keep_aspect_ratio_policy_matches_onnxruntime(policy):
    inputs = [
        ("x", f32(1, 2, 6, 9)),
        ("roi", None),
        ("s", None),
        ("z", np.array([10, 10], np.int64)),
    ]
    attrs = {"mode": "linear", "keep_aspect_ratio_policy": policy, "axes": [3, 2]}
    assert_same_as_ort("Resize", inputs, attrs, opset=19)


def test_resize_negative_axes_act_like_positive_ones():
    x = f32(1, 2, 5, 6)
    scales = np.array([2.0, 0.5], np.float32)
    (neg,) = run(
        "Resize",
        [("x", x), ("roi", None), ("s", scales)],
        {"mode": "linear", "axes": [-2, -1]},
        opset=19,
    )
    (pos,) = run(
        "Resize",
        [("x", x), ("roi", None), ("s", scales)],
        {"mode": "linear", "axes": [2, 3]},
        opset=19,
    )
    assert neg.shape == (1, 2, 10, 3)
    np.testing.assert_array_equal(neg, pos)


def test_resize_linear_on_uint8_rounds_and_keeps_dtype():
    x = np.array([[[[0, 255], [10, 11]]]], np.uint8)
    (y,) = run(
        "Resize",
        [("x", x), ("roi", None), ("s", np.array([1, 1, 1, 2], np.float32))],
        {"mode": "linear"},
        opset=19,
    )
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y[0, 0, 0], [0, 64, 191, 255])
    np.testing.assert_array_equal(y[0, 0, 1], [10, 10, 11, 11])


def test_resize_nearest_moves_booleans_unchanged():
    x = np.array([[[[True, False], [False, True]]]])
    (y,) = run(
        "Resize",
        [("x", x), ("roi", None), ("s", np.array([1, 1, 2, 2], np.float32))],
        {"mode": "nearest"},
        opset=19,
    )
    assert y.dtype == np.bool_
    np.testing.assert_array_equal(y[0, 0], np.repeat(np.repeat(x[0, 0], 2, 0), 2, 1))


def test_resize_with_empty_batch_returns_empty_output():
    inputs = [
        ("x", np.zeros((0, 3, 4, 4), np.float32)),
        ("roi", None),
        ("s", np.array([1, 1, 2, 2], np.float32)),
    ]
    (y,) = run("Resize", inputs, {"mode": "linear"}, opset=19)
    assert y.shape == (0, 3, 8, 8)


def test_resize_with_scales_and_sizes_together_raises():
    inputs = [
        ("x", f32(1, 1, 2, 2)),
        ("roi", None),
        ("s", np.array([1, 1, 2, 2], np.float32)),
        ("z", np.array([1, 1, 4, 4], np.int64)),
    ]
    with pytest.raises(tessera.TesseraError, match="only one of scales and sizes"):
        run("Resize", inputs, {"mode": "nearest"}, opset=19)


def test_resize_nearest_with_antialias_is_refused_at_creation():
    with pytest.raises(tessera.TesseraError, match="antialias"):
        run(
            "Resize",
            [("x", f32(1, 1, 4, 4)), ("roi", None), ("s", np.array([1, 1, 2, 2], np.float32))],
            {"mode": "nearest", "antialias": 1},
            opset=19,
        )


@pytest.mark.parametrize("opset,mode", [(10, "nearest"), (10, "linear")])
@pytest.mark.parametrize("scales", [[1, 1, 2, 1.5], [1, 1, 0.5, 0.6]])
def test_resize_10_uses_upsample_semantics_like_onnxruntime(opset, mode, scales):
    assert_same_as_ort(
        "Resize",
        [("x", f32(1, 2, 7, 9)), ("s", np.array(scales, np.float32))],
        {"mode": mode},
        opset=opset,
    )


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_matches_onnxruntime(mode):
    assert_same_as_ort(
        "Upsample",
        [("x", f32(1, 2, 4, 5)), ("s", np.array([1, 1, 2, 3], np.float32))],
        {"mode": mode},
        opset=9,
    )


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_matches_onnxruntime_inside_and_outside_the_grid(
    mode, padding_mode, align_corners
):
    grid = (_rng.random((2, 4, 7, 2)) * 3 - 1.5).astype(np.float32)
    attrs = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    assert_same_as_ort("GridSample", [("x", f32(2, 3, 5, 6)), ("g", grid)], attrs, opset=20)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_grid_sample_volumetric_matches_onnxruntime(mode):
    grid = (_rng.random((1, 3, 4, 5, 3)) * 2.4 - 1.2).astype(np.float32)
    assert_same_as_ort(
        "GridSample", [("x", f32(1, 2, 4, 5, 6)), ("g", grid)], {"mode": mode}, opset=20
    )


@pytest.mark.parametrize("align_corners", [0, 1])
@pytest.mark.parametrize("size", [[2, 3, 5, 6], [2, 3, 4, 5, 6]])
def test_affine_grid_matches_onnxruntime(align_corners, size):
    nd = len(size) - 2
    theta = f32(2, nd, nd + 1)
    assert_same_as_ort(
        "AffineGrid",
        [("t", theta), ("s", np.array(size, np.int64))],
        {"align_corners": align_corners},
        opset=20,
    )
