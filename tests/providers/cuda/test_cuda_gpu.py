"""The CUDA provider on a real GPU: skipped, with the factory's own reason, where there is none."""

from __future__ import annotations

import numpy as np
import pytest
from _cuda_support import cpu_session, model, strict_session, unavailable, vi
from onnx import helper, numpy_helper

_REASON = unavailable()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

import cupy  # noqa: E402
from test_cuda_host_kernels import CASES, _chain_model  # noqa: E402

from tessera_cuda._factory import CUDAProviderFactory  # noqa: E402


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_on_gpu_matches_cpu_provider(name):
    data, feeds = CASES[name]
    got = strict_session(data, "cuda").run(None, feeds)
    want = cpu_session(data).run(None, feeds)
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_fused_chain_compiles_to_cuda_c_and_matches_cpu():
    data = _chain_model()
    sess = strict_session(data, "cuda")
    assert "compiled partitions: 1" in sess.explain()
    feeds = {
        "x": np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32),
        "b": np.ones(3, np.float32),
    }
    np.testing.assert_allclose(
        sess.run(None, feeds)[0], cpu_session(data).run(None, feeds)[0], rtol=1e-5, atol=1e-6
    )


def test_values_inside_the_claim_stay_cupy_arrays():
    provider = CUDAProviderFactory().create({})
    x = provider.to_device(np.ones((4, 4), np.float32))
    assert isinstance(x, cupy.ndarray)
    assert isinstance(provider.to_host(x), np.ndarray)


def test_tf32_switch_is_restored_after_each_product():
    from cupy._core import _routines_linalg as linalg

    before = linalg.get_compute_type(np.float32)
    provider = CUDAProviderFactory().create({"allow_tf32": True})
    a = cupy.ones((64, 64), cupy.float32)
    provider.be.matmul(a, a)
    assert linalg.get_compute_type(np.float32) == before


def test_cnn_runs_with_transfers_only_at_the_boundary():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["m"]),
        helper.make_node("Softmax", ["m"], ["y"], axis=-1),
    ]
    data = model(nodes, [vi("x", [2, 3, 8, 8])], [vi("y", [2, 5])], [w, fc])
    sess = strict_session(data, "cuda")
    assert sess.explain().splitlines()[0].endswith("2 device transfer(s)")
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        sess.run(None, {"x": x})[0], cpu_session(data).run(None, {"x": x})[0], rtol=1e-4, atol=1e-5
    )


def test_a_device_output_feeds_the_next_session_in_place(monkeypatch):
    # Session 1 keeps y on the GPU; session 2 binds it as its input and adopts it (no host copy).
    first = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [64, 3])], [vi("y", [64, 3])])
    second = model([helper.make_node("Tanh", ["y"], ["z"])], [vi("y", [64, 3])], [vi("z", [64, 3])])
    s1, s2 = strict_session(first, "cuda"), strict_session(second, "cuda")
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    b1 = s1.io_binding()
    b1.bind_cpu_input("x", x)
    b1.bind_output("y", "cuda")
    s1.run_with_iobinding(b1)
    (y,) = b1.get_outputs()
    assert isinstance(y.device_value(), cupy.ndarray)
    uploads = []
    real = cupy.asarray
    monkeypatch.setattr(cupy, "asarray", lambda *a, **k: uploads.append(1) or real(*a, **k))
    b2 = s2.io_binding()
    b2.bind_ortvalue_input("y", y)
    b2.bind_output("z", "cuda")
    s2.run_with_iobinding(b2)
    assert not uploads
    np.testing.assert_allclose(b2.get_outputs()[0].numpy(), np.tanh(np.maximum(x, 0)), rtol=1e-6)


def test_ortvalue_from_numpy_on_cuda_is_read_in_place():
    import tessera

    second = model([helper.make_node("Neg", ["y"], ["z"])], [vi("y", [8])], [vi("z", [8])])
    value = tessera.OrtValue.ortvalue_from_numpy(np.arange(8, dtype=np.float32), "cuda")
    assert isinstance(value.device_value(), cupy.ndarray)
    session = strict_session(second, "cuda")
    binding = session.io_binding()
    binding.bind_ortvalue_input("y", value)
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], -np.arange(8))
