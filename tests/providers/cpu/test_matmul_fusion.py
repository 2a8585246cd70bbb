"""FusedMatMul: MatMul -> bias Add -> residual Add -> activation chains on the CPU provider.

Every test runs with the products on numba's threads (``_native``; every product counts as
large enough to split) and on the provider's Python threads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from support.native_threads import record_parts

import tessera
from tessera_cpu import _native, _tiles
from tessera_cpu.kernels import _gemm_loops

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True, params=["native", "native-blas", "python-threads"])
def form(request, monkeypatch):
    """Products on numba's threads with the tile kernel (``_tiles``, AVX-512 hosts) or NumPy's
    BLAS, or on the provider's Python threads."""
    if request.param.startswith("native"):
        if not _native.enabled():
            pytest.skip("numba's OpenMP/TBB layer or NumPy's CBLAS gemm is not usable here")
        monkeypatch.delenv(_native.ENV, raising=False)
        monkeypatch.setattr(_gemm_loops, "_NATIVE_SPLIT_MACS", 0)
        if request.param == "native":
            if not _tiles.available(np.float32):
                pytest.skip("the tile kernel needs AVX-512")
            monkeypatch.delenv(_tiles.ENV, raising=False)
        else:
            monkeypatch.setenv(_tiles.ENV, "0")
    else:
        monkeypatch.setenv(_native.ENV, "0")
    return request.param


def _model(tail, a_shape=(2, 64, 96), n=80, dtype=np.float32, opset=20, seed=0):
    """x @ W followed by ``tail``: "bias" adds a constant (N,), "residual" adds input r, others
    are unary activations (("Gelu", {"approximate": "tanh"}) for attributes)."""
    rng = np.random.default_rng(seed)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    k = a_shape[-1]
    out_shape = [*a_shape[:-1], n]
    inits = [numpy_helper.from_array((rng.standard_normal((k, n)) * 0.1).astype(dtype), "w")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm")]
    inputs = [helper.make_tensor_value_info("x", elem, list(a_shape))]
    feeds = {"x": rng.standard_normal(a_shape).astype(dtype)}
    prev = "m"
    for i, step in enumerate(tail):
        op, attrs = step if isinstance(step, tuple) else (step, {})
        out = f"t{i}"
        if op == "bias":
            inits.append(numpy_helper.from_array(rng.standard_normal(n).astype(dtype), "b"))
            nodes.append(helper.make_node("Add", [prev, "b"], [out], name=f"bias{i}"))
        elif op == "residual":
            inputs.append(helper.make_tensor_value_info("r", elem, out_shape))
            feeds["r"] = rng.standard_normal(out_shape).astype(dtype)
            nodes.append(helper.make_node("Add", ["r", prev], [out], name=f"res{i}"))
        elif op == "Clip":
            inits += [
                numpy_helper.from_array(np.array(-0.5, dtype), "lo"),
                numpy_helper.from_array(np.array(0.5, dtype), "hi"),
            ]
            nodes.append(helper.make_node("Clip", [prev, "lo", "hi"], [out], name=f"clip{i}"))
        else:
            nodes.append(helper.make_node(op, [prev], [out], name=f"act{i}", **attrs))
        prev = out
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(prev, elem, None)], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model, feeds


def _sessions(model):
    fused = tessera.InferenceSession(model.SerializeToString(), providers=["cpu"])
    opts = tessera.SessionOptions()
    opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    plain = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    return fused, plain


