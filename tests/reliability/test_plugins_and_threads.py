"""Misbehaving providers and concurrent runs: a plugin's failure is isolated or reported with a
clear error naming the node and provider, and a provider that cannot run concurrently is
serialised by the session."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import make_model, tensor
from onnx import helper
from support.fake_providers import Plugin

import tessera
from tessera.provider import Claim, ExecutionProvider, KernelRegistry, ProviderFactory


def _model() -> bytes:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Neg", ["r"], ["y"], name="neg"),
    ]
    return make_model(nodes, [tensor("x", [4])], [tensor("y", [4])])


X = np.array([-1, 2, -3, 4], np.float32)
EXPECTED = -np.maximum(X, 0)


def _factory(name: str, provider_cls: type[ExecutionProvider]) -> ProviderFactory:
    cls = type(
        f"{name.title()}Factory",
        (ProviderFactory,),
        {
            "name": name,
            "api_version": "1.0",
            "default_priority": 50,
            "create": lambda self, o: provider_cls(o),
        },
    )
    return cls()


registry = KernelRegistry("SlowExecutionProvider")
active = {"now": 0, "most": 0}
lock = threading.Lock()


@registry.kernel("Relu", since=(6, 13, 14))
def _slow_relu(node):
    def compute(x):
        with lock:
            active["now"] += 1
            active["most"] = max(active["most"], active["now"])
        time.sleep(0.002)  # widen the window in which a second thread would enter
        with lock:
            active["now"] -= 1
        return (np.maximum(x, 0),)

    return compute


class SerialProvider(ExecutionProvider):
    registry = registry
    supports_concurrent_run = False


class ConcurrentProvider(ExecutionProvider):
    registry = registry


def _hammer(sess: tessera.InferenceSession) -> list[np.ndarray]:
    barrier = threading.Barrier(8)
    results: list[np.ndarray] = []

    def work() -> None:
        barrier.wait()
        for _ in range(10):
            results.append(sess.run(None, {"x": X})[0])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_provider_without_concurrent_run_is_entered_by_one_thread_at_a_time(plugins):
    plugins(Plugin(_factory("serial", SerialProvider)))
    sess = tessera.InferenceSession(_model(), providers=["serial", "cpu"])
    active["most"] = 0
    results = _hammer(sess)
    assert len(results) == 80 and all(np.array_equal(r, EXPECTED) for r in results)
    assert active["most"] == 1


def test_concurrent_provider_is_entered_by_several_threads(plugins):
    # The control for the test above: without the flag, the kernel does see overlapping calls.
    plugins(Plugin(_factory("concurrent", ConcurrentProvider)))
    sess = tessera.InferenceSession(_model(), providers=["concurrent", "cpu"])
    active["most"] = 0
    results = _hammer(sess)
    assert all(np.array_equal(r, EXPECTED) for r in results)
    assert active["most"] > 1


class OddClaims(ExecutionProvider):
    registry = registry
    claims: list = []

    def get_capability(self, view):
        return list(self.claims)


@pytest.mark.parametrize(
    "claims",
    [
        [Claim(("0",))],  # a string key
        [Claim(())],  # no nodes
        [Claim(None)],  # type: ignore[arg-type]
        5,  # not a list at all
        [Claim((0,)), Claim((0,))],  # overlapping
        [Claim(0)],  # type: ignore[arg-type]  # falsy scalar
    ],
    ids=["str-key", "empty", "none", "not-a-list", "overlap", "zero"],
)
def test_malformed_claims_leave_the_session_correct(plugins, claims):
    provider_cls = type("Odd", (OddClaims,), {"claims": claims if isinstance(claims, list) else []})
    if not isinstance(claims, list):
        provider_cls.get_capability = lambda self, view: claims
    plugins(Plugin(_factory("odd", provider_cls)))
    sess = tessera.InferenceSession(_model(), providers=["odd", "cpu"])
    np.testing.assert_array_equal(sess.run(None, {"x": X})[0], EXPECTED)


@pytest.mark.parametrize(
    "nodes", [([0],), 1, (0.0,)], ids=["list-key", "int-not-tuple", "float-key"]
)
def test_claim_with_unhashable_or_scalar_nodes_is_rejected(plugins, nodes):
    plugins(Plugin(_factory("odd", type("Odd", (OddClaims,), {"claims": [Claim(nodes)]}))))
    sess = tessera.InferenceSession(_model(), providers=["odd", "cpu"])
    np.testing.assert_array_equal(sess.run(None, {"x": X})[0], EXPECTED)
    assert "malformed claim" in sess.explain()


class RaisingFactoryProvider(ExecutionProvider):
    registry = KernelRegistry("RaisingFactoryExecutionProvider")


@RaisingFactoryProvider.registry.kernel("Relu", since=(6, 13, 14))
def _refusing_relu(node):
    raise RuntimeError("kernel factory exploded")


def test_kernel_factory_that_raises_is_an_invalid_graph_naming_node_and_provider(plugins):
    plugins(Plugin(_factory("rfactory", RaisingFactoryProvider)))
    with pytest.raises(
        tessera.InvalidGraph, match=r"node 'relu' .* on .*: kernel factory exploded"
    ):
        tessera.InferenceSession(_model(), providers=["rfactory", "cpu"])


class RaisingComputeProvider(ExecutionProvider):
    registry = KernelRegistry("RaisingComputeExecutionProvider")


@RaisingComputeProvider.registry.kernel("Relu", since=(6, 13, 14))
def _crashing_relu(node):
    def compute(x):
        raise MemoryError("device out of memory")

    return compute


def test_kernel_that_raises_at_run_time_is_a_runtime_failure_naming_the_node(plugins):
    plugins(Plugin(_factory("rcompute", RaisingComputeProvider)))
    sess = tessera.InferenceSession(_model(), providers=["rcompute", "cpu"])
    with pytest.raises(
        tessera.RuntimeFailure, match=r"'relu' .* MemoryError: device out of memory"
    ):
        sess.run(None, {"x": X})
    # The session stays usable: a later run fails the same way rather than hanging or corrupting.
    with pytest.raises(tessera.RuntimeFailure):
        sess.run(None, {"x": X})


class ShortResultProvider(ExecutionProvider):
    registry = KernelRegistry("ShortExecutionProvider")


@ShortResultProvider.registry.kernel("Relu", since=(6, 13, 14))
def _no_outputs_relu(node):
    return lambda x: ()


def test_kernel_returning_too_few_outputs_is_a_runtime_failure_naming_the_node(plugins):
    plugins(Plugin(_factory("short", ShortResultProvider)))
    sess = tessera.InferenceSession(_model(), providers=["short", "cpu"])
    with pytest.raises(tessera.RuntimeFailure, match=r"'relu' .*returned 0 output"):
        sess.run(None, {"x": X})


class RaisingCompileProvider(ExecutionProvider):
    def get_capability(self, view):
        return [Claim(tuple(k for k, _ in view), kind="compiled")]

    def compile(self, subgraph):
        raise RuntimeError("compiler crashed")


def test_compile_that_raises_is_a_provider_error_naming_the_provider(plugins):
    plugins(Plugin(_factory("rcompile", RaisingCompileProvider)))
    with pytest.raises(tessera.ProviderError, match=r"rcompile.*compiler crashed"):
        tessera.InferenceSession(_model(), providers=["rcompile", "cpu"])


def test_compiled_claim_without_compile_is_a_provider_error(plugins):
    claims = [Claim((0,), kind="compiled")]
    plugins(Plugin(_factory("nocompile", type("NoCompile", (OddClaims,), {"claims": claims}))))
    with pytest.raises(tessera.ProviderError, match="implement compile"):
        tessera.InferenceSession(_model(), providers=["nocompile", "cpu"])
