"""Quantization, random, text, signal, training and detection CPU kernels, beyond the node suite."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

tessera = pytest.importorskip("tessera")
ort = pytest.importorskip("onnxruntime")

F = TensorProto.FLOAT
I64 = TensorProto.INT64
S = TensorProto.STRING
TRAINING = "ai.onnx.preview.training"


def _model(nodes, inputs, outputs, initializers=(), opset=21, training=False) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset)]
    if training:
        opsets.append(helper.make_opsetid(TRAINING, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model


def _vi(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def _run(model: onnx.ModelProto, feeds: dict | None = None) -> list:
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds or {})


def _ort(model: onnx.ModelProto, feeds: dict | None = None) -> list:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds or {})


def _const(name, array: np.ndarray):
    return onnx.numpy_helper.from_array(np.asarray(array), name)


# --------------------------------------------------------------------------- quantization


def _quantize(x, scale, zp=None, opset=21, **attrs):
    inits = [_const("s", scale)]
    ins = ["x", "s"]
    out_elem = TensorProto.UINT8
    if zp is not None:
        inits.append(_const("z", zp))
        ins.append("z")
        out_elem = helper.np_dtype_to_tensor_dtype(zp.dtype)
    elif attrs.get("output_dtype"):
        out_elem = attrs["output_dtype"]
    node = helper.make_node("QuantizeLinear", ins, ["y"], **attrs)
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    return _model([node], [_vi("x", elem)], [_vi("y", out_elem)], inits, opset=opset)


@pytest.mark.parametrize("xdt", [np.float32, np.float16])
@pytest.mark.parametrize("zdt", [np.int8, np.uint8, np.int16, np.uint16])
def test_quantize_per_axis_negative_axis_matches_onnxruntime(xdt, zdt):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4, 5)) * 40).astype(xdt)
    x[0, 0, :3] = [0.5, 1.5, -2.5]  # ties round to even
    scale = rng.uniform(0.2, 2.0, 5).astype(xdt)
    zp = np.full(5, 3, zdt)
    model = _quantize(x, scale, zp, axis=-1)
    (got,) = _run(model, {"x": x})
    (want,) = _ort(model, {"x": x})
    assert got.dtype == np.dtype(zdt)
    np.testing.assert_array_equal(got, want)


def test_quantize_blocked_with_partial_last_block_matches_numpy():
    x = np.arange(-14, 14, dtype=np.float32).reshape(2, 14)
    scale = np.array(
        [[1.0, 2.0, 4.0, 8.0], [0.5, 1.0, 2.0, 3.0]], np.float32
    )  # blocks of 4, last has 2
    zp = np.array([[0, 1, 2, 3], [-1, 0, 1, 2]], np.int8)
    (got,) = _run(_quantize(x, scale, zp, axis=1, block_size=4), {"x": x})
    full_s = np.repeat(scale, 4, axis=1)[:, :14]
    full_z = np.repeat(zp, 4, axis=1)[:, :14].astype(np.float32)
    want = np.clip(np.rint(x / full_s) + full_z, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(got, want)


def test_quantize_int4_saturates_to_its_range():
    x = np.array([[-100.0, -8.0, 0.4, 7.0, 100.0]], np.float32)
    (got,) = _run(_quantize(x, np.array(1.0, np.float32), np.array(0, ml_dtypes.int4)), {"x": x})
    assert got.dtype == np.dtype(ml_dtypes.int4)
    np.testing.assert_array_equal(got.astype(np.int8), [[-8, -8, 0, 7, 7]])


def test_quantize_float8_without_saturation_overflows_to_nan():
    x = np.array([1.0, 1e6, -1e6], np.float32)
    zp = np.zeros((), ml_dtypes.float8_e4m3fn)
    (sat,) = _run(_quantize(x, np.array(1.0, np.float32), zp), {"x": x})
    (raw,) = _run(_quantize(x, np.array(1.0, np.float32), zp, saturate=0), {"x": x})
    np.testing.assert_array_equal(sat.astype(np.float32), [1.0, 448.0, -448.0])
    assert raw.astype(np.float32)[0] == 1.0 and np.isnan(raw.astype(np.float32)[1:]).all()


def test_quantize_output_dtype_without_zero_point():
    x = np.array([-70000.0, 1.0, 70000.0], np.float32)
    (got,) = _run(_quantize(x, np.array(1.0, np.float32), output_dtype=TensorProto.INT16), {"x": x})
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, [-32768, 1, 32767])


def test_quantize_output_dtype_conflicting_with_zero_point_is_rejected():
    x = np.zeros(3, np.float32)
    model = _quantize(
        x, np.array(1.0, np.float32), np.array(0, np.int8), output_dtype=TensorProto.UINT8
    )
    with pytest.raises(ValueError, match="output_dtype"):
        _run(model, {"x": x})


def test_quantize_per_axis_scale_of_wrong_length_raises_clearly():
    x = np.zeros((2, 3), np.float32)
    model = _quantize(x, np.ones(4, np.float32), np.zeros(4, np.uint8), axis=1)
    with pytest.raises(RuntimeError, match="per-axis parameter"):
        _run(model, {"x": x})


def _dequantize(x, scale, zp=None, out_elem=None, opset=21, **attrs):
    inits = [_const("s", scale)]
    ins = ["x", "s"]
    if zp is not None:
        inits.append(_const("z", zp))
        ins.append("z")
    out = out_elem or helper.np_dtype_to_tensor_dtype(scale.dtype)
    node = helper.make_node("DequantizeLinear", ins, ["y"], **attrs)
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    return _model([node], [_vi("x", elem)], [_vi("y", out)], inits, opset=opset)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8, np.int16, np.uint16])
def test_dequantize_blocked_negative_axis_matches_onnxruntime(xdt):
    rng = np.random.default_rng(1)
    info = np.iinfo(xdt)
    x = rng.integers(info.min, info.max, (3, 7, 4), endpoint=True).astype(xdt)
    scale = rng.uniform(0.1, 2.0, (3, 3, 4)).astype(np.float32)
    zp = np.full((3, 3, 4), 5, xdt)
    model = _dequantize(x, scale, zp, axis=-2, block_size=3)
    np.testing.assert_array_equal(_run(model, {"x": x})[0], _ort(model, {"x": x})[0])


def test_dequantize_int32_subtracts_the_zero_point_exactly_before_scaling():
    x = np.array([2**24 + 3, 2**24 + 1], np.int32)
    zp = np.array(2**24 + 1, np.int32)  # float32 cannot hold these, their difference it can
    (got,) = _run(_dequantize(x, np.array(1.0, np.float32), zp), {"x": x})
    np.testing.assert_array_equal(got, [2.0, 0.0])


def test_dequantize_output_dtype_attribute_sets_the_output_type():
    x = np.array([0, 10, 255], np.uint8)
    model = _dequantize(
        x,
        np.array(0.5, np.float32),
        np.array(10, np.uint8),
        out_elem=TensorProto.FLOAT16,
        opset=23,
        output_dtype=TensorProto.FLOAT16,
    )
    (got,) = _run(model, {"x": x})
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.array([-5.0, 0.0, 122.5], np.float16))


def test_dequantize_e8m0_scale_without_output_dtype_is_rejected():
    x = np.array([1, 2], np.int8)
    scale = np.array(2.0, ml_dtypes.float8_e8m0fnu)
    model = _dequantize(x, scale, out_elem=F, opset=24)
    with pytest.raises(ValueError, match="output_dtype"):
        _run(model, {"x": x})


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((2, 3), np.float32),
        -np.linspace(1, 5, 6, dtype=np.float32),
        np.linspace(-3, 7, 11, dtype=np.float32),
        np.array([1e-8, 3e-8], np.float32),
    ],
)
def test_dynamic_quantize_matches_onnxruntime(x):
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    outs = [_vi("y", TensorProto.UINT8), _vi("s"), _vi("z", TensorProto.UINT8)]
    model = _model([node], [_vi("x")], outs, opset=11)
    for got, want in zip(_run(model, {"x": x}), _ort(model, {"x": x})):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- signal


def _dft_model(opset, length=None, axis=None, **attrs):
    ins, inits = ["x"], []
    if length is not None:
        ins.append("n")
        inits.append(_const("n", np.array(length, np.int64)))
    if opset >= 20 and axis is not None:
        ins += [""] * (2 - len(ins)) + ["a"]
        inits.append(_const("a", np.array(axis, np.int64)))
    elif axis is not None:
        attrs["axis"] = axis
    node = helper.make_node("DFT", ins, ["y"], **attrs)
    return _model([node], [_vi("x")], [_vi("y")], inits, opset=opset)


@pytest.mark.parametrize("opset", [17, 20])
def test_dft_axis_attribute_and_input_forms_pad_to_dft_length(opset):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3, 2)).astype(np.float32)
    (got,) = _run(_dft_model(opset, length=8, axis=1), {"x": x})
    want = np.fft.fft(x[..., 0] + 1j * x[..., 1], n=8, axis=1)
    assert got.shape == (2, 8, 3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got[..., 0] + 1j * got[..., 1], want, rtol=1e-5, atol=1e-5)


def test_dft_rfft_then_irfft_round_trips_an_odd_length_signal():
    x = np.random.default_rng(3).standard_normal((1, 7, 1)).astype(np.float64)
    node_f = helper.make_node("DFT", ["x", "", "a"], ["f"], onesided=1)
    node_i = helper.make_node("DFT", ["f", "n", "a"], ["y"], onesided=1, inverse=1)
    inits = [_const("a", np.array(1, np.int64)), _const("n", np.array(7, np.int64))]
    model = _model(
        [node_f, node_i],
        [_vi("x", TensorProto.DOUBLE)],
        [_vi("y", TensorProto.DOUBLE)],
        inits,
        opset=20,
    )
    (got,) = _run(model, {"x": x})
    assert got.shape == (1, 7, 1) and got.dtype == np.float64
    np.testing.assert_allclose(got, x, atol=1e-12)


def test_dft_float16_input_keeps_its_dtype():
    x = np.ones((1, 4, 1), np.float16)
    model = _model(
        [helper.make_node("DFT", ["x"], ["y"], axis=1)],
        [_vi("x", TensorProto.FLOAT16)],
        [_vi("y", TensorProto.FLOAT16)],
        opset=17,
    )
    (got,) = _run(model, {"x": x})
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got[0, :, 0], [4, 0, 0, 0])


def test_dft_on_the_complex_dimension_is_rejected():
    with pytest.raises((ValueError, RuntimeError), match="axis"):
        _run(_dft_model(20, axis=-1), {"x": np.zeros((2, 4, 2), np.float32)})


@pytest.mark.parametrize("onesided", [0, 1])
def test_stft_with_window_matches_onnxruntime(onesided):
    x = np.random.default_rng(4).standard_normal((2, 50, 1)).astype(np.float32)
    inits = [_const("step", np.array(5, np.int64)), _const("w", np.hanning(12).astype(np.float32))]
    node = helper.make_node("STFT", ["x", "step", "w"], ["y"], onesided=onesided)
    model = _model([node], [_vi("x")], [_vi("y")], inits, opset=17)
    (got,) = _run(model, {"x": x})
    (want,) = _ort(model, {"x": x})
    assert got.shape == want.shape == (2, 8, 7 if onesided else 12, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_stft_window_and_frame_length_disagreeing_raises():
    inits = [_const("s", np.array(2, np.int64)), _const("w", np.ones(4, np.float32)),
             _const("l", np.array(5, np.int64))]  # fmt: skip
    model = _model(
        [helper.make_node("STFT", ["x", "s", "w", "l"], ["y"])],
        [_vi("x")],
        [_vi("y")],
        inits,
        opset=17,
    )
    with pytest.raises(RuntimeError, match="frame_length"):
        _run(model, {"x": np.zeros((1, 10, 1), np.float32)})


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
def test_windows_match_onnxruntime_in_double(op, periodic):
    node = helper.make_node(op, ["n"], ["y"], periodic=periodic, output_datatype=TensorProto.DOUBLE)
    model = _model([node], [_vi("n", I64, [])], [_vi("y", TensorProto.DOUBLE)], opset=17)
    (got,) = _run(model, {"n": np.array(17, np.int64)})
    assert got.dtype == np.float64
    # onnxruntime rounds the window coefficients to float32, hence the tolerance.
    np.testing.assert_allclose(got, _ort(model, {"n": np.array(17, np.int64)})[0], atol=1e-7)


def test_mel_weight_matrix_matches_onnxruntime():
    node = helper.make_node("MelWeightMatrix", ["a", "b", "c", "d", "e"], ["y"])
    ins = [_vi(n, I64, []) for n in "abc"] + [_vi("d", F, []), _vi("e", F, [])]
    model = _model([node], ins, [_vi("y")], opset=17)
    feeds = {"a": np.array(20), "b": np.array(512), "c": np.array(16000),
             "d": np.array(20.0, np.float32), "e": np.array(8000.0, np.float32)}  # fmt: skip
    (got,) = _run(model, feeds)
    assert got.shape == (257, 20)
    np.testing.assert_allclose(got, _ort(model, feeds)[0], atol=1e-6)


# --------------------------------------------------------------------------- detection


def _nms_model(center=0, limit=5, iou=0.4, score=None):
    inits = [_const("m", np.array([limit], np.int64)), _const("i", np.array([iou], np.float32))]
    ins = ["b", "s", "m", "i"]
    if score is not None:
        inits.append(_const("t", np.array([score], np.float32)))
        ins.append("t")
    node = helper.make_node("NonMaxSuppression", ins, ["y"], center_point_box=center)
    return _model([node], [_vi("b"), _vi("s")], [_vi("y", I64)], inits, opset=11)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("score", [None, 0.3])
def test_nms_random_boxes_match_onnxruntime(center, score):
    rng = np.random.default_rng(5)
    boxes = rng.uniform(0, 10, (2, 60, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (2, 3, 60)).astype(np.float32)
    scores[0, 0, :6] = 0.75  # equal scores keep the lower box index first
    model = _nms_model(center, limit=9, score=score)
    (got,) = _run(model, {"b": boxes, "s": scores})
    (want,) = _ort(model, {"b": boxes, "s": scores})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_nms_heavy_suppression_across_many_candidates_matches_onnxruntime():
    # More candidates than one overlap block, crowded so that most are suppressed.
    rng = np.random.default_rng(8)
    centre = rng.uniform(0, 30, (1, 1500, 2))
    size = rng.uniform(2, 6, (1, 1500, 2))
    boxes = np.concatenate([centre, centre + size], axis=-1).astype(np.float32)
    scores = rng.uniform(0, 1, (1, 2, 1500)).astype(np.float32)
    model = _nms_model(limit=1000, iou=0.2)
    (got,) = _run(model, {"b": boxes, "s": scores})
    (want,) = _ort(model, {"b": boxes, "s": scores})
    assert 0 < len(want) < 2000
    np.testing.assert_array_equal(got, want)


def test_nms_zero_max_output_gives_an_empty_int64_result():
    boxes = np.array([[[0, 0, 1, 1]]], np.float32)
    (got,) = _run(_nms_model(limit=0), {"b": boxes, "s": np.ones((1, 1, 1), np.float32)})
    assert got.shape == (0, 3) and got.dtype == np.int64


# --------------------------------------------------------------------------- text


def _text_model(op, attrs, n_in=1, outs=(("y", S),), opset=20):
    ins = [_vi(f"x{i}", S) for i in range(n_in)]
    node = helper.make_node(op, [f"x{i}" for i in range(n_in)], [o for o, _ in outs], **attrs)
    return _model([node], ins, [_vi(o, e) for o, e in outs], opset=opset)


def test_string_normalizer_case_insensitive_stopwords_and_upper():
    model = _text_model(
        "StringNormalizer", {"stopwords": ["the"], "case_change_action": "UPPER"}, opset=10
    )
    x = np.array([["The", "straße", "THE", "go"]], dtype=object)
    (got,) = _run(model, {"x0": x})
    # Per-character upper-casing keeps 'ß', like onnxruntime's towupper.
    assert got.shape == (1, 2) and got.tolist() == [["STRAßE", "GO"]]


def test_string_normalizer_all_removed_gives_one_empty_string():
    model = _text_model("StringNormalizer", {"stopwords": ["a"], "is_case_sensitive": 1}, opset=10)
    (got,) = _run(model, {"x0": np.array(["a", "a"], dtype=object)})
    assert got.shape == (1,) and got.tolist() == [""]


def test_string_normalizer_rejects_a_non_english_locale():
    model = _text_model(
        "StringNormalizer", {"locale": "tr_TR", "case_change_action": "LOWER"}, opset=10
    )
    with pytest.raises(ValueError, match="locale"):
        _run(model, {"x0": np.array(["I"], dtype=object)})


def test_regex_full_match_translates_re2_posix_classes():
    model = _text_model(
        "RegexFullMatch", {"pattern": "[[:alpha:]]+[[:digit:]]"}, outs=(("y", TensorProto.BOOL),)
    )
    (got,) = _run(model, {"x0": np.array([["abc1", "ab"], ["1a", "Z9"]], dtype=object)})
    np.testing.assert_array_equal(got, [[True, False], [False, True]])


def test_regex_perl_classes_are_ascii_like_re2():
    model = _text_model("RegexFullMatch", {"pattern": r"\d+\s\w+"}, outs=(("y", TensorProto.BOOL),))
    x = np.array(["12 ab", "١٢ ab", "12\u00a0ab", "12 é"], dtype=object)
    (got,) = _run(model, {"x0": x})
    np.testing.assert_array_equal(got, _ort(model, {"x0": x})[0])
    np.testing.assert_array_equal(got, [True, False, False, False])


def test_regex_lookahead_is_rejected_as_not_re2():
    model = _text_model("RegexFullMatch", {"pattern": "a(?=b)"}, outs=(("y", TensorProto.BOOL),))
    with pytest.raises(ValueError, match="RE2"):
        _run(model, {"x0": np.array(["ab"], dtype=object)})


def test_string_concat_broadcasts_and_keeps_zero_rank():
    model = _text_model("StringConcat", {}, n_in=2)
    got, = _run(model, {"x0": np.array([["a"], ["é"]], dtype=object),
                        "x1": np.array(["1", ""], dtype=object)})  # fmt: skip
    assert got.tolist() == [["a1", "a"], ["é1", "é"]]
    (got,) = _run(model, {"x0": np.array("x", dtype=object), "x1": np.array("y", dtype=object)})
    assert got.shape == () and got.dtype == object and got.tolist() == "xy"


@pytest.mark.parametrize("delimiter", [None, ","])
def test_string_split_matches_onnxruntime(delimiter):
    attrs = {"maxsplit": 1} if delimiter is None else {"delimiter": delimiter}
    model = _text_model("StringSplit", attrs, outs=(("y", S), ("z", I64)))
    x = np.array([["a,b,,c", "  lead  trail  "], ["", ",,"]], dtype=object)
    got, want = _run(model, {"x0": x}), _ort(model, {"x0": x})
    assert got[0].shape == want[0].shape and got[0].tolist() == want[0].tolist()
    np.testing.assert_array_equal(got[1], want[1])


def test_string_split_empty_tensor_has_zero_width():
    model = _text_model("StringSplit", {}, outs=(("y", S), ("z", I64)))
    y, z = _run(model, {"x0": np.empty((0,), dtype=object)})
    assert y.shape == (0, 0) and z.shape == (0,) and z.dtype == np.int64


@pytest.mark.parametrize("mode", ["TF", "IDF", "TFIDF"])
@pytest.mark.parametrize("strings", [False, True])
def test_tfidf_weights_follow_ngram_indexes_like_onnxruntime(mode, strings):
    pool = [4, 1, 7, 2, 4, 7, 1, 2, 2, 7]  # 4 unigrams, 3 bigrams
    attrs = dict(mode=mode, min_gram_length=1, max_gram_length=2, max_skip_count=2,
                 ngram_counts=[0, 4], ngram_indexes=[6, 0, 3, 1, 5, 2, 4],
                 weights=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])  # fmt: skip
    x = np.random.default_rng(6).integers(0, 9, (3, 10))
    if strings:
        attrs["pool_strings"] = [f"t{p}" for p in pool]
        feed, elem = np.array([[f"t{v}" for v in r] for r in x], dtype=object), S
    else:
        attrs["pool_int64s"] = pool
        feed, elem = x.astype(np.int64), I64
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], **attrs)
    model = _model([node], [_vi("x", elem)], [_vi("y")], opset=9)
    (got,) = _run(model, {"x": feed})
    assert got.shape == (3, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, _ort(model, {"x": feed})[0])


def test_tfidf_duplicate_pool_ngram_is_rejected():
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=1,
                            max_gram_length=1, max_skip_count=0, ngram_counts=[0],
                            ngram_indexes=[0, 1], pool_int64s=[3, 3])  # fmt: skip
    with pytest.raises(ValueError, match="repeats"):
        _run(_model([node], [_vi("x", I64)], [_vi("y")], opset=9), {"x": np.array([3])})


# --------------------------------------------------------------------------- training


def _training_model(op, n_groups, n_tensors, attrs):
    names = [f"in{i}" for i in range(n_groups * n_tensors)]
    outs = [f"out{i}" for i in range((n_groups - 1) * n_tensors)]
    node = helper.make_node(op, ["r", "t", *names], outs, domain=TRAINING, **attrs)
    ins = [_vi("r", F, []), _vi("t", I64, [])] + [_vi(n, F) for n in names]
    return _model([node], ins, [_vi(o) for o in outs], opset=17, training=True)


def test_adam_updates_two_tensors_independently():
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(s).astype(np.float32) for _ in range(4) for s in ((3,), (2, 2))]
    xs[6:] = [np.abs(h) for h in xs[6:]]  # squared-gradient averages are non-negative
    attrs = dict(
        alpha=0.8, beta=0.9, epsilon=1e-4, norm_coefficient=0.1, norm_coefficient_post=0.05
    )
    model = _training_model("Adam", 4, 2, attrs)
    feeds = {"r": np.array(0.1, np.float32), "t": np.array(3, np.int64)}
    feeds.update({f"in{i}": a for i, a in enumerate(xs)})
    got = _run(model, feeds)
    for k in range(2):
        x, g, v, h = xs[k], xs[2 + k], xs[4 + k], xs[6 + k]
        gr = 0.1 * x + g
        v2 = 0.8 * v + 0.2 * gr
        h2 = 0.9 * h + 0.1 * gr * gr
        rate = 0.1 * np.sqrt(1 - 0.9**3) / (1 - 0.8**3)
        x2 = (1 - 0.05) * (x - rate * v2 / (np.sqrt(h2) + 1e-4))
        for out, want in zip(got[k::2], (x2, v2, h2)):
            assert out.dtype == np.float32 and out.shape == x.shape
            np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["standard", "nesterov"])
def test_momentum_first_step_ignores_beta(mode):
    x, g, v = np.ones(3, np.float32), np.full(3, 2.0, np.float32), np.full(3, 0.5, np.float32)
    model = _training_model(
        "Momentum", 3, 1, dict(alpha=0.9, beta=0.1, norm_coefficient=0.0, mode=mode)
    )
    feeds = {
        "r": np.array(0.1, np.float32),
        "t": np.array(0, np.int64),
        "in0": x,
        "in1": g,
        "in2": v,
    }
    x_new, v_new = _run(model, feeds)
    v_want = 0.9 * 0.5 + 1.0 * 2.0
    np.testing.assert_allclose(v_new, v_want, rtol=1e-6)
    step = v_want if mode == "standard" else 2.0 + 0.9 * v_want
    np.testing.assert_allclose(x_new, 1 - 0.1 * step, rtol=1e-6)


def test_adagrad_decays_the_learning_rate():
    x, g, h = np.ones(2, np.float32), np.ones(2, np.float32), np.zeros(2, np.float32)
    model = _training_model("Adagrad", 3, 1, dict(decay_factor=1.0, epsilon=0.0))
    feeds = {
        "r": np.array(1.0, np.float32),
        "t": np.array(1, np.int64),
        "in0": x,
        "in1": g,
        "in2": h,
    }
    x_new, h_new = _run(model, feeds)
    np.testing.assert_allclose(h_new, [1, 1])
    np.testing.assert_allclose(x_new, [0.5, 0.5])  # r = 1 / (1 + 1 * 1)


def test_momentum_unknown_mode_is_rejected_at_creation():
    model = _training_model(
        "Momentum", 3, 1, dict(alpha=0.9, beta=0.1, norm_coefficient=0.0, mode="x")
    )
    with pytest.raises(ValueError, match="mode"):
        tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- random


def test_random_uniform_honours_dtype_range_and_seed():
    node = helper.make_node("RandomUniform", [], ["y"], shape=[200, 50], low=-2.0, high=3.0,
                            dtype=TensorProto.DOUBLE, seed=5.0)  # fmt: skip
    model = _model([node], [], [_vi("y", TensorProto.DOUBLE)], opset=22)
    (a,) = _run(model)
    (b,) = _run(model)
    assert a.dtype == np.float64 and a.shape == (200, 50)
    assert a.min() >= -2.0 and a.max() < 3.0 and abs(a.mean() - 0.5) < 0.1
    np.testing.assert_array_equal(a, b)  # a seeded node repeats its draws


def test_random_normal_like_takes_shape_and_dtype_from_input():
    node = helper.make_node("RandomNormalLike", ["x"], ["y"], mean=5.0, scale=2.0)
    model = _model(
        [node], [_vi("x", TensorProto.FLOAT16)], [_vi("y", TensorProto.FLOAT16)], opset=22
    )
    (got,) = _run(model, {"x": np.zeros((100, 100), np.float16)})
    assert got.dtype == np.float16 and got.shape == (100, 100)
    assert abs(got.astype(np.float64).mean() - 5.0) < 0.1
    assert abs(got.astype(np.float64).std() - 2.0) < 0.1


def test_random_like_non_float_input_without_dtype_is_rejected():
    node = helper.make_node("RandomUniformLike", ["x"], ["y"])
    model = _model([node], [_vi("x", TensorProto.INT32)], [_vi("y")], opset=22)
    with pytest.raises(ValueError, match="float"):
        _run(model, {"x": np.zeros(3, np.int32)})


def test_bernoulli_certain_probabilities_are_exact():
    node = helper.make_node("Bernoulli", ["x"], ["y"], dtype=TensorProto.INT32)
    model = _model([node], [_vi("x")], [_vi("y", TensorProto.INT32)], opset=22)
    (got,) = _run(model, {"x": np.array([0.0, 1.0, 0.0, 1.0], np.float32)})
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [0, 1, 0, 1])


def test_multinomial_frequencies_follow_softmax_and_skip_zero_probability():
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 1e-30, 0.5]], np.float32))
    node = helper.make_node("Multinomial", ["x"], ["y"], sample_size=20000, dtype=I64, seed=1.0)
    (got,) = _run(_model([node], [_vi("x")], [_vi("y", I64)], opset=22), {"x": logits})
    assert got.shape == (2, 20000) and got.dtype == np.int64
    freq = np.array([np.bincount(r, minlength=3) / 20000 for r in got])
    np.testing.assert_allclose(freq[0], [0.1, 0.2, 0.7], atol=0.02)
    assert freq[1, 1] == 0 and abs(freq[1, 0] - 0.5) < 0.02


def test_image_decoder_rejects_bytes_that_are_not_an_image():
    pytest.importorskip("PIL")
    from onnx import helper as h

    graph = h.make_graph(
        [h.make_node("ImageDecoder", ["data"], ["pixels"], name="decode")],
        "g",
        [h.make_tensor_value_info("data", onnx.TensorProto.UINT8, [None])],
        [h.make_tensor_value_info("pixels", onnx.TensorProto.UINT8, None)],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 20)])
    sess = tessera.InferenceSession(model.SerializeToString())
    with pytest.raises(tessera.RuntimeFailure, match=r"'decode' .*cannot decode the image"):
        sess.run(None, {"data": np.frombuffer(b"not an image at all", np.uint8)})
