"""Each OpenCL kernel family against the CPU provider's NumPy kernels, on odd shapes and broadcasts."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _opencl_support import cpu_session, model, strict_session, unavailable, vi
from onnx import helper, numpy_helper

import tessera

_REASON = unavailable()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

I64 = onnx.TensorProto.INT64
rng = np.random.default_rng(7)


def _f(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _i64(*values):
    return np.asarray(values, np.int64)


def _case(node, feeds, consts=None, opset=17, out_elem=onnx.TensorProto.FLOAT, n_out=1):
    """(model bytes, feeds): graph inputs from ``feeds``, initializers from ``consts``."""
    consts = consts or {}
    inputs = [
        vi(k, list(v.shape), onnx.helper.np_dtype_to_tensor_dtype(v.dtype))
        for k, v in feeds.items()
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    outs = [vi(o, None, out_elem) for o in node.output[:n_out]]
    return model([node], inputs, outs, inits, opset=opset), feeds


N = helper.make_node
CASES = {
    "conv_im2col_grouped_bias": _case(
        N(
            "Conv",
            ["x", "w", "b"],
            ["y"],
            group=2,
            strides=[2, 1],
            pads=[1, 2, 0, 1],
            dilations=[1, 2],
        ),
        {"x": _f(2, 8, 9, 7)},
        {"w": _f(6, 4, 3, 3), "b": _f(6)},
    ),
    "conv3d_im2col": _case(
        N("Conv", ["x", "w"], ["y"], pads=[1, 0, 1, 1, 0, 1]),
        {"x": _f(1, 4, 3, 5, 4)},
        {"w": _f(3, 4, 2, 3, 2)},
    ),
    "attention_gqa_causal_3d": _case(
        N("Attention", ["q", "k", "v"], ["y"], is_causal=1, q_num_heads=4, kv_num_heads=2),
        {"q": _f(2, 3, 16), "k": _f(2, 5, 8), "v": _f(2, 5, 8)},
        opset=23,
    ),
    "cumsum_reverse_exclusive": _case(
        N("CumSum", ["x", "a"], ["y"], reverse=1, exclusive=1), {"x": _f(3, 4)}, {"a": _i64(1)}
    ),
    "lrn": _case(N("LRN", ["x"], ["y"], size=3), {"x": _f(1, 5, 3, 3)}),
    "unary_math": _case(N("Gelu", ["x"], ["y"]), {"x": _f(3, 5)}, opset=20),
    "sigmoid": _case(N("Sigmoid", ["x"], ["y"]), {"x": _f(7)}),
    "erf": _case(N("Erf", ["x"], ["y"]), {"x": _f(2, 9)}),
    "binary_broadcast": _case(N("Sub", ["a", "b"], ["y"]), {"a": _f(2, 1, 4), "b": _f(3, 1)}),
    "pow_scalar": _case(N("Pow", ["a", "b"], ["y"]), {"a": np.abs(_f(5)), "b": _f()}),
    "compare_to_bool": _case(
        N("Greater", ["a", "b"], ["y"]), {"a": _f(2, 3), "b": _f(3)}, out_elem=onnx.TensorProto.BOOL
    ),
    "int_mod": _case(
        N("Mod", ["a", "b"], ["y"]), {"a": _i64(-7, 7, 5, -3), "b": _i64(3, -3, 2, 2)}, out_elem=I64
    ),
    "where": _case(
        N("Where", ["c", "a", "b"], ["y"]),
        {"c": rng.random((3, 1)) > 0.5, "a": _f(3, 4), "b": _f(4)},
    ),
    "clip": _case(
        N("Clip", ["x", "lo", "hi"], ["y"]),
        {"x": _f(10)},
        {"lo": np.float32(-0.5), "hi": np.float32(0.5)},
    ),
    "cast_to_int": _case(
        N("Cast", ["x"], ["y"], to=onnx.TensorProto.INT32),
        {"x": _f(6) * 4},
        out_elem=onnx.TensorProto.INT32,
    ),
    "reduce_mean_axes": _case(
        N("ReduceMean", ["x"], ["y"], axes=[0, 2], keepdims=1), {"x": _f(3, 4, 5)}
    ),
    "reduce_max_input_axes": _case(
        N("ReduceMax", ["x", "ax"], ["y"], keepdims=0),
        {"x": _f(3, 4, 5)},
        {"ax": _i64(-1)},
        opset=18,
    ),
    "reduce_logsumexp": _case(N("ReduceLogSumExp", ["x"], ["y"], axes=[1]), {"x": _f(4, 6)}),
    "argmax": _case(N("ArgMax", ["x"], ["y"], axis=1), {"x": _f(3, 7)}, out_elem=I64),
    "softmax": _case(N("Softmax", ["x"], ["y"], axis=1), {"x": _f(2, 5, 3)}),
    "log_softmax_legacy": _case(
        N("LogSoftmax", ["x"], ["y"], axis=1), {"x": _f(2, 5, 3)}, opset=11
    ),
    "layer_norm": _case(
        N("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1),
        {"x": _f(2, 3, 8)},
        {"s": _f(8), "b": _f(8)},
    ),
    "batch_norm": _case(
        N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
        {"x": _f(2, 3, 4, 4)},
        {"s": _f(3), "b": _f(3), "m": _f(3), "v": np.abs(_f(3)) + 0.5},
    ),
    "matmul_batched_tile_edges": _case(
        N("MatMul", ["a", "b"], ["y"]), {"a": _f(2, 1, 17, 33), "b": _f(3, 33, 19)}
    ),
    "matmul_vector": _case(N("MatMul", ["a", "b"], ["y"]), {"a": _f(5), "b": _f(5, 3)}),
    "gemm_trans_bias": _case(
        N("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0),
        {"a": _f(9, 4), "b": _f(6, 9), "c": _f(6)},
    ),
    "conv_grouped_strided": _case(
        N(
            "Conv",
            ["x", "w", "b"],
            ["y"],
            group=2,
            strides=[2, 1],
            pads=[1, 0, 1, 2],
            dilations=[1, 2],
        ),
        {"x": _f(1, 4, 7, 6)},
        {"w": _f(6, 2, 3, 2), "b": _f(6)},
    ),
    "conv_transpose": _case(
        N("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 0, 0, 1]),
        {"x": _f(1, 2, 3, 4)},
        {"w": _f(2, 3, 3, 3)},
    ),
    "avg_pool_pads": _case(
        N(
            "AveragePool",
            ["x"],
            ["y"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=0,
            ceil_mode=1,
            strides=[2, 2],
        ),
        {"x": _f(1, 2, 6, 7)},
    ),
    "global_avg_pool": _case(N("GlobalAveragePool", ["x"], ["y"]), {"x": _f(2, 3, 5, 5)}),
    "transpose": _case(N("Transpose", ["x"], ["y"], perm=[2, 0, 1]), {"x": _f(2, 3, 4)}),
    "slice_negative_step": _case(
        N("Slice", ["x", "s", "e", "a", "st"], ["y"]),
        {"x": _f(5, 6)},
        {"s": _i64(-1, 1), "e": _i64(-6, 100), "a": _i64(0, 1), "st": _i64(-2, 2)},
    ),
    "concat": _case(N("Concat", ["a", "b"], ["y"], axis=1), {"a": _f(2, 1, 3), "b": _f(2, 4, 3)}),
    "gather_negative_indices": _case(
        N("Gather", ["x", "i"], ["y"], axis=1), {"x": _f(3, 5)}, {"i": _i64(-1, 0, 2)}
    ),
    "pad_reflect": _case(
        N("Pad", ["x", "p"], ["y"], mode="reflect"), {"x": _f(3, 4)}, {"p": _i64(1, 2, 2, 1)}
    ),
    "expand": _case(N("Expand", ["x", "s"], ["y"]), {"x": _f(3, 1)}, {"s": _i64(2, 3, 4)}),
    "split": _case(
        N("Split", ["x", "s"], ["y", "z"], axis=1), {"x": _f(2, 5)}, {"s": _i64(2, 3)}, n_out=2
    ),
    "resize_linear_three_axes": _case(
        N("Resize", ["x", "", "s"], ["y"], mode="linear"),
        {"x": _f(2, 3, 5, 4)},
        {"s": np.asarray([1.0, 1.5, 0.6, 2.25], np.float32)},
        opset=19,
    ),
    "resize_cubic_antialias_sizes": _case(
        N("Resize", ["x", "", "", "sz"], ["y"], mode="cubic", antialias=1, exclude_outside=1),
        {"x": _f(1, 2, 9, 11)},
        {"sz": _i64(1, 2, 4, 5)},
        opset=19,
    ),
    "resize_nearest_uint8_axes": _case(
        N(
            "Resize",
            ["x", "", "", "sz"],
            ["y"],
            axes=[3, 2],
            nearest_mode="round_prefer_ceil",
            coordinate_transformation_mode="align_corners",
        ),
        {"x": rng.integers(0, 255, (2, 3, 4, 5)).astype(np.uint8)},
        {"sz": _i64(7, 3)},
        opset=19,
        out_elem=onnx.TensorProto.UINT8,
    ),
    "resize_tf_crop_and_resize_extrapolation": _case(
        N(
            "Resize",
            ["x", "roi", "", "sz"],
            ["y"],
            mode="linear",
            coordinate_transformation_mode="tf_crop_and_resize",
            extrapolation_value=7.0,
        ),
        {"x": _f(1, 1, 4, 4)},
        {
            "roi": np.asarray([0, 0, -0.2, 0.3, 1, 1, 0.9, 1.4], np.float32),
            "sz": _i64(1, 1, 5, 6),
        },
        opset=19,
    ),
    "upsample_attribute_scales_fractional": _case(
        N("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.5, 0.5]),
        {"x": _f(1, 2, 3, 6)},
        opset=8,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_cpu_provider(name):
    data, feeds = CASES[name]
    sess = strict_session(data)  # raises if OpenCL declined any node
    got = sess.run(None, feeds)
    want = cpu_session(data).run(None, feeds)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_linear_resize_of_integers_falls_back_to_cpu_with_the_reason():
    data, _ = _case(
        N("Resize", ["x", "", "s"], ["y"], mode="linear"),
        {"x": rng.integers(0, 9, (1, 1, 3, 3)).astype(np.int32)},
        {"s": np.asarray([1, 1, 2, 2], np.float32)},
        opset=19,
        out_elem=onnx.TensorProto.INT32,
    )
    sess = tessera.InferenceSession(data, providers=["opencl", "cpu"])
    assert sess.assignments == {"Resize_0": "CPUExecutionProvider"}
    assert "linear interpolation of tensor(int32) is not implemented on OpenCL" in sess.explain()


def test_resize_of_an_empty_axis_gives_zeros_as_the_cpu_provider_does():
    data, _ = _case(
        N("Resize", ["x", "", "", "sz"], ["y"], mode="linear"),
        {"x": np.zeros((1, 2, 0, 3), np.float32)},
        {"sz": _i64(1, 2, 4, 6)},
        opset=19,
    )
    feeds = {"x": np.zeros((1, 2, 0, 3), np.float32)}
    got = strict_session(data).run(None, feeds)[0]
    want = cpu_session(data).run(None, feeds)[0]
    assert got.shape == want.shape == (1, 2, 4, 6)
    np.testing.assert_array_equal(got, want)
