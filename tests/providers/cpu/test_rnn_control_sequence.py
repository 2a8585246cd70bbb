"""Recurrent, control-flow and sequence/optional CPU kernels, beyond the node suite."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

tessera = pytest.importorskip("tessera")
ort = pytest.importorskip("onnxruntime")

F = TensorProto.FLOAT


def _session(model: onnx.ModelProto):
    return tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(model: onnx.ModelProto, feeds: dict) -> list:
    return _session(model).run(None, feeds)


def _ort(model: onnx.ModelProto, feeds: dict) -> list:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _model(nodes, inputs, outputs, initializers=(), opset=21) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _vi(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def _seq_vi(name, elem=F):
    return helper.make_tensor_sequence_value_info(name, elem, None)


# --------------------------------------------------------------------------- recurrent layers


def _recurrent_case(
    op,
    *,
    hidden=4,
    inp=3,
    seq=5,
    batch=3,
    nd=1,
    layout=0,
    lens=None,
    peep=False,
    const_weights=True,
    dtype=np.float32,
    opset=21,
    seed=0,
    **attrs,
):
    """An LSTM/GRU/RNN model with every optional input, and its feeds (the same values for the
    same seed, whatever the layout)."""
    rng = np.random.default_rng(seed)
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x_shape = [seq, batch, inp]
    h_shape = [nd, batch, hidden]
    vals = {
        "X": rng.standard_normal(x_shape).astype(dtype),
        "W": (rng.standard_normal((nd, gates * hidden, inp)) * 0.5).astype(dtype),
        "R": (rng.standard_normal((nd, gates * hidden, hidden)) * 0.5).astype(dtype),
        "B": (rng.standard_normal((nd, 2 * gates * hidden)) * 0.1).astype(dtype),
        "initial_h": rng.standard_normal(h_shape).astype(dtype),
    }
    names = ["X", "W", "R", "B", "sequence_lens" if lens is not None else "", "initial_h"]
    if op == "LSTM":
        vals["initial_c"] = rng.standard_normal(h_shape).astype(dtype)
        names.append("initial_c")
        if peep:
            vals["P"] = (rng.standard_normal((nd, 3 * hidden)) * 0.3).astype(dtype)
            names.append("P")
    if layout:
        for k in ("X", "initial_h", "initial_c"):
            if k in vals:
                vals[k] = np.ascontiguousarray(vals[k].transpose(1, 0, 2))
    if lens is not None:
        vals["sequence_lens"] = np.asarray(lens, np.int32)
    direction = (
        {1: "forward", 2: "bidirectional"}[nd]
        if "direction" not in attrs
        else attrs.pop("direction")
    )
    if layout:
        attrs["layout"] = 1
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, hidden_size=hidden, direction=direction, **attrs)
    weights = {"W", "R", "B", "P"} if const_weights else set()
    inits = [
        helper.make_tensor(k, elem, v.shape, v.flatten().tolist())
        for k, v in vals.items()
        if k in weights
    ]
    inputs = [
        _vi(k, TensorProto.INT32 if k == "sequence_lens" else elem, list(v.shape))
        for k, v in vals.items()
        if k not in weights
    ]
    model = _model([node], inputs, [_vi(o, elem) for o in outs], inits, opset=opset)
    feeds = {k: v for k, v in vals.items() if k not in weights}
    return model, feeds


def _check_against_ort(model, feeds, rtol=1e-4, atol=1e-5):
    got = _run(model, feeds)
    want = _ort(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_bidirectional_ragged_sequence_lens_match_onnxruntime(op):
    model, feeds = _recurrent_case(op, nd=2, lens=[5, 2, 3], peep=(op == "LSTM"))
    _check_against_ort(model, feeds)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_reverse_direction_with_ragged_lengths_matches_onnxruntime(op):
    model, feeds = _recurrent_case(op, lens=[1, 5, 4], direction="reverse")
    _check_against_ort(model, feeds)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_layout_1_is_the_batch_major_transpose_of_layout_0(op):
    # onnxruntime rejects layout=1, so compare with our own (ORT-checked) layout 0.
    model0, feeds0 = _recurrent_case(op, nd=2, lens=[5, 2, 4], peep=True)
    model1, feeds1 = _recurrent_case(op, nd=2, lens=[5, 2, 4], peep=True, layout=1)
    got0, got1 = _run(model0, feeds0), _run(model1, feeds1)
    np.testing.assert_allclose(got1[0], got0[0].transpose(2, 0, 1, 3), rtol=1e-6)
    for a, b in zip(got0[1:], got1[1:]):
        np.testing.assert_allclose(b, a.transpose(1, 0, 2), rtol=1e-6)


def test_gru_linear_before_reset_matches_onnxruntime():
    model, feeds = _recurrent_case("GRU", nd=2, linear_before_reset=1, lens=[4, 5, 1])
    _check_against_ort(model, feeds)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_clip_bounds_gate_inputs_like_onnxruntime(op):
    model, feeds = _recurrent_case(op, nd=2, clip=0.3, peep=(op == "LSTM"))
    _check_against_ort(model, feeds)


def test_lstm_input_forget_couples_gates_like_onnxruntime():
    model, feeds = _recurrent_case("LSTM", input_forget=1)
    _check_against_ort(model, feeds)


def test_custom_activations_consume_alpha_beta_in_order():
    acts = ["HardSigmoid", "LeakyRelu", "ScaledTanh", "Affine", "Elu", "Softsign"]
    model, feeds = _recurrent_case(
        "LSTM",
        nd=2,
        activations=acts,
        activation_alpha=[0.3, 0.05, 0.9, 0.7, 0.8],
        activation_beta=[0.4, 1.1, 0.2],
    )
    _check_against_ort(model, feeds)


def test_gru_relu_and_softplus_activations_match_onnxruntime():
    model, feeds = _recurrent_case("GRU", activations=["Softplus", "Relu"])
    _check_against_ort(model, feeds)


def test_weights_fed_at_run_time_give_the_same_result_as_initializers():
    const_model, feeds = _recurrent_case("LSTM", nd=2, peep=True, lens=[3, 5, 2])
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in const_model.graph.initializer}
    dyn_model, _ = _recurrent_case("LSTM", nd=2, peep=True, lens=[3, 5, 2], const_weights=False)
    a = _run(const_model, feeds)
    b = _run(dyn_model, {**feeds, **weights})
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_float64_recurrence_keeps_double_precision():
    # onnxruntime has no double GRU: compare with its float32 result on the same values.
    model, feeds = _recurrent_case("GRU", nd=2, dtype=np.float64)
    got = _run(model, feeds)
    assert all(g.dtype == np.float64 for g in got)
    model32, _ = _recurrent_case("GRU", nd=2, const_weights=False)
    weights = {
        t.name: onnx.numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer
    }
    ref = _ort(model32, {**{k: v.astype(np.float32) for k, v in feeds.items()}, **weights})
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_float16_recurrence_returns_float16_close_to_float32():
    model16, feeds16 = _recurrent_case("LSTM", dtype=np.float16)
    weights = {
        t.name: onnx.numpy_helper.to_array(t).astype(np.float32) for t in model16.graph.initializer
    }
    got = _run(model16, feeds16)
    assert all(g.dtype == np.float16 for g in got)
    model32, _ = _recurrent_case("LSTM", const_weights=False)
    ref = _ort(model32, {**{k: v.astype(np.float32) for k, v in feeds16.items()}, **weights})
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g.astype(np.float32), r, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_zero_length_sequence_gives_zero_outputs_and_states_like_onnxruntime(op):
    model, feeds = _recurrent_case(op, nd=2, lens=[0, 5, 2])
    got = _run(model, feeds)
    assert not got[0][:, :, 0].any() and not got[0][2:, :, 2].any()
    assert not got[1][:, 0].any()
    _check_against_ort(model, feeds)


def test_unknown_activation_is_rejected_at_session_creation():
    model, _ = _recurrent_case("RNN", activations=["Swish"])
    with pytest.raises(Exception, match="Swish"):
        _session(model)


def test_wrong_number_of_activations_is_rejected():
    model, _ = _recurrent_case("GRU", activations=["Sigmoid", "Tanh", "Tanh"])
    with pytest.raises(Exception, match="activations"):
        _session(model)


def test_sequence_lens_longer_than_the_input_is_rejected():
    model, feeds = _recurrent_case("LSTM", lens=[5, 9, 1])
    with pytest.raises(Exception, match="sequence_lens"):
        _run(model, feeds)


# --------------------------------------------------------------------------- sequences


def test_sequence_insert_and_erase_leave_their_input_sequence_unchanged():
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("SequenceInsert", ["s", "c"], ["s2"]),
        helper.make_node("SequenceErase", ["s"], ["s3"]),
        helper.make_node("SequenceLength", ["s"], ["n"]),
        helper.make_node("SequenceLength", ["s2"], ["n2"]),
        helper.make_node("SequenceLength", ["s3"], ["n3"]),
    ]
    model = _model(
        nodes,
        [_vi(k, F, [2]) for k in "abc"],
        [
            _vi("n", TensorProto.INT64, []),
            _vi("n2", TensorProto.INT64, []),
            _vi("n3", TensorProto.INT64, []),
        ],
    )
    feeds = {k: np.full(2, i, np.float32) for i, k in enumerate("abc")}
    n, n2, n3 = _run(model, feeds)
    assert (int(n), int(n2), int(n3)) == (2, 3, 1)
    assert n.dtype == np.int64 and n.shape == ()


def test_negative_positions_index_from_the_end():
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
        helper.make_node("SequenceAt", ["s", "m1"], ["last"]),
        helper.make_node("SequenceInsert", ["s", "a", "m1"], ["s2"]),
        helper.make_node("SequenceErase", ["s", "m3"], ["s3"]),
    ]
    inits = [
        helper.make_tensor("m1", TensorProto.INT64, [], [-1]),
        helper.make_tensor("m3", TensorProto.INT32, [], [-3]),
    ]
    model = _model(
        nodes,
        [_vi(k, F, [1]) for k in "abc"],
        [_vi("last", F), _seq_vi("s2"), _seq_vi("s3")],
        inits,
    )
    feeds = {k: np.array([i], np.float32) for i, k in enumerate("abc")}
    last, s2, s3 = _run(model, feeds)
    assert last.tolist() == [2.0]
    assert [x.item() for x in s2] == [0.0, 1.0, 0.0, 2.0]
    assert [x.item() for x in s3] == [1.0, 2.0]


def test_sequence_at_out_of_range_raises():
    nodes = [
        helper.make_node("SequenceConstruct", ["a"], ["s"]),
        helper.make_node("SequenceAt", ["s", "p"], ["y"]),
    ]
    model = _model(nodes, [_vi("a", F, [1]), _vi("p", TensorProto.INT64, [])], [_vi("y", F)])
    with pytest.raises(Exception, match="out of range"):
        _run(model, {"a": np.ones(1, np.float32), "p": np.array(1, np.int64)})


def test_sequence_empty_has_length_zero_and_accepts_inserts_of_its_dtype():
    nodes = [
        helper.make_node("SequenceEmpty", [], ["s"], dtype=TensorProto.INT32),
        helper.make_node("SequenceLength", ["s"], ["n"]),
        helper.make_node("SequenceInsert", ["s", "x"], ["s2"]),
    ]
    model = _model(
        nodes,
        [_vi("x", TensorProto.INT32, [2])],
        [_vi("n", TensorProto.INT64, []), _seq_vi("s2", TensorProto.INT32)],
    )
    n, s2 = _run(model, {"x": np.array([4, 5], np.int32)})
    assert int(n) == 0
    assert len(s2) == 1 and s2[0].dtype == np.int32 and s2[0].tolist() == [4, 5]


def test_split_to_sequence_scalar_split_leaves_a_short_last_chunk_on_negative_axis():
    node = helper.make_node("SplitToSequence", ["x", "k"], ["s"], axis=-1)
    model = _model(
        [node],
        [_vi("x", F, [2, 7])],
        [_seq_vi("s")],
        [helper.make_tensor("k", TensorProto.INT64, [], [3])],
    )
    x = np.arange(14, dtype=np.float32).reshape(2, 7)
    (s,) = _run(model, {"x": x})
    assert [p.shape for p in s] == [(2, 3), (2, 3), (2, 1)]
    np.testing.assert_array_equal(np.concatenate(s, axis=1), x)


def test_split_to_sequence_without_split_and_keepdims_0_drops_the_axis():
    node = helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0)
    model = _model([node], [_vi("x", TensorProto.INT64, [2, 3])], [_seq_vi("s", TensorProto.INT64)])
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    (s,) = _run(model, {"x": x})
    assert len(s) == 3 and all(p.shape == (2,) and p.dtype == np.int64 for p in s)
    np.testing.assert_array_equal(s[2], x[:, 2])


def test_split_to_sequence_rejects_split_not_summing_to_axis_length():
    node = helper.make_node("SplitToSequence", ["x", "k"], ["s"])
    model = _model(
        [node],
        [_vi("x", F, [4])],
        [_seq_vi("s")],
        [helper.make_tensor("k", TensorProto.INT64, [2], [1, 2])],
    )
    with pytest.raises(Exception, match="sum"):
        _run(model, {"x": np.zeros(4, np.float32)})


@pytest.mark.parametrize("axis,new_axis", [(-1, 1), (0, 1), (-1, 0), (1, 0)])
def test_concat_from_sequence_matches_numpy_stack_and_concatenate(axis, new_axis):
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=axis, new_axis=new_axis),
    ]
    model = _model(nodes, [_vi("a", F, [2, 3]), _vi("b", F, [2, 3])], [_vi("y", F)])
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = -a
    (y,) = _run(model, {"a": a, "b": b})
    want = np.stack([a, b], axis=axis) if new_axis else np.concatenate([a, b], axis=axis)
    np.testing.assert_array_equal(y, want)


def test_sequence_map_broadcasts_a_tensor_and_zips_a_sequence():
    body = helper.make_graph(
        [helper.make_node("Add", ["x", "t"], ["u"]), helper.make_node("Mul", ["u", "w"], ["y"])],
        "body",
        [_vi("x", F, [2]), _vi("t", F, [2]), _vi("w", F, [2])],
        [_vi("y", F, [2])],
    )
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("SequenceConstruct", ["b", "a"], ["s2"]),
        helper.make_node("SequenceMap", ["s", "t", "s2"], ["out"], body=body),
    ]
    model = _model(nodes, [_vi("a", F, [2]), _vi("b", F, [2]), _vi("t", F, [2])], [_seq_vi("out")])
    a, b, t = (np.array(v, np.float32) for v in ([1, 2], [3, 4], [10, 20]))
    (out,) = _run(model, {"a": a, "b": b, "t": t})
    np.testing.assert_array_equal(out[0], (a + t) * b)
    np.testing.assert_array_equal(out[1], (b + t) * a)


def test_empty_optional_reports_no_element_and_get_element_raises():
    opt_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(F, [2]))
    nodes = [
        helper.make_node("Optional", [], ["o"], type=helper.make_tensor_type_proto(F, [2])),
        helper.make_node("OptionalHasElement", ["o"], ["has"]),
    ]
    model = _model(nodes, [], [_vi("has", TensorProto.BOOL, [])])
    (has,) = _run(model, {})
    assert has.dtype == np.bool_ and has.shape == () and not has
    nodes.append(helper.make_node("OptionalGetElement", ["o"], ["v"]))
    model = _model(nodes, [], [_vi("v", F, [2])])
    del opt_type
    with pytest.raises(Exception, match="empty"):
        _run(model, {})


def test_optional_wrapping_a_tensor_round_trips():
    nodes = [
        helper.make_node("Optional", ["x"], ["o"]),
        helper.make_node("OptionalHasElement", ["o"], ["has"]),
        helper.make_node("OptionalGetElement", ["o"], ["y"]),
    ]
    model = _model(
        nodes,
        [_vi("x", TensorProto.INT8, [3])],
        [_vi("has", TensorProto.BOOL, []), _vi("y", TensorProto.INT8, [3])],
    )
    x = np.array([1, -2, 3], np.int8)
    has, y = _run(model, {"x": x})
    assert bool(has) and y.dtype == np.int8
    np.testing.assert_array_equal(y, x)


# --------------------------------------------------------------------------- control flow


def _if_model(opset=21):
    then_g = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["r"])], "then", [], [_vi("r", F, [2])]
    )
    else_g = helper.make_graph(
        [helper.make_node("Sub", ["x", "y"], ["r2"])], "else", [], [_vi("r2", F, [2])]
    )
    node = helper.make_node("If", ["c"], ["out"], then_branch=then_g, else_branch=else_g)
    return _model(
        [node],
        [_vi("c", TensorProto.BOOL, []), _vi("x", F, [2]), _vi("y", F, [2])],
        [_vi("out", F, [2])],
        opset=opset,
    )


@pytest.mark.parametrize("cond", [True, False])
def test_if_runs_the_chosen_branch_reading_outer_scope_values(cond):
    x, y = np.array([1, 2], np.float32), np.array([10, 20], np.float32)
    (out,) = _run(_if_model(), {"c": np.array(cond), "x": x, "y": y})
    np.testing.assert_array_equal(out, x + y if cond else x - y)


def test_if_condition_with_several_elements_is_rejected():
    graph = _if_model()
    graph.graph.input[0].CopyFrom(_vi("c", TensorProto.BOOL, [2]))
    with pytest.raises(Exception, match="one element"):
        _run(
            graph,
            {
                "c": np.array([True, False]),
                "x": np.zeros(2, np.float32),
                "y": np.zeros(2, np.float32),
            },
        )


def _loop_model(with_m=True, with_cond=True, opset=21):
    """Loop carrying a running sum of outer value `step`, emitting i*step as a scan output, and
    stopping once the sum reaches `limit` (read from the outer scope)."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["acc_in", "step"], ["acc_out"]),
            helper.make_node("Cast", ["i"], ["fi"], to=F),
            helper.make_node("Mul", ["fi", "step"], ["scan"]),
            helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
            helper.make_node("Less", ["total", "limit"], ["cond_out"]),
        ],
        "body",
        [
            _vi("i", TensorProto.INT64, []),
            _vi("cond_in", TensorProto.BOOL, []),
            _vi("acc_in", F, [2]),
        ],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out", F, [2]), _vi("scan", F, [2])],
    )
    node = helper.make_node(
        "Loop",
        ["M" if with_m else "", "cond" if with_cond else "", "acc0"],
        ["acc", "scans"],
        body=body,
    )
    inputs = [_vi("acc0", F, [2]), _vi("step", F, [2]), _vi("limit", F, [])]
    if with_m:
        inputs.append(_vi("M", TensorProto.INT64, []))
    if with_cond:
        inputs.append(_vi("cond", TensorProto.BOOL, []))
    return _model([node], inputs, [_vi("acc", F, [2]), _vi("scans", F, [None, 2])], opset=opset)