@pytest.mark.parametrize(
    "tail",
    [
        ("bias",),
        ("bias", "Relu"),
        ("bias", ("Gelu", {"approximate": "tanh"})),
        ("bias", "Gelu"),
        ("bias", "residual"),
        ("residual", "Tanh"),
        ("bias", "residual", "Sigmoid"),
        ("bias", ("LeakyRelu", {"alpha": 0.3})),
        ("bias", "Clip"),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_chains_are_identical_to_unfused_and_match_onnxruntime(tail, threads):
    model, feeds = _model(tail)
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = threads
    fused = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    _, plain = _sessions(model)
    assert [len(p) for p in fused._plan.fused.values()] == [len(tail) + 1]
    assert "FusedMatMul" in fused.explain()
    got = fused.run(None, feeds)[0]
    np.testing.assert_array_equal(got, plain.run(None, feeds)[0])
    ort_opts = ort.SessionOptions()
    ort_opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(model.SerializeToString(), ort_opts).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _check_two_threads_match_unfused(model, feeds):
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 2
    fused = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    _, plain = _sessions(model)
    assert fused._plan.fused
    np.testing.assert_array_equal(fused.run(None, feeds)[0], plain.run(None, feeds)[0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_on_column_bands_of_a_split_product_matches_the_unfused_chain(approximate):
    # BERT's feed-forward shape: two threads split W's 3072 columns, and the epilogue applies
    # Gelu in place on each (128, 1536) band, whose rows are not contiguous with each other.
    model, feeds = _model(("bias", ("Gelu", {"approximate": approximate})), (1, 128, 768), 3072)
    _check_two_threads_match_unfused(model, feeds)


def test_a_full_shape_addend_fuses_as_a_residual_not_a_bias():
    model, feeds = _model(("residual",))
    fused, plain = _sessions(model)
    (node,) = [i for i in fused._plan.step_info if i.op_type == "FusedMatMul"]
    assert node.nodes == ("res0",)
    (parts,) = fused._plan.fused.values()
    assert parts == ("mm", "res0")
    np.testing.assert_array_equal(fused.run(None, feeds)[0], plain.run(None, feeds)[0])


def test_float16_and_activation_free_single_matmuls_do_not_fuse():
    model, _ = _model(("bias",), dtype=np.float16)
    fused, _ = _sessions(model)
    assert not fused._plan.fused
    lone, _ = _sessions(_model(())[0])
    assert not lone._plan.fused


def test_an_intermediate_read_elsewhere_stops_the_chain():
    model, feeds = _model(("bias", "Relu"))
    model.graph.output.append(helper.make_tensor_value_info("t0", onnx.TensorProto.FLOAT, None))
    fused, plain = _sessions(model)
    (parts,) = fused._plan.fused.values()
    assert parts == ("mm", "bias0")  # the Relu reads t0, which is also a graph output
    for g, p in zip(fused.run(None, feeds), plain.run(None, feeds)):
        np.testing.assert_array_equal(g, p)


def test_the_saved_model_has_fused_matmul_and_runs_again(tmp_path):
    model, feeds = _model(("bias", ("Gelu", {"approximate": "tanh"})))
    path = tmp_path / "opt.onnx"
    opts = tessera.SessionOptions()
    opts.optimized_model_filepath = str(path)
    first = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    saved = onnx.load(str(path))
    onnx.checker.check_model(saved)
    (node,) = saved.graph.node
    assert (node.domain, node.op_type) == ("ai.tessera.cpu", "FusedMatMul")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["activation"] == b"Gelu" and attrs["activation_approximate"] == b"tanh"
    again = tessera.InferenceSession(str(path), providers=["cpu"])
    np.testing.assert_array_equal(again.run(None, feeds)[0], first.run(None, feeds)[0])


@pytest.mark.parametrize("a_shape", [(2, 64, 96), (1, 1, 96), (4, 3, 96)])
def test_blocks_split_by_rows_or_columns_apply_the_epilogue_to_their_own_part(a_shape, monkeypatch):
    from tessera_cpu import _parallel

    monkeypatch.setattr(_parallel, "_MIN_FLOPS", 0)  # split even these small products
    model, feeds = _model(("bias", "residual", ("Gelu", {"approximate": "tanh"})), a_shape)
    _check_two_threads_match_unfused(model, feeds)


@pytest.mark.parametrize("form", ["native-blas"], indirect=True)  # it compares with the other
@pytest.mark.parametrize("a_shape", [(1, 128, 768), (3, 5, 96)])
def test_native_bands_give_the_python_threaded_bits(a_shape, form, monkeypatch):
    """Split into column bands on numba's threads, bias and residual added per band, then the
    activation: the same bits as the Python-threaded blocks, and it really split."""
    n = 3072 if a_shape[-1] == 768 else 80
    model, feeds = _model(("bias", "residual", ("Gelu", {"approximate": "tanh"})), a_shape, n)
    parts = record_parts(monkeypatch)
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 2
    native = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    got = native.run(None, feeds)[0]
    assert parts and max(parts) == 2
    monkeypatch.setenv(_native.ENV, "0")
    python = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    np.testing.assert_array_equal(got, python.run(None, feeds)[0])


@pytest.mark.parametrize("form", ["native"], indirect=True)  # it compares with the other forms
@pytest.mark.parametrize("a_shape", [(1, 128, 768), (3, 5, 96), (1, 13, 40)])
def test_the_tile_kernel_matches_blas_and_really_runs(a_shape, form, monkeypatch):
    """With the weights packed at creation, the tile kernel's products (split by panels of 32
    columns, row panels of 12 packed per run, edges in scratch) match BLAS's to rounding."""
    n = 3072 if a_shape[-1] == 768 else 80
    model, feeds = _model(("bias", "residual", ("Gelu", {"approximate": "tanh"})), a_shape, n)
    calls = []
    for name in ("_tile_band", "_tile_bands"):  # one thread's form, the split form
        real = getattr(_gemm_loops, name)
        monkeypatch.setattr(_gemm_loops, name, lambda *a, f=real: calls.append(1) or f(*a))
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 2
    tiles = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    got = tiles.run(None, feeds)[0]
    assert calls, "the tile kernel did not run"
    monkeypatch.setenv(_tiles.ENV, "0")
    blas = tessera.InferenceSession(model.SerializeToString(), opts, providers=["cpu"])
    np.testing.assert_allclose(got, blas.run(None, feeds)[0], rtol=1e-5, atol=1e-5)
