"""The CPU provider's glue: entry-point registration, options and BLAS threads."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from conftest import make_model, tensor
from onnx import helper

import tessera


def _model() -> bytes:
    return make_model(
        [helper.make_node("MatMul", ["x", "x"], ["y"])],
        [tensor("x", [4, 4])],
        [tensor("y", [4, 4])],
    )


def test_cpu_provider_is_registered_through_its_entry_point():
    eps = importlib.metadata.entry_points(group="tessera.providers")
    assert any(ep.name == "cpu" and ep.value == "tessera_cpu.plugin" for ep in eps)
    assert "CPUExecutionProvider" in tessera.get_available_providers()


def test_blas_runs_single_threaded_during_a_run_and_is_restored_after(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from tessera_cpu import _parallel

    def blas_threads():
        return [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]

    from tessera_cpu.kernels import _gemm_loops

    before = blas_threads()
    seen = []

    def spy(original):
        def product(a, b, *rest):
            seen.append(blas_threads())
            return original(a, b, *rest)

        return product

    # The Python-threaded products, and those on numba's threads (NumPy's BLAS too).
    monkeypatch.setattr(_parallel, "matmul", spy(_parallel.matmul))
    monkeypatch.setattr(_gemm_loops, "matmul", spy(_gemm_loops.matmul))
    sess = tessera.InferenceSession(_model())
    sess.run(None, {"x": np.eye(4, dtype=np.float32)})
    assert seen and all(n == 1 for threads in seen for n in threads)
    assert blas_threads() == before


def test_intra_op_num_threads_sizes_the_pool_that_splits_large_products():
    from tessera_cpu import _parallel

    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 2
    tessera.InferenceSession(_model(), opts)
    assert _parallel._threads == 2
    a = np.arange(512 * 256, dtype=np.float32).reshape(512, 256) / 1e4
    b = np.ones((256, 64), np.float32)
    np.testing.assert_allclose(_parallel.matmul(a, b), a @ b, rtol=1e-6)


def test_bad_cpu_option_type_is_rejected():
    with pytest.raises(tessera.InvalidArgument, match="option 'intra_op_num_threads' must be int"):
        tessera.InferenceSession(_model(), providers=[("cpu", {"intra_op_num_threads": "many"})])


def test_every_registered_kernel_declares_real_schema_versions():
    import onnx

    from tessera_cpu.kernels import registry

    history: dict[tuple[str, str], set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        history.setdefault((schema.domain, schema.name), set()).add(schema.since_version)
    bogus = []
    for domain, op, versions in registry.ops():
        known = history.get((domain, op))
        if known is not None:
            bogus += [f"{domain or 'ai.onnx'}::{op} v{v}" for v in versions if v not in known]
    assert not bogus, f"kernels registered for versions onnx never defined: {bogus}"


def test_blas_threads_zero_leaves_blas_threading_alone(monkeypatch):
    from tessera_cpu import _parallel

    calls = []
    monkeypatch.setattr(_parallel, "run_started", lambda: calls.append("start"))
    monkeypatch.setattr(_parallel, "run_ended", lambda: calls.append("end"))
    x = {"x": np.eye(4, dtype=np.float32)}
    tessera.InferenceSession(_model(), providers=[("cpu", {"blas_threads": 0})]).run(None, x)
    assert calls == []
    tessera.InferenceSession(_model()).run(None, x)
    assert calls == ["start", "end"]
