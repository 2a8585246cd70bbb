"""The CPU provider's glue: entry-point registration, options and BLAS threads."""

from __future__ import annotations

import importlib.metadata

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


def test_intra_op_num_threads_limits_blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 1
    tessera.InferenceSession(_model(), opts)
    blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(n == 1 for n in blas)


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