def _loop_feeds(**extra):
    base = {
        "acc0": np.zeros(2, np.float32),
        "step": np.array([1, 2], np.float32),
        "limit": np.array(1e9, np.float32),
    }
    base.update(extra)
    return base


def test_loop_with_trip_count_only_runs_m_times_and_stacks_scan_outputs():
    acc, scans = _run(_loop_model(with_cond=False), _loop_feeds(M=np.array(4, np.int64)))
    np.testing.assert_array_equal(acc, [4, 8])
    np.testing.assert_array_equal(scans, np.arange(4, dtype=np.float32)[:, None] * [1, 2])


def test_loop_without_trip_count_stops_when_the_body_condition_turns_false():
    acc, scans = _run(
        _loop_model(with_m=False), _loop_feeds(cond=np.array(True), limit=np.array(9, np.float32))
    )
    # total after k iterations is 3k: the body reports False once 3k >= 9.
    np.testing.assert_array_equal(acc, [3, 6])
    assert scans.shape == (3, 2)


def test_zero_trip_loop_returns_initial_values_and_empty_scan_output():
    acc0 = np.array([5, 6], np.float32)
    acc, scans = _run(
        _loop_model(), _loop_feeds(acc0=acc0, M=np.array(0, np.int64), cond=np.array(True))
    )
    np.testing.assert_array_equal(acc, acc0)
    assert scans.dtype == np.float32 and scans.shape[0] == 0


