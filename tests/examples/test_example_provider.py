"""The example third-party provider (examples/tessera-example-provider), installed as a vendor's would be.

It must be found through its entry point, be asked before CPU by default, claim only what it runs
(float32 Add, Mul, Relu, MatMul) with CPU taking the rest, and reject bad options clearly.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper

import tessera
import tessera_registry
from tessera.provider import API_VERSION

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tessera-example-provider"

try:
    importlib.metadata.distribution("tessera-example-provider")
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        "the example provider is not installed: pip install -e ./examples/tessera-example-provider",
        allow_module_level=True,
    )

F = onnx.TensorProto.FLOAT
I64 = onnx.TensorProto.INT64


def _mixed_model() -> bytes:
    """Add -> Mul -> MatMul -> Relu -> Sigmoid in float32, plus an int64 Mul the example declines.

    Every value is a graph input, so no optimizer pass folds or fuses what the test counts on.
    """
    nodes = [
        helper.make_node("Add", ["x", "b"], ["xb"], name="add"),
        helper.make_node("Mul", ["xb", "xb"], ["sq"], name="mul"),
        helper.make_node("MatMul", ["sq", "w"], ["h"], name="matmul"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid"),
        helper.make_node("Mul", ["n", "n"], ["n2"], name="int_mul"),
    ]
    inputs = [
        helper.make_tensor_value_info("x", F, [2, 3]),
        helper.make_tensor_value_info("b", F, [3]),
        helper.make_tensor_value_info("w", F, [3, 4]),
        helper.make_tensor_value_info("n", I64, [4]),
    ]
    outputs = [
        helper.make_tensor_value_info("y", F, [2, 4]),
        helper.make_tensor_value_info("n2", I64, [4]),
    ]
    graph = helper.make_graph(nodes, "mixed", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _feed() -> dict:
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((2, 3)).astype(np.float32),
        "b": rng.standard_normal(3).astype(np.float32),
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "n": np.arange(4, dtype=np.int64),
    }


def _expected(feed: dict) -> tuple:
    sq = (feed["x"] + feed["b"]) ** 2
    y = 1 / (1 + np.exp(-np.maximum(sq @ feed["w"], 0)))
    return y, feed["n"] * feed["n"]


@pytest.fixture
def default_order(monkeypatch):
    """Sessions that name no providers use every installed one, in default priority order."""
    monkeypatch.delenv("TESSERA_PROVIDERS", raising=False)


def test_example_is_discovered_through_its_entry_point():
    eps = importlib.metadata.entry_points(group=tessera_registry.ENTRY_POINT_GROUP)
    assert any(ep.name == "example" and ep.value == "tessera_example.plugin" for ep in eps)
    found = tessera_registry.discover(API_VERSION)
    factory = found.factories["example"]
    assert found.factories[tessera_registry.canonical("ExampleExecutionProvider")] is factory
    assert "tessera-example-provider 0.1.0" in found.sources["example"]


def test_discovering_the_example_does_not_import_its_kernels():
    code = (
        "import sys, tessera_registry; tessera_registry.discover('1.0'); "
        "print('tessera_example' in sys.modules, 'tessera_example.kernels' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_the_example_ranks_before_cpu_but_joins_only_sessions_that_name_it(default_order):
    names = tessera.get_available_providers()
    assert names.index("ExampleExecutionProvider") < names.index("CPUExecutionProvider")
    assert (
        "ExampleExecutionProvider" not in tessera.InferenceSession(_mixed_model()).get_providers()
    )
    named = tessera.InferenceSession(_mixed_model(), providers=["example"])
    assert named.get_providers() == ["ExampleExecutionProvider", "CPUExecutionProvider"]


def test_example_claims_its_float_ops_and_cpu_runs_the_rest():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CPU-fallback notice
        session = tessera.InferenceSession(_mixed_model(), providers=["example"])
    assert session.get_providers() == ["ExampleExecutionProvider", "CPUExecutionProvider"]
    assert session.assignments == {
        "add": "ExampleExecutionProvider",
        "mul": "ExampleExecutionProvider",
        "matmul": "ExampleExecutionProvider",
        "relu": "ExampleExecutionProvider",
        "sigmoid": "CPUExecutionProvider",
        "int_mul": "CPUExecutionProvider",
    }
    feed = _feed()
    y, n2 = session.run(None, feed)
    want_y, want_n2 = _expected(feed)
    np.testing.assert_allclose(y, want_y, rtol=1e-5)
    np.testing.assert_array_equal(n2, want_n2)
    text = session.explain()
    assert "int_mul" in text and "tensor(int64)" in text


def test_claim_matmul_option_leaves_matmul_to_cpu():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = tessera.InferenceSession(
            _mixed_model(), providers=[("example", {"claim_matmul": "false"}), "cpu"]
        )
    assert session.assignments["matmul"] == "CPUExecutionProvider"
    assert session.assignments["mul"] == "ExampleExecutionProvider"
    y, _ = session.run(None, _feed())
    np.testing.assert_allclose(y, _expected(_feed())[0], rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": 1}, "has no option(s) 'bogus'; valid options: claim_matmul, device_id"),
        ({"device_id": 3}, "'device_id' is 3, but the devices are example:0"),
        ({"device_id": "first"}, "option 'device_id' must be int, got 'first'"),
        ({"claim_matmul": "maybe"}, "'claim_matmul' must be true or false, got 'maybe'"),
    ],
)
def test_bad_example_options_are_rejected_with_the_fix(options, message):
    with pytest.raises(tessera.InvalidArgument) as err:
        tessera.InferenceSession(_mixed_model(), providers=[("example", options), "cpu"])
    assert message in str(err.value)


def test_example_conformance_tests_pass_for_its_ops():
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLE / "tests"),
            "-q",
            "-rN",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(EXAMPLE),
            "--conformance-cases",
            "^test_(add|mul|relu|matmul)",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLE,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
