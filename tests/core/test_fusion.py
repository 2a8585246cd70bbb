"""Provider fusions after partitioning: validation, planning, explain() and the saved model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import make_model, tensor
from onnx import helper
from support import fake_providers as fp

import tessera
from tessera.provider import (
    ExecutionProvider,
    Fusion,
    KernelRegistry,
    ProviderFactory,
)

DOMAIN = "test.fusing"
registry = KernelRegistry("FusingExecutionProvider")
calls: list[str] = []


def _binary(op, fn):
    @registry.kernel(op, since=(7, 13, 14), types={"T": ["tensor(float)"]})
    def kernel(node):
        def compute(a, b):
            calls.append(op)
            return (fn(a, b),)

        return compute


_binary("Mul", np.multiply)
_binary("Add", np.add)


@registry.kernel("MulAdd", domain=DOMAIN, since=1)
def _mul_add(node):
    def compute(a, b, c):
        calls.append("MulAdd")
        return (a * b + c,)

    return compute


class FusingProvider(ExecutionProvider):
    """Claims Mul and Add; ``proposals(view)`` decides what it asks to fuse."""

    name = "FusingExecutionProvider"
    registry = registry
    proposals = staticmethod(lambda view: [])

    def fuse(self, view):
        return self.proposals(view)


class FusingFactory(ProviderFactory):
    api_version = "1.0"
    name = "fusing"
    aliases = ("FusingExecutionProvider",)
    default_priority = 5

    def create(self, options):
        return FusingProvider(self.validate_options(options))


def _mul_add_model(extra_output: bool = False) -> bytes:
    nodes = [
        helper.make_node("Mul", ["x", "y"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "x"], ["z"], name="add"),
    ]
    outputs = [tensor("z", [2, 3])] + ([tensor("m", [2, 3])] if extra_output else [])
    return make_model(nodes, [tensor("x", [2, 3]), tensor("y", [2, 3])], outputs)


def _mul_add_proposal(view):
    keys = {info.name: k for k, info in view}
    return [Fusion((keys["mul"], keys["add"]), "MulAdd", DOMAIN, ("x", "y", "x"))]


@pytest.fixture
def fusing(plugins, monkeypatch):
    plugins(fp.Plugin(FusingFactory()))
    calls.clear()
    yield
    monkeypatch.setattr(FusingProvider, "proposals", staticmethod(lambda view: []))


def _feeds():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    return {"x": x, "y": np.full((2, 3), 2, np.float32)}, x * 2 + x


def test_a_valid_fusion_replaces_the_chain_with_one_kernel(fusing, monkeypatch, tmp_path):
    monkeypatch.setattr(FusingProvider, "proposals", staticmethod(_mul_add_proposal))
    opts = tessera.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "fused.onnx")
    sess = tessera.InferenceSession(_mul_add_model(), opts, providers=["fusing", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_array_equal(sess.run(None, feeds)[0], expected)
    assert calls == ["MulAdd"]
    # Both original nodes still report where they ran; explain() shows the group.
    assert sess.assignments == {"mul": "FusingExecutionProvider", "add": "FusingExecutionProvider"}
    assert "add (MulAdd): mul + add" in sess.explain()
    saved = onnx.load(str(tmp_path / "fused.onnx"))
    assert [(n.domain, n.op_type) for n in saved.graph.node] == [(DOMAIN, "MulAdd")]
    assert {o.domain: o.version for o in saved.opset_import}[DOMAIN] == 1
    assert [o.name for o in saved.graph.output] == ["z"]


def test_the_saved_fused_model_loads_and_runs_again(fusing, monkeypatch, tmp_path):
    monkeypatch.setattr(FusingProvider, "proposals", staticmethod(_mul_add_proposal))
    opts = tessera.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "fused.onnx")
    tessera.InferenceSession(_mul_add_model(), opts, providers=["fusing", "cpu"])
    again = tessera.InferenceSession(str(tmp_path / "fused.onnx"), providers=["fusing", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_array_equal(again.run(None, feeds)[0], expected)


def test_no_fusion_when_optimizations_are_disabled(fusing, monkeypatch):
    monkeypatch.setattr(FusingProvider, "proposals", staticmethod(_mul_add_proposal))
    opts = tessera.SessionOptions()
    opts.graph_optimization_level = tessera.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = tessera.InferenceSession(_mul_add_model(), opts, providers=["fusing", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_array_equal(sess.run(None, feeds)[0], expected)
    assert calls == ["Mul", "Add"]


@pytest.mark.parametrize(
    ("proposal", "reason"),
    [
        (lambda k: Fusion((k["mul"], k["add"]), "MulAdd", "", ("x", "y", "x")), "own domain"),
        (lambda k: Fusion((k["mul"], 99), "MulAdd", DOMAIN, ("x", "y", "x")), "not this provider"),
        (lambda k: Fusion((k["mul"], k["add"]), "MulAdd", DOMAIN, ("m", "y", "x")), "reads ['m']"),
        (lambda k: "not a fusion", "not a Fusion"),
    ],
)
def test_an_invalid_fusion_is_refused_with_its_reason(fusing, monkeypatch, proposal, reason):
    monkeypatch.setattr(
        FusingProvider,
        "proposals",
        staticmethod(lambda view: [proposal({i.name: k for k, i in view})]),
    )
    sess = tessera.InferenceSession(_mul_add_model(), providers=["fusing", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_array_equal(sess.run(None, feeds)[0], expected)
    assert calls == ["Mul", "Add"]
    assert "fusion refused" in sess.explain() and reason in sess.explain()


def test_a_value_read_outside_the_group_blocks_the_fusion(fusing, monkeypatch):
    monkeypatch.setattr(FusingProvider, "proposals", staticmethod(_mul_add_proposal))
    sess = tessera.InferenceSession(_mul_add_model(extra_output=True), providers=["fusing", "cpu"])
    feeds, expected = _feeds()
    z, m = sess.run(None, feeds)
    np.testing.assert_array_equal(z, expected)
    np.testing.assert_array_equal(m, feeds["x"] * 2)
    assert "'m' made inside the group is a graph output" in sess.explain()


def test_a_raising_fuse_hook_leaves_the_session_correct(fusing, monkeypatch):
    def boom(view):
        raise RuntimeError("fuse exploded")

    monkeypatch.setattr(FusingProvider, "proposals", staticmethod(boom))
    sess = tessera.InferenceSession(_mul_add_model(), providers=["fusing", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_array_equal(sess.run(None, feeds)[0], expected)
    assert "fuse raised RuntimeError: fuse exploded" in sess.explain()