def test_loop_with_false_initial_condition_does_not_run():
    acc, scans = _run(_loop_model(), _loop_feeds(M=np.array(3, np.int64), cond=np.array(False)))
    np.testing.assert_array_equal(acc, [0, 0])
    assert scans.shape[0] == 0


def test_loop_carries_a_sequence_without_mutating_the_initial_one():
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c_in"], ["c_out"]),
            helper.make_node("SequenceInsert", ["s_in", "x"], ["s_out"]),
        ],
        "body",
        [_vi("i", TensorProto.INT64, []), _vi("c_in", TensorProto.BOOL, []), _seq_vi("s_in")],
        [_vi("c_out", TensorProto.BOOL, []), _seq_vi("s_out")],
    )
    nodes = [
        helper.make_node("SequenceConstruct", ["x"], ["s0"]),
        helper.make_node("Loop", ["M", "", "s0"], ["s"], body=body),
        helper.make_node("SequenceLength", ["s0"], ["n0"]),
    ]
    model = _model(
        nodes,
        [_vi("x", F, [1]), _vi("M", TensorProto.INT64, [])],
        [_seq_vi("s"), _vi("n0", TensorProto.INT64, [])],
    )
    s, n0 = _run(model, {"x": np.ones(1, np.float32), "M": np.array(3, np.int64)})
    assert len(s) == 4 and int(n0) == 1


