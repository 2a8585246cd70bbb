"""Normalization, attention and loss CPU kernels, beyond the ONNX node suite."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

tessera = pytest.importorskip("tessera")
ort = pytest.importorskip("onnxruntime")

F = TensorProto.FLOAT
F16 = TensorProto.FLOAT16
RNG = np.random.default_rng(1234)


def _model(nodes, inputs, outputs, initializers=(), opset=21) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _vi(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def _run(model: onnx.ModelProto, feeds: dict) -> list:
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ort(model: onnx.ModelProto, feeds: dict) -> list:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ref(model: onnx.ModelProto, feeds: dict) -> list:
    return ReferenceEvaluator(model).run(None, feeds)


def _rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _single(
    op, inputs, outputs, attrs=None, opset=21, in_types=None, out_types=None, initializers=()
):
    """A one-node model; inputs/outputs are names, types default to float with unknown shape."""
    node = helper.make_node(op, [i or "" for i in inputs], outputs, **(attrs or {}))
    init_names = {t.name for t in initializers}
    ins = [_vi(n, (in_types or {}).get(n, F)) for n in inputs if n and n not in init_names]
    outs = [_vi(n, (out_types or {}).get(n, F)) for n in outputs]
    return _model([node], ins, outs, initializers, opset)


# --------------------------------------------------------------------------- normalization


def test_layer_norm_negative_axis_with_stats_matches_ort():
    x, w, b = _rand(2, 3, 4, 5), _rand(4, 5), _rand(4, 5)
    m = _single("LayerNormalization", ["x", "w", "b"], ["y", "mean", "inv"], {"axis": -2}, opset=17)
    got, want = _run(m, {"x": x, "w": w, "b": b}), _ort(m, {"x": x, "w": w, "b": b})
    assert got[1].shape == (2, 3, 1, 1) and got[2].shape == (2, 3, 1, 1)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_layer_norm_float16_keeps_dtype_and_float32_stats():
    x, w = _rand(3, 8, dtype=np.float16), _rand(8, dtype=np.float16)
    m = _single(
        "LayerNormalization",
        ["x", "w"],
        ["y", "mean"],
        opset=17,
        in_types={"x": F16, "w": F16},
        out_types={"y": F16, "mean": F},
    )
    y, mean = _run(m, {"x": x, "w": w})
    assert y.dtype == np.float16 and mean.dtype == np.float32
    xf = x.astype(np.float32)
    expect = (
        (xf - xf.mean(-1, keepdims=True))
        / np.sqrt(xf.var(-1, keepdims=True) + 1e-5)
        * w.astype(np.float32)
    )
    np.testing.assert_allclose(y.astype(np.float32), expect, rtol=2e-3, atol=2e-3)


def test_layer_norm_rejects_unsupported_stash_type():
    m = _single("LayerNormalization", ["x", "w"], ["y"], {"stash_type": 11}, opset=17)
    with pytest.raises(ValueError, match="stash_type"):
        _run(m, {"x": _rand(2, 4), "w": _rand(4)})


def test_batch_norm_constant_params_fold_matches_ort():
    c = 3
    inits = [
        onnx.numpy_helper.from_array(RNG.random(c).astype(np.float32) + 0.5, "s"),
        onnx.numpy_helper.from_array(_rand(c), "b"),
        onnx.numpy_helper.from_array(_rand(c), "mu"),
        onnx.numpy_helper.from_array(RNG.random(c).astype(np.float32) + 0.1, "var"),
    ]
    m = _single(
        "BatchNormalization",
        ["x", "s", "b", "mu", "var"],
        ["y"],
        {"epsilon": 1e-3},
        opset=15,
        initializers=inits,
    )
    x = _rand(2, c, 4, 4)
    got, want = _run(m, {"x": x})[0], _ort(m, {"x": x})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_norm_runtime_params_on_2d_input_matches_ort():
    c = 4
    feeds = {
        "x": _rand(5, c),
        "s": _rand(c),
        "b": _rand(c),
        "mu": _rand(c),
        "var": RNG.random(c).astype(np.float32),
    }
    m = _single("BatchNormalization", ["x", "s", "b", "mu", "var"], ["y"], opset=9)
    np.testing.assert_allclose(_run(m, feeds)[0], _ort(m, feeds)[0], rtol=1e-5, atol=1e-5)


def test_batch_norm_training_mode_updates_running_stats():
    c = 3
    feeds = {
        "x": _rand(4, c, 5),
        "s": _rand(c),
        "b": _rand(c),
        "mu": _rand(c),
        "var": RNG.random(c).astype(np.float32),
    }
    m = _single(
        "BatchNormalization",
        ["x", "s", "b", "mu", "var"],
        ["y", "rm", "rv"],
        {"training_mode": 1, "momentum": 0.8},
        opset=15,
    )
    y, rm, rv = _run(m, feeds)
    x = feeds["x"]
    bm, bv = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    np.testing.assert_allclose(rm, feeds["mu"] * 0.8 + bm * 0.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, feeds["var"] * 0.8 + bv * 0.2, rtol=1e-5, atol=1e-6)
    expect = (x - bm[:, None]) / np.sqrt(bv[:, None] + 1e-5) * feeds["s"][:, None] + feeds["b"][
        :, None
    ]
    np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-5)


def test_batch_norm_old_opset_training_outputs_are_rejected():
    m = _single(
        "BatchNormalization", ["x", "s", "b", "mu", "var"], ["y", "m1", "v1", "sm", "sv"], opset=9
    )
    feeds = {k: _rand(3) for k in ("s", "b", "mu", "var")} | {"x": _rand(2, 3)}
    with pytest.raises(ValueError, match="training-mode"):
        _run(m, feeds)


def test_instance_norm_matches_ort():
    feeds = {"x": _rand(2, 3, 4, 5), "s": _rand(3), "b": _rand(3)}
    m = _single("InstanceNormalization", ["x", "s", "b"], ["y"], {"epsilon": 1e-4}, opset=22)
    np.testing.assert_allclose(_run(m, feeds)[0], _ort(m, feeds)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_norm_scale_is_per_group_at_18_and_per_channel_at_21(opset):
    n, c, g = 2, 6, 3
    x = _rand(n, c, 4)
    s, b = (_rand(g), _rand(g)) if opset == 18 else (_rand(c), _rand(c))
    m = _single("GroupNormalization", ["x", "s", "b"], ["y"], {"num_groups": g}, opset=opset)
    y = _run(m, {"x": x, "s": s, "b": b})[0]
    xg = x.reshape(n, g, -1)
    norm = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(
        x.shape
    )
    sc, bc = (np.repeat(s, c // g), np.repeat(b, c // g)) if opset == 18 else (s, b)
    np.testing.assert_allclose(y, norm * sc[:, None] + bc[:, None], rtol=1e-4, atol=1e-5)


def test_rms_norm_output_takes_scale_dtype():
    x, w = _rand(2, 3, 8), _rand(8, dtype=np.float16)
    m = _single(
        "RMSNormalization",
        ["x", "w"],
        ["y"],
        {"axis": -1},
        opset=23,
        in_types={"w": F16},
        out_types={"y": F16},
    )
    y = _run(m, {"x": x, "w": w})[0]
    assert y.dtype == np.float16
    expect = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w.astype(np.float32)
    np.testing.assert_allclose(y.astype(np.float32), expect, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("size", [2, 3, 4])
def test_lrn_even_and_odd_windows_match_numpy(size):
    # onnxruntime rejects even sizes; the spec's window is [c - (size-1)//2, c + ceil((size-1)/2)].
    x = _rand(2, 6, 3, 3)
    m = _single(
        "LRN", ["x"], ["y"], {"size": size, "alpha": 0.01, "beta": 0.6, "bias": 2.0}, opset=13
    )
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.stack([(x[:, max(0, c - lo) : c + hi + 1] ** 2).sum(1) for c in range(6)], axis=1)
    expect = x / (2.0 + 0.01 / size * sq) ** 0.6
    np.testing.assert_allclose(_run(m, {"x": x})[0], expect, rtol=1e-5, atol=1e-6)


def test_lrn_odd_window_matches_ort():
    x = _rand(2, 6, 3, 3)
    m = _single("LRN", ["x"], ["y"], {"size": 5}, opset=13)
    np.testing.assert_allclose(_run(m, {"x": x})[0], _ort(m, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_lp_norm_p1_zero_vector_gives_zeros():
    x = np.array([[0.0, 0.0, 0.0], [1.0, -3.0, 4.0]], dtype=np.float32)
    m = _single("LpNormalization", ["x"], ["y"], {"p": 1, "axis": -1}, opset=22)
    y = _run(m, {"x": x})[0]
    np.testing.assert_array_equal(y[0], 0)
    np.testing.assert_allclose(y[1], x[1] / 8.0)


def test_lp_norm_rejects_p3():
    m = _single("LpNormalization", ["x"], ["y"], {"p": 3}, opset=22)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        _run(m, {"x": _rand(2, 2)})


def test_mvn_custom_axes_match_ort():
    x = _rand(2, 3, 4, 5)
    m = _single("MeanVarianceNormalization", ["x"], ["y"], {"axes": [1, -1]}, opset=13)
    np.testing.assert_allclose(_run(m, {"x": x})[0], _ort(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- loss


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_nll_loss_weight_and_ignore_index_match_ort(reduction):
    x = _rand(3, 5, 4)
    t = RNG.integers(0, 5, size=(3, 4)).astype(np.int64)
    t[0, 1] = t[2, 3] = -1
    w = RNG.random(5).astype(np.float32)
    m = _single(
        "NegativeLogLikelihoodLoss",
        ["x", "t", "w"],
        ["loss"],
        {"reduction": reduction, "ignore_index": -1},
        opset=13,
        in_types={"t": TensorProto.INT64},
    )
    feeds = {"x": x, "t": t, "w": w}
    np.testing.assert_allclose(_run(m, feeds)[0], _ort(m, feeds)[0], rtol=1e-5, atol=1e-6)


def test_sce_int32_labels_with_log_prob_match_ort():
    x = _rand(4, 6, 2)
    t = RNG.integers(0, 6, size=(4, 2)).astype(np.int32)
    m = _single(
        "SoftmaxCrossEntropyLoss",
        ["x", "t"],
        ["loss", "logp"],
        {"reduction": "mean"},
        opset=13,
        in_types={"t": TensorProto.INT32},
    )
    got, want = _run(m, {"x": x, "t": t}), _ort(m, {"x": x, "t": t})
    assert got[0].shape == () and got[0].dtype == np.float32
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_nll_loss_out_of_range_target_raises():
    m = _single(
        "NegativeLogLikelihoodLoss",
        ["x", "t"],
        ["loss"],
        opset=13,
        in_types={"t": TensorProto.INT64},
    )
    with pytest.raises(Exception, match="outside"):
        _run(m, {"x": _rand(2, 3), "t": np.array([0, 7], dtype=np.int64)})


# --------------------------------------------------------------------------- attention


def _attention_model(inputs, outputs, attrs, opset=23, in_types=None):
    return _single("Attention", inputs, outputs, attrs, opset=opset, in_types=in_types)


def test_attention_3d_gqa_with_past_matches_reference():
    b, sq, hq, hkv, d, past = 2, 3, 4, 2, 8, 5
    feeds = {
        "q": _rand(b, sq, hq * d),
        "k": _rand(b, sq, hkv * d),
        "v": _rand(b, sq, hkv * d),
        "pk": _rand(b, hkv, past, d),
        "pv": _rand(b, hkv, past, d),
    }
    m = _attention_model(
        ["q", "k", "v", "", "pk", "pv"],
        ["y", "present_k", "present_v", "qk"],
        {"q_num_heads": hq, "kv_num_heads": hkv, "is_causal": 1, "qk_matmul_output_mode": 3},
    )
    got, want = _run(m, feeds), _ref(m, feeds)
    assert got[1].shape == (b, hkv, past + sq, d)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_attention_short_bool_mask_is_padded_and_softcap_applies():
    feeds = {
        "q": _rand(1, 2, 3, 4),
        "k": _rand(1, 2, 6, 4),
        "v": _rand(1, 2, 6, 4),
        "mask": RNG.random((3, 4)) > 0.3,
    }
    feeds["mask"][:, 0] = True
    m = _attention_model(
        ["q", "k", "v", "mask"],
        ["y"],
        {"softcap": 2.0, "scale": 0.7},
        in_types={"mask": TensorProto.BOOL},
    )
    np.testing.assert_allclose(_run(m, feeds)[0], _ref(m, feeds)[0], rtol=1e-5, atol=1e-6)


def test_attention_fully_masked_row_is_zero_not_nan():
    feeds = {
        "q": _rand(1, 1, 2, 4),
        "k": _rand(1, 1, 3, 4),
        "v": _rand(1, 1, 3, 4),
        "mask": np.array([[False, False, False], [True, True, False]]),
    }
    m = _attention_model(["q", "k", "v", "mask"], ["y"], {}, in_types={"mask": TensorProto.BOOL})
    y = _run(m, feeds)[0]
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0, 0, 0], 0)


def test_attention_3d_without_head_counts_is_rejected():
    m = _model(
        [helper.make_node("Attention", ["q", "k", "v"], ["y"])],
        [_vi("q", F, [1, 2, 8]), _vi("k", F, [1, 2, 8]), _vi("v", F, [1, 2, 8])],
        [_vi("y", F, [1, 2, 8])],
        opset=23,
    )
    with pytest.raises(ValueError, match="q_num_heads"):
        _run(m, {"q": _rand(1, 2, 8), "k": _rand(1, 2, 8), "v": _rand(1, 2, 8)})


def test_attention_past_key_without_past_value_is_rejected():
    m = _attention_model(["q", "k", "v", "", "pk"], ["y"], {})
    with pytest.raises(ValueError, match="past_key and past_value"):
        _run(
            m,
            {
                "q": _rand(1, 1, 2, 4),
                "k": _rand(1, 1, 2, 4),
                "v": _rand(1, 1, 2, 4),
                "pk": _rand(1, 1, 1, 4),
            },
        )


def test_attention_sliding_window_with_nonpad_matches_reference():
    feeds = {
        "q": _rand(2, 2, 3, 4),
        "k": _rand(2, 2, 7, 4),
        "v": _rand(2, 2, 7, 4),
        "n": np.array([5, 7], dtype=np.int64),
    }
    m = _attention_model(
        ["q", "k", "v", "", "", "", "n"],
        ["y"],
        {"is_causal": 1, "left_window_size": 2},
        opset=25,
        in_types={"n": TensorProto.INT64},
    )
    np.testing.assert_allclose(_run(m, feeds)[0], _ref(m, feeds)[0], rtol=1e-5, atol=1e-6)


def test_attention_bfloat16_keeps_dtype():
    bf = ml_dtypes.bfloat16
    feeds = {n: _rand(1, 2, 3, 4).astype(bf) for n in ("q", "k", "v")}
    m = _attention_model(
        ["q", "k", "v"], ["y"], {"is_causal": 1}, in_types={n: TensorProto.BFLOAT16 for n in "qkv"}
    )
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    y = _run(m, feeds)[0]
    assert y.dtype == bf
    np.testing.assert_allclose(
        y.astype(np.float32), _ref(m, feeds)[0].astype(np.float32), rtol=1e-2, atol=1e-2
    )


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_3d_partial_rotation_with_position_ids_matches_reference(interleaved):
    b, s, h, d, rd = 2, 3, 2, 8, 4
    feeds = {
        "x": _rand(b, s, h * d),
        "cos": _rand(10, rd // 2),
        "sin": _rand(10, rd // 2),
        "pos": RNG.integers(0, 10, size=(b, s)).astype(np.int64),
    }
    m = _single(
        "RotaryEmbedding",
        ["x", "cos", "sin", "pos"],
        ["y"],
        {"num_heads": h, "rotary_embedding_dim": rd, "interleaved": interleaved},
        opset=23,
        in_types={"pos": TensorProto.INT64},
    )
    y = _run(m, feeds)[0]
    np.testing.assert_allclose(y, _ref(m, feeds)[0], rtol=1e-5, atol=1e-6)
    # The unrotated tail of each head passes through untouched.
    np.testing.assert_array_equal(
        y.reshape(b, s, h, d)[..., rd:], feeds["x"].reshape(b, s, h, d)[..., rd:]
    )


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
def test_linear_attention_rules_with_past_state_match_reference(rule):
    b, t, hq, hkv, dk, dv = 2, 5, 4, 2, 3, 4
    feeds = {
        "q": _rand(b, t, hq * dk),
        "k": _rand(b, t, hkv * dk) * 0.3,
        "v": _rand(b, t, hkv * dv),
        "s": _rand(b, hkv, dk, dv),
    }
    inputs = ["q", "k", "v", "s", "", ""]
    if rule in ("gated", "gated_delta"):
        feeds["g"] = -RNG.random((b, t, hkv * dk)).astype(np.float32)
        inputs[4] = "g"
    if rule in ("delta", "gated_delta"):
        feeds["beta"] = RNG.random((b, t, hkv)).astype(np.float32)
        inputs[5] = "beta"
    m = _single(
        "LinearAttention",
        inputs,
        ["y", "state"],
        {"q_num_heads": hq, "kv_num_heads": hkv, "update_rule": rule},
        opset=27,
    )
    for g, e in zip(_run(m, feeds), _ref(m, feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_linear_attention_missing_decay_for_gated_rule_is_rejected():
    m = _single(
        "LinearAttention",
        ["q", "k", "v"],
        ["y", "state"],
        {"q_num_heads": 1, "kv_num_heads": 1, "update_rule": "gated"},
        opset=27,
    )
    with pytest.raises(ValueError, match="decay"):
        _run(m, {n: _rand(1, 2, 4) for n in "qkv"})


# --------------------------------------------------------------------------- empty tensors


@pytest.mark.parametrize(
    ("op", "attrs", "opset", "params"),
    [
        ("InstanceNormalization", {}, 22, 2),
        ("GroupNormalization", {"num_groups": 2}, 21, 2),
        ("BatchNormalization", {}, 15, 4),
        ("LayerNormalization", {"axis": 1}, 17, 1),
    ],
)
def test_normalizations_accept_an_empty_batch(op, attrs, opset, params):
    x = np.zeros((0, 4, 3), dtype=np.float32)
    names = ["p0", "p1", "p2", "p3"][:params]
    feeds = {"x": x} | {
        n: np.ones((4, 3) if op == "LayerNormalization" else 4, np.float32) for n in names
    }
    m = _single(op, ["x", *names], ["y"], attrs, opset=opset)
    y = _run(m, feeds)[0]
    assert y.shape == (0, 4, 3) and y.dtype == np.float32


def test_attention_with_no_keys_returns_zeros():
    feeds = {
        "q": _rand(1, 2, 3, 4),
        "k": np.zeros((1, 2, 0, 4), np.float32),
        "v": np.zeros((1, 2, 0, 5), np.float32),
    }
    y = _run(_attention_model(["q", "k", "v"], ["y"], {}), feeds)[0]
    assert y.shape == (1, 2, 3, 5)
    np.testing.assert_array_equal(y, 0)


def test_linear_attention_linear_rule_across_chunks_matches_reference():
    b, t, h, d = 1, 300, 2, 4  # longer than one parallel chunk
    feeds = {
        "q": _rand(b, t, h * d) * 0.1,
        "k": _rand(b, t, h * d) * 0.1,
        "v": _rand(b, t, h * d),
        "s": _rand(b, h, d, d),
    }
    m = _single(
        "LinearAttention",
        ["q", "k", "v", "s"],
        ["y", "state"],
        {"q_num_heads": h, "kv_num_heads": h, "update_rule": "linear"},
        opset=27,
    )
    for g, e in zip(_run(m, feeds), _ref(m, feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_flex_attention_score_mod_can_read_an_outer_scope_value():
    b, h, s, d = 1, 2, 3, 4
    score_mod = helper.make_graph(
        [helper.make_node("Add", ["scores", "outer_bias"], ["scores_out"])],
        "score_mod",
        [_vi("scores", F, [b, h, s, s])],
        [_vi("scores_out", F, [b, h, s, s])],
    )
    node = helper.make_node(
        "FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", score_mod=score_mod
    )
    graph = helper.make_graph(
        [node],
        "g",
        [_vi(n, F, [b, h, s, d]) for n in "qkv"] + [_vi("outer_bias", F, [s, s])],
        [_vi("y", F, [b, h, s, d])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 26), helper.make_opsetid("ai.onnx.preview", 1)],
    )
    model.ir_version = 10
    feeds = {n: _rand(b, h, s, d) for n in "qkv"} | {
        "outer_bias": np.triu(np.full((s, s), -np.inf, np.float32), 1)
    }
    y = _run(model, feeds)[0]
    scores = feeds["q"] @ feeds["k"].swapaxes(-1, -2) / np.sqrt(d) + feeds["outer_bias"]
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(y, p @ feeds["v"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- softmax


def _softmax64(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_session(op="Softmax", opset=21, **attrs):
    model = _single(op, ["x"], ["y"], attrs, opset=opset)
    return tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "spread",
    [0.0, 3.0, 40.0, 200.0],  # rows share a shift / need a second pass / their sums underflow
)
def test_softmax_rows_far_below_their_group_maximum_stay_accurate(spread):
    x = _rand(4, 8, 64) * 4 + RNG.uniform(-spread, spread, (4, 8, 1)).astype(np.float32)
    expected = _softmax64(x)
    (y,) = _softmax_session().run(None, {"x": x})
    significant = expected > 1e-30
    rel = np.abs(y - expected)[significant] / expected[significant]
    assert rel.max() < 2e-6
    np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-6)


def test_softmax_row_far_below_a_shared_scalar_shift_is_redone():
    x = _rand(16, 32)
    x[5] -= 30  # one row of the group far below the shift every other row shares
    (y,) = _softmax_session().run(None, {"x": x})
    np.testing.assert_allclose(y, _softmax64(x), rtol=2e-6, atol=1e-30)


def test_softmax_node_keeps_its_answers_after_switching_to_per_row_shifts():
    # Every row far from the others: the node falls back to per-row maxima for later runs.
    sess = _softmax_session()
    far = _rand(64, 16) + np.arange(64, dtype=np.float32)[:, None] * 50
    near = _rand(64, 16)
    for x in (far, near, far, near):
        (y,) = sess.run(None, {"x": x})
        np.testing.assert_allclose(y, _softmax64(x), rtol=2e-6, atol=1e-30)


def test_softmax_nan_and_infinite_inputs_stay_in_their_rows():
    x = np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0], [np.inf, 0.0, 0.0], [-np.inf] * 3])
    (y,) = _softmax_session().run(None, {"x": x.astype(np.float32)})
    assert np.isnan(y[0]).all() and np.isnan(y[2, 0]) and np.isnan(y[3]).all()
    np.testing.assert_allclose(y[1], _softmax64(x[1:2])[0], rtol=1e-6)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_matches_onnxruntime_on_every_axis_and_float64(op):
    x = _rand(3, 5, 7, dtype=np.float64) * 10
    for axis in (0, 1, -1):
        model = _single(op, ["x"], ["y"], {"axis": axis}, in_types={"x": TensorProto.DOUBLE},
                        out_types={"y": TensorProto.DOUBLE})  # fmt: skip
        ours, theirs = _run(model, {"x": x})[0], _ort(model, {"x": x})[0]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_log_softmax_of_a_peaked_row_keeps_its_small_top_value():
    # The first row's top log-probability is -1e-3; shifted by the second row's maximum it
    # would be a difference of two values near -12 and keep only ~3 digits.
    x = np.array([[8.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 20.0]], np.float32)
    (y,) = _softmax_session("LogSoftmax").run(None, {"x": x})
    expected = np.log(_softmax64(x))
    # float32's log of a sum near 1 alone limits the top entry to ~1e-4 relative.
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-7)
