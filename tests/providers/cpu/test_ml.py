"""ai.onnx.ml kernels of the CPU provider, checked against onnxruntime on models built with onnx.helper."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper
from onnx import numpy_helper as nh

import tessera
from tessera.provider import NodeInfo
from tessera_cpu.kernels import registry

ML = "ai.onnx.ml"
rng = np.random.default_rng(1234)


def _vi(name, elem, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(op, inputs, outputs, ml_opset=3, onnx_opset=19, **attrs):
    node = helper.make_node(
        op, [i.name for i in inputs], [o.name for o in outputs], domain=ML, **attrs
    )
    graph = helper.make_graph([node], "g", inputs, outputs)
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", onnx_opset), helper.make_opsetid(ML, ml_opset)],
        ir_version=10,
    )


def _run(model, feeds):
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _run_ort(model, feeds):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference for ai.onnx.ml")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _assert_same(model, feeds, rtol=1e-5, atol=1e-5):
    expected = _run_ort(model, feeds)
    actual = _run(model, feeds)
    assert len(actual) == len(expected)
    for e, a in zip(expected, actual):
        e = np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
        if e.dtype == object:
            assert a.tolist() == e.tolist()
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return actual


def _direct(op, attrs, inputs, input_types, opset=1):
    """Build the kernel straight from a NodeInfo (map-typed graphs cannot be loaded by onnx-ir)."""
    info = NodeInfo(
        op_type=op,
        domain=ML,
        name="n",
        opset=opset,
        attrs=attrs,
        inputs=[f"i{k}" for k in range(len(inputs))],
        outputs=["o"],
        input_types=input_types,
        output_types=[None],
        input_shapes=[None] * len(inputs),
    )
    return registry.build(info)(*inputs)


# ----------------------------------------------------------------------------- trees

_ALL_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")


def _random_forest(
    n_trees, depth, n_feat, n_targets, modes=_ALL_MODES, targets=None, positive=False
):
    """Legacy nodes_* / weights attributes of random trees (weights keyed 'ids'/'weights')."""
    a = {
        k: []
        for k in (
            "treeids",
            "nodeids",
            "featureids",
            "values",
            "modes",
            "truenodeids",
            "falsenodeids",
            "missing_value_tracks_true",
        )
    }
    w = {"treeids": [], "nodeids": [], "ids": [], "weights": []}
    for tree in range(n_trees):
        counter = [0]

        def build(d, tree=tree, counter=counter):
            nid = counter[0]
            counter[0] += 1
            pos = len(a["treeids"])
            for v in a.values():
                v.append(0)
            a["treeids"][pos], a["nodeids"][pos] = tree, nid
            a["missing_value_tracks_true"][pos] = int(rng.random() < 0.5)
            if d == 0 or (d < depth and rng.random() < 0.3):
                a["modes"][pos], a["values"][pos] = "LEAF", 0.0
                for t in targets if targets is not None else range(n_targets):
                    val = float(rng.random() if positive else rng.normal())
                    for key, item in zip(
                        ("treeids", "nodeids", "ids", "weights"), (tree, nid, t, val)
                    ):
                        w[key].append(item)
            else:
                a["modes"][pos] = str(rng.choice(modes))
                a["featureids"][pos] = int(rng.integers(n_feat))
                a["values"][pos] = float(np.round(rng.normal(), 1))
                a["truenodeids"][pos] = build(d - 1, tree, counter)
                a["falsenodeids"][pos] = build(d - 1, tree, counter)
            return nid

        build(depth)
    return {f"nodes_{k}": v for k, v in a.items()}, w


def _x_with_nans(n=200, f=4):
    x = np.round(rng.normal(size=(n, f)), 1).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_tree_regressor_matches_onnxruntime_for_every_mode_and_aggregate(aggregate, n_targets):
    nodes, w = _random_forest(6, 5, 4, n_targets)
    model = _model(
        "TreeEnsembleRegressor",
        [_vi("X", TP.FLOAT, [None, 4])],
        [_vi("Y", TP.FLOAT, [None, n_targets])],
        target_treeids=w["treeids"],
        target_nodeids=w["nodeids"],
        target_ids=w["ids"],
        target_weights=w["weights"],
        n_targets=n_targets,
        aggregate_function=aggregate,
        base_values=[0.25] * n_targets,
        post_transform="SOFTMAX" if n_targets > 1 else "NONE",
        **nodes,
    )
    _assert_same(model, {"X": _x_with_nans()}, rtol=1e-4, atol=1e-5)


def test_tree_regressor_reads_int64_input_as_float():
    nodes, w = _random_forest(4, 4, 3, 1, modes=("BRANCH_LEQ",))
    attrs = dict(
        target_treeids=w["treeids"],
        target_nodeids=w["nodeids"],
        target_ids=w["ids"],
        target_weights=w["weights"],
        n_targets=1,
        **nodes,
    )
    as_int = _model(
        "TreeEnsembleRegressor",
        [_vi("X", TP.INT64, [None, 3])],
        [_vi("Y", TP.FLOAT, [None, 1])],
        **attrs,
    )
    as_float = _model(
        "TreeEnsembleRegressor",
        [_vi("X", TP.FLOAT, [None, 3])],
        [_vi("Y", TP.FLOAT, [None, 1])],
        **attrs,
    )
    x = rng.integers(-2, 3, size=(50, 3)).astype(np.int64)
    (y,) = _run(as_int, {"X": x})
    (expected,) = _run_ort(
        as_float, {"X": x.astype(np.float32)}
    )  # ORT has no int64 kernel for this op
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC"])
def test_tree_classifier_binary_with_one_class_column_matches_onnxruntime(positive, transform):
    # The GradientBoosting / RandomForest binary layout: every weight on class 0 only.
    nodes, w = _random_forest(5, 4, 4, 2, targets=[0], positive=positive)
    model = _model(
        "TreeEnsembleClassifier",
        [_vi("X", TP.FLOAT, [None, 4])],
        [_vi("Y", TP.INT64, [None]), _vi("Z", TP.FLOAT, [None, 2])],
        class_treeids=w["treeids"],
        class_nodeids=w["nodeids"],
        class_ids=w["ids"],
        class_weights=w["weights"],
        classlabels_int64s=[3, 7],
        post_transform=transform,
        **nodes,
    )
    label, z = _assert_same(model, {"X": _x_with_nans()})
    assert set(np.unique(label)) <= {3, 7}
    assert z.shape == (200, 2)


def test_tree_classifier_multiclass_string_labels_match_onnxruntime():
    nodes, w = _random_forest(5, 4, 4, 3)
    model = _model(
        "TreeEnsembleClassifier",
        [_vi("X", TP.FLOAT, [None, 4])],
        [_vi("Y", TP.STRING, [None]), _vi("Z", TP.FLOAT, [None, 3])],
        class_treeids=w["treeids"],
        class_nodeids=w["nodeids"],
        class_ids=w["ids"],
        class_weights=w["weights"],
        classlabels_strings=["a", "b", "c"],
        post_transform="SOFTMAX",
        base_values=[0.1, 0.2, 0.3],
        **nodes,
    )
    label, z = _assert_same(model, {"X": _x_with_nans()})
    np.testing.assert_allclose(z.sum(axis=1), 1, rtol=1e-5)
    assert set(label.tolist()) <= {"a", "b", "c"}


def _v5_attrs(dtype=np.float32):
    # Tree 0: node0 x0 in {1, 3} (member, NaN goes true) ? node1 : leaf2
    #         node1 x1 <= 0.5 ? leaf0 : leaf1
    # Tree 1: node2 x1 > 2 ? leaf3 : leaf3 (a single-leaf tree written as one node)
    return dict(
        nodes_featureids=[0, 1, 1],
        nodes_splits=nh.from_array(np.array([np.nan, 0.5, 2.0], dtype)),
        nodes_modes=nh.from_array(np.array([6, 0, 3], np.uint8)),
        nodes_truenodeids=[1, 0, 3],
        nodes_trueleafs=[0, 1, 1],
        nodes_falsenodeids=[2, 1, 3],
        nodes_falseleafs=[1, 1, 1],
        nodes_missing_value_tracks_true=[1, 0, 0],
        membership_values=nh.from_array(np.array([1, 3, np.nan], dtype)),
        leaf_targetids=[0, 0, 0, 0],
        leaf_weights=nh.from_array(np.array([10, 20, 30, 0.5], dtype)),
        tree_roots=[0, 2],
        n_targets=1,
    )


@pytest.mark.parametrize("dtype,elem", [(np.float32, TP.FLOAT), (np.float64, TP.DOUBLE)])
def test_tree_ensemble_set_membership_and_missing_tracks_true(dtype, elem):
    model = _model(
        "TreeEnsemble",
        [_vi("X", elem, [None, 2])],
        [_vi("Y", elem, [None, 1])],
        ml_opset=5,
        onnx_opset=21,
        **_v5_attrs(dtype),
    )
    x = np.array([[1, 0], [3, 1], [2, 0], [np.nan, 0], [np.nan, 7]], dtype)
    (y,) = _run(model, {"X": x})
    assert y.dtype == dtype
    np.testing.assert_allclose(y[:, 0], [10.5, 20.5, 30.5, 10.5, 20.5])
    _assert_same(model, {"X": x})


def test_tree_ensemble_float16_keeps_its_dtype():
    model = _model(
        "TreeEnsemble",
        [_vi("X", TP.FLOAT16, [None, 2])],
        [_vi("Y", TP.FLOAT16, [None, 1])],
        ml_opset=5,
        onnx_opset=21,
        **_v5_attrs(np.float16),
    )
    (y,) = _run(model, {"X": np.array([[1, 0], [2, 0]], np.float16)})
    assert y.dtype == np.float16
    np.testing.assert_allclose(y[:, 0], [10.5, 30.5])


def test_tree_ensemble_runs_a_large_forest_vectorized():
    nodes, w = _random_forest(100, 6, 20, 1, modes=("BRANCH_LEQ",))
    model = _model(
        "TreeEnsembleRegressor",
        [_vi("X", TP.FLOAT, [None, 20])],
        [_vi("Y", TP.FLOAT, [None, 1])],
        target_treeids=w["treeids"],
        target_nodeids=w["nodeids"],
        target_ids=w["ids"],
        target_weights=w["weights"],
        n_targets=1,
        **nodes,
    )
    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(2000, 20)).astype(np.float32)
    sess.run(None, {"X": x})
    start = time.perf_counter()
    sess.run(None, {"X": x})
    # A per-row or per-node Python loop takes seconds here; the vectorized descent milliseconds.
    assert time.perf_counter() - start < 1.0


def test_tree_ensemble_rejects_a_child_id_that_does_not_exist():
    model = _model(
        "TreeEnsembleRegressor",
        [_vi("X", TP.FLOAT, [None, 1])],
        [_vi("Y", TP.FLOAT, [None, 1])],
        nodes_treeids=[0, 0],
        nodes_nodeids=[0, 1],
        nodes_featureids=[0, 0],
        nodes_values=[0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF"],
        nodes_truenodeids=[1, 0],
        nodes_falsenodeids=[5, 0],
        target_treeids=[0],
        target_nodeids=[1],
        target_ids=[0],
        target_weights=[1.0],
        n_targets=1,
    )
    with pytest.raises(ValueError, match="does not exist"):
        _run(model, {"X": np.zeros((1, 1), np.float32)})


# ----------------------------------------------------------------------------- linear / svm


@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX"])
def test_linear_classifier_binary_one_column_gives_two_scores(transform):
    model = _model(
        "LinearClassifier",
        [_vi("X", TP.FLOAT, [None, 3])],
        [_vi("Y", TP.STRING, [None]), _vi("Z", TP.FLOAT, [None, None])],
        coefficients=[0.5, -1.0, 2.0],
        intercepts=[0.1],
        classlabels_strings=["no", "yes"],
        post_transform=transform,
    )
    _, z = _assert_same(model, {"X": rng.normal(size=(30, 3)).astype(np.float32)})
    assert z.shape == (30, 2)


def test_linear_classifier_multiclass_and_regressor_match_onnxruntime():
    x = rng.normal(size=(30, 3)).astype(np.float32)
    clf = _model(
        "LinearClassifier",
        [_vi("X", TP.FLOAT, [None, 3])],
        [_vi("Y", TP.INT64, [None]), _vi("Z", TP.FLOAT, [None, 3])],
        coefficients=rng.normal(size=9).tolist(),
        intercepts=[0.1, 0.2, 0.3],
        classlabels_ints=[4, 5, 6],
        post_transform="SOFTMAX_ZERO",
    )
    _assert_same(clf, {"X": x})
    reg = _model(
        "LinearRegressor",
        [_vi("X", TP.FLOAT, [None, 3])],
        [_vi("Y", TP.FLOAT, [None, 2])],
        coefficients=rng.normal(size=6).tolist(),
        intercepts=[1.0, -1.0],
        targets=2,
        post_transform="LOGISTIC",
    )
    _assert_same(reg, {"X": x})


def test_linear_classifier_with_one_column_needs_two_labels():
    model = _model(
        "LinearClassifier",
        [_vi("X", TP.FLOAT, [None, 2])],
        [_vi("Y", TP.INT64, [None]), _vi("Z", TP.FLOAT, [None, None])],
        coefficients=[1.0, 2.0],
        intercepts=[0.5],
        classlabels_ints=[1, 2, 3],
    )
    with pytest.raises(ValueError, match="exactly 2 class labels"):
        _run(model, {"X": np.zeros((1, 2), np.float32)})


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
@pytest.mark.parametrize("proba", [False, True])
def test_svm_classifier_matches_onnxruntime(kernel, proba):
    k, f = 3, 4
    per_class = [2, 1, 3]
    v = sum(per_class)
    extra = (
        {"prob_a": rng.normal(size=3).tolist(), "prob_b": rng.normal(size=3).tolist()}
        if proba
        else {}
    )
    model = _model(
        "SVMClassifier",
        [_vi("X", TP.FLOAT, [None, f])],
        [_vi("Y", TP.INT64, [None]), _vi("Z", TP.FLOAT, [None, None])],
        kernel_type=kernel,
        kernel_params=[0.3, 0.5, 3.0],
        vectors_per_class=per_class,
        support_vectors=rng.normal(size=v * f).tolist(),
        coefficients=rng.normal(size=(k - 1) * v).tolist(),
        rho=rng.normal(size=3).tolist(),
        classlabels_ints=[0, 1, 2],
        **extra,
    )
    _assert_same(model, {"X": rng.normal(size=(40, f)).astype(np.float32)}, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("one_class", [0, 1])
def test_svm_regressor_matches_onnxruntime(one_class):
    model = _model(
        "SVMRegressor",
        [_vi("X", TP.FLOAT, [None, 3])],
        [_vi("Y", TP.FLOAT, [None, 1])],
        kernel_type="RBF",
        kernel_params=[0.2, 0.0, 1.0],
        n_supports=4,
        support_vectors=rng.normal(size=12).tolist(),
        coefficients=rng.normal(size=4).tolist(),
        rho=[0.1],
        one_class=one_class,
    )
    (y,) = _assert_same(
        model, {"X": rng.normal(size=(30, 3)).astype(np.float32)}, rtol=1e-4, atol=1e-4
    )
    if one_class:
        assert set(np.unique(y)) <= {-1.0, 1.0}


# ----------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize(
    "elem,dtype", [(TP.FLOAT, np.float32), (TP.INT64, np.int64), (TP.DOUBLE, np.float64)]
)
def test_scaler_and_normalizer_output_float_for_every_input_type(elem, dtype):
    x = (rng.normal(size=(6, 3)) * 4).astype(dtype)
    scaler = _model(
        "Scaler",
        [_vi("X", elem)],
        [_vi("Y", TP.FLOAT)],
        offset=[1.0, 2.0, 3.0],
        scale=[0.5, 1.0, 2.0],
    )
    (y,) = _assert_same(scaler, {"X": x})
    assert y.dtype == np.float32
    for norm in ("MAX", "L1", "L2"):
        model = _model("Normalizer", [_vi("X", elem)], [_vi("Y", TP.FLOAT)], norm=norm)
        _assert_same(model, {"X": x})
        _assert_same(model, {"X": np.zeros((2, 3), dtype)})  # all-zero rows stay zero


def test_binarizer_keeps_dtype_and_imputer_replaces_nan_per_column():
    x = np.array([[0.1, np.nan, 2.0], [np.nan, 0.7, -1.0]], np.float32)
    (b,) = _run(
        _model("Binarizer", [_vi("X", TP.FLOAT)], [_vi("Y", TP.FLOAT)], threshold=0.5),
        {"X": np.nan_to_num(x)},
    )
    np.testing.assert_array_equal(b, [[0, 0, 1], [0, 1, 0]])
    (bi,) = _run(
        _model("Binarizer", [_vi("X", TP.INT64)], [_vi("Y", TP.INT64)], threshold=0.5),
        {"X": np.array([0, 1, 2], np.int64)},
    )
    assert bi.dtype == np.int64 and bi.tolist() == [0, 1, 1]
    imp = _model(
        "Imputer",
        [_vi("X", TP.FLOAT)],
        [_vi("Y", TP.FLOAT)],
        imputed_value_floats=[7.0, 8.0, 9.0],
        replaced_value_float=float("nan"),
    )
    (y,) = _assert_same(imp, {"X": x})
    np.testing.assert_array_equal(y, np.array([[0.1, 8.0, 2.0], [7.0, 0.7, -1.0]], np.float32))


def test_array_feature_extractor_gathers_last_axis_of_strings_and_1d():
    model = _model(
        "ArrayFeatureExtractor", [_vi("X", TP.STRING), _vi("I", TP.INT64)], [_vi("Y", TP.STRING)]
    )
    x = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
    (y,) = _assert_same(model, {"X": x, "I": np.array([2, 0], np.int64)})
    assert y.tolist() == [["c", "a"], ["f", "d"]]
    model = _model(
        "ArrayFeatureExtractor", [_vi("X", TP.FLOAT), _vi("I", TP.INT64)], [_vi("Y", TP.FLOAT)]
    )
    (y,) = _assert_same(
        model, {"X": np.array([1.0, 2.0, 3.0], np.float32), "I": np.array([1], np.int64)}
    )
    assert y.shape == (1, 1)


def test_array_feature_extractor_rejects_out_of_range_indices():
    model = _model(
        "ArrayFeatureExtractor", [_vi("X", TP.FLOAT), _vi("I", TP.INT64)], [_vi("Y", TP.FLOAT)]
    )
    with pytest.raises(Exception, match="indices"):
        _run(model, {"X": np.zeros((2, 3), np.float32), "I": np.array([3], np.int64)})


def test_feature_vectorizer_pads_and_truncates_each_input():
    model = _model(
        "FeatureVectorizer",
        [_vi("A", TP.FLOAT), _vi("B", TP.FLOAT)],
        [_vi("Y", TP.FLOAT)],
        inputdimensions=[3, 1],
    )
    a = np.array([[1, 2], [3, 4]], np.float32)
    b = np.array([[0.5, 9.0], [1.5, 9.0]], np.float32)
    (y,) = _assert_same(model, {"A": a, "B": b})
    np.testing.assert_array_equal(y, [[1, 2, 0, 0.5], [3, 4, 0, 1.5]])


# ----------------------------------------------------------------------------- encoders


def test_label_encoder_versions_1_2_and_4():
    s = np.array([["a", "b"], ["zz", "c"]], dtype=object)
    v1 = _model(
        "LabelEncoder",
        [_vi("X", TP.STRING)],
        [_vi("Y", TP.INT64)],
        ml_opset=1,
        classes_strings=["a", "b", "c"],
        default_int64=42,
    )
    (y,) = _assert_same(v1, {"X": s})
    assert y.tolist() == [[0, 1], [42, 2]]
    v2 = _model(
        "LabelEncoder",
        [_vi("X", TP.INT64)],
        [_vi("Y", TP.STRING)],
        ml_opset=2,
        keys_int64s=[1, 3],
        values_strings=["x", "y"],
        default_string="?",
    )
    (y,) = _assert_same(v2, {"X": np.array([3, 2, 1], np.int64)})
    assert y.tolist() == ["y", "?", "x"]
    v4 = _model(
        "LabelEncoder",
        [_vi("X", TP.FLOAT)],
        [_vi("Y", TP.INT64)],
        ml_opset=4,
        onnx_opset=21,
        keys_tensor=nh.from_array(np.array([1.5, np.nan], np.float32)),
        values_tensor=nh.from_array(np.array([1, 2], np.int64)),
    )
    (y,) = _assert_same(v4, {"X": np.array([1.5, np.nan, 0.0], np.float32)})
    assert y.tolist() == [1, 2, -1]  # NaN keys match NaN from version 4 on


def test_one_hot_encoder_appends_a_category_axis_and_zeros_0_rejects_unknowns():
    ok = _model("OneHotEncoder", [_vi("X", TP.INT64)], [_vi("Y", TP.FLOAT)], cats_int64s=[1, 3, 5])
    (y,) = _assert_same(ok, {"X": np.array([[1, 5], [2, 3]], np.int64)})
    assert y.shape == (2, 2, 3)
    strict = _model(
        "OneHotEncoder", [_vi("X", TP.STRING)], [_vi("Y", TP.FLOAT)], cats_strings=["a"], zeros=0
    )
    with pytest.raises(Exception, match="categories"):
        _run(strict, {"X": np.array(["a", "b"], dtype=object)})


def test_category_mapper_maps_both_directions():
    attrs = dict(cats_strings=["a", "b", "c"], cats_int64s=[5, 6, 7])
    to_int = _model(
        "CategoryMapper", [_vi("X", TP.STRING)], [_vi("Y", TP.INT64)], default_int64=-9, **attrs
    )
    (y,) = _assert_same(to_int, {"X": np.array(["c", "q"], dtype=object)})
    assert y.tolist() == [7, -9]
    to_str = _model("CategoryMapper", [_vi("X", TP.INT64)], [_vi("Y", TP.STRING)], **attrs)
    (y,) = _assert_same(to_str, {"X": np.array([6, 0], np.int64)})
    assert y.tolist() == ["b", "_Unused"]


def test_zipmap_returns_one_dict_per_row():
    (out,) = _direct(
        "ZipMap",
        {"classlabels_strings": ["no", "yes"]},
        [np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)],
        ["tensor(float)"],
    )
    assert out == [{"no": 0.25, "yes": 0.75}, {"no": 1.0, "yes": 0.0}]
    (out,) = _direct(
        "ZipMap",
        {"classlabels_int64s": [3, 4]},
        [np.array([0.5, 0.5], np.float32)],
        ["tensor(float)"],
    )
    assert out == [{3: 0.5, 4: 0.5}]


def test_zipmap_rejects_a_label_count_mismatch():
    with pytest.raises(ValueError, match="class labels"):
        _direct(
            "ZipMap",
            {"classlabels_int64s": [1, 2, 3]},
            [np.zeros((1, 2), np.float32)],
            ["tensor(float)"],
        )


def test_dict_vectorizer_places_values_by_vocabulary():
    (y,) = _direct(
        "DictVectorizer",
        {"string_vocabulary": ["a", "b", "c"]},
        [{"c": 2.0, "a": 1.5, "zzz": 9.0}],
        [None],
    )
    np.testing.assert_array_equal(y, [[1.5, 0.0, 2.0]])
    (y,) = _direct("DictVectorizer", {"int64_vocabulary": [4, 2]}, [{2: 7}], [None])
    assert y.dtype == np.int64 and y.tolist() == [[0, 7]]


def test_cast_map_dense_and_sparse():
    (y,) = _direct("CastMap", {"cast_to": "TO_FLOAT"}, [{3: 1.5, 0: -2.0}], [None])
    np.testing.assert_array_equal(y, [[-2.0, 1.5]])
    (y,) = _direct(
        "CastMap",
        {"cast_to": "TO_INT64", "map_form": "SPARSE", "max_map": 4},
        [{3: 1.5, 0: -2.0}],
        [None],
    )
    assert y.dtype == np.int64 and y.tolist() == [[-2, 0, 0, 1]]


def test_every_ml_schema_version_is_registered():
    names = {
        "TreeEnsembleClassifier",
        "TreeEnsembleRegressor",
        "TreeEnsemble",
        "LinearClassifier",
        "LinearRegressor",
        "SVMClassifier",
        "SVMRegressor",
        "Scaler",
        "Normalizer",
        "Binarizer",
        "OneHotEncoder",
        "LabelEncoder",
        "CategoryMapper",
        "ArrayFeatureExtractor",
        "FeatureVectorizer",
        "DictVectorizer",
        "Imputer",
        "ZipMap",
        "CastMap",
    }
    for name in names:
        schema_versions = sorted(
            {
                s.since_version
                for s in onnx.defs.get_all_schemas_with_history()
                if s.name == name and s.domain == ML
            }
        )
        assert registry.versions(ML, name) == schema_versions, name