def test_scan_reverse_input_and_output_axis_1_matches_numpy():
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "x"], ["s_out"]),
            helper.make_node("Identity", ["s_out"], ["y"]),
        ],
        "body",
        [_vi("s_in", F, [2]), _vi("x", F, [2])],
        [_vi("s_out", F, [2]), _vi("y", F, [2])],
    )
    node = helper.make_node(
        "Scan",
        ["s0", "xs"],
        ["s", "ys"],
        body=body,
        num_scan_inputs=1,
        scan_input_axes=[-1],
        scan_input_directions=[1],
        scan_output_axes=[1],
        scan_output_directions=[0],
    )
    model = _model(
        [node], [_vi("s0", F, [2]), _vi("xs", F, [2, 4])], [_vi("s", F, [2]), _vi("ys", F, [2, 4])]
    )
    xs = np.arange(8, dtype=np.float32).reshape(2, 4)
    s, ys = _run(model, {"s0": np.zeros(2, np.float32), "xs": xs})
    np.testing.assert_array_equal(s, xs.sum(axis=1))
    np.testing.assert_array_equal(ys, np.cumsum(xs[:, ::-1], axis=1))


def test_scan_reverse_output_direction_writes_last_iteration_first():
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "x"], ["s_out"]),
            helper.make_node("Identity", ["s_out"], ["y"]),
        ],
        "body",
        [_vi("s_in", F, []), _vi("x", F, [])],
        [_vi("s_out", F, []), _vi("y", F, [])],
    )
    node = helper.make_node(
        "Scan", ["s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1, scan_output_directions=[1]
    )
    model = _model(
        [node], [_vi("s0", F, []), _vi("xs", F, [3])], [_vi("s", F, []), _vi("ys", F, [3])]
    )
    (_s, ys) = _run(model, {"s0": np.array(0, np.float32), "xs": np.array([1, 2, 3], np.float32)})
    np.testing.assert_array_equal(ys, [6, 3, 1])


def test_scan8_with_sequence_lens_pads_short_sequences_with_zeros():
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "x"], ["s_out"]),
            helper.make_node("Identity", ["s_out"], ["y"]),
        ],
        "body",
        [_vi("s_in", F, [1]), _vi("x", F, [1])],
        [_vi("s_out", F, [1]), _vi("y", F, [1])],
    )
    node = helper.make_node(
        "Scan", ["lens", "s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1, directions=[1]
    )
    model = _model(
        [node],
        [_vi("lens", TensorProto.INT32, [2]), _vi("s0", F, [2, 1]), _vi("xs", F, [2, 3, 1])],
        [_vi("s", F, [2, 1]), _vi("ys", F, [2, 3, 1])],
        opset=8,
    )
    model.ir_version = 3
    xs = np.array([[1, 2, 3], [10, 20, 30]], np.float32)[..., None]
    s, ys = _run(
        model, {"lens": np.array([3, 2], np.int32), "s0": np.zeros((2, 1), np.float32), "xs": xs}
    )
    np.testing.assert_array_equal(s[:, 0], [6, 30])
    np.testing.assert_array_equal(ys[..., 0], [[3, 5, 6], [20, 30, 0]])


def test_if_nested_in_loop_reads_values_from_two_scopes_up():
    then_g = helper.make_graph(
        [helper.make_node("Add", ["a_in", "outer"], ["r"])], "t", [], [_vi("r", F, [1])]
    )
    else_g = helper.make_graph(
        [helper.make_node("Sub", ["a_in", "outer"], ["r2"])], "e", [], [_vi("r2", F, [1])]
    )
    body = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["two"], value=helper.make_tensor("v", TensorProto.INT64, [], [2])
            ),
            helper.make_node("Mod", ["i", "two"], ["m"]),
            helper.make_node("Cast", ["m"], ["even_not"], to=TensorProto.BOOL),
            helper.make_node("Not", ["even_not"], ["even"]),
            helper.make_node("If", ["even"], ["a_out"], then_branch=then_g, else_branch=else_g),
            helper.make_node("Identity", ["c_in"], ["c_out"]),
        ],
        "body",
        [_vi("i", TensorProto.INT64, []), _vi("c_in", TensorProto.BOOL, []), _vi("a_in", F, [1])],
        [_vi("c_out", TensorProto.BOOL, []), _vi("a_out", F, [1])],
    )
    node = helper.make_node("Loop", ["M", "", "a0"], ["a"], body=body)
    model = _model(
        [node],
        [_vi("M", TensorProto.INT64, []), _vi("a0", F, [1]), _vi("outer", F, [1])],
        [_vi("a", F, [1])],
    )
    (a,) = _run(
        model,
        {
            "M": np.array(5, np.int64),
            "a0": np.zeros(1, np.float32),
            "outer": np.array([10], np.float32),
        },
    )
    # +10 -10 +10 -10 +10
    np.testing.assert_array_equal(a, [10])
