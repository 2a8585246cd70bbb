"""ExecutionMode.ORT_PARALLEL: independent steps run concurrently, with the same results, errors
and releases as a sequential run."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import make_model, tensor
from onnx import TensorProto, helper, numpy_helper
from support import fake_providers as fp

import tessera
from tessera import _parallel_plan


def _branchy_model(branches: int = 4) -> bytes:
    """x feeds ``branches`` chains of MatMul -> Tanh -> MatMul, concatenated: like an
    inception block, each chain depends only on x."""
    rng = np.random.default_rng(0)
    nodes, inits, outs = [], [], []
    for b in range(branches):
        w1 = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), f"w1_{b}")
        w2 = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), f"w2_{b}")
        inits += [w1, w2]
        nodes += [
            helper.make_node("MatMul", ["x", f"w1_{b}"], [f"a{b}"], name=f"mm1_{b}"),
            helper.make_node("Tanh", [f"a{b}"], [f"t{b}"], name=f"tanh_{b}"),
            helper.make_node("MatMul", [f"t{b}", f"w2_{b}"], [f"o{b}"], name=f"mm2_{b}"),
        ]
        outs.append(f"o{b}")
    nodes.append(helper.make_node("Concat", outs, ["y"], axis=1, name="concat"))
    return make_model(nodes, [tensor("x", [32, 64])], [tensor("y", [32, 64 * branches])], inits)


def _session(data: bytes, parallel: bool = True, providers=("cpu",)) -> tessera.InferenceSession:
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 1
    if parallel:
        opts.execution_mode = tessera.ExecutionMode.ORT_PARALLEL
        opts.inter_op_num_threads = 2
    return tessera.InferenceSession(data, opts, providers=list(providers))


def _feed():
    return {"x": np.random.default_rng(1).standard_normal((32, 64)).astype(np.float32)}


def test_parallel_runs_give_the_sequential_results_bit_for_bit():
    data = _branchy_model()
    parallel, sequential = _session(data), _session(data, parallel=False)
    assert parallel._plan.parallel is not None and sequential._plan.parallel is None
    assert parallel._plan.parallel.branches == 4
    want = sequential.run(None, _feed())[0]
    for _ in range(5):
        np.testing.assert_array_equal(parallel.run(None, _feed())[0], want)


def test_steps_really_run_on_two_threads(monkeypatch):
    seen = set()
    real = _parallel_plan._Run.work

    def work(self):
        seen.add(threading.get_ident())
        return real(self)

    monkeypatch.setattr(_parallel_plan._Run, "work", work)
    _session(_branchy_model()).run(None, _feed())
    assert len(seen) == 2


def test_a_chain_without_branches_stays_sequential():
    data = make_model(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"])],
        [tensor("x", [4])],
        [tensor("y", [4])],
    )
    assert _session(data)._plan.parallel is None


def test_a_failing_step_raises_naming_its_node_and_the_helpers_stop():
    # One branch reshapes to a shape given at run time; a wrong one fails mid-run.
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="bad_reshape"),
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Neg", ["x"], ["b"], name="neg"),
    ]
    data = make_model(
        nodes,
        [tensor("x", [2, 6]), tensor("shape", [2], TensorProto.INT64)],
        [tensor("r", None), tensor("a", [2, 6]), tensor("b", [2, 6])],
    )
    session = _session(data)
    assert session._plan.parallel is not None
    x = np.ones((2, 6), np.float32)
    with pytest.raises(tessera.RuntimeFailure, match="bad_reshape"):
        session.run(None, {"x": x, "shape": np.array([5, 5], np.int64)})
    r, a, b = session.run(None, {"x": x, "shape": np.array([3, 4], np.int64)})  # still usable
    assert r.shape == (3, 4) and a.sum() == 12 and b.sum() == -12


def test_terminate_stops_a_parallel_run():
    options = tessera.RunOptions()
    options.terminate = True
    with pytest.raises(tessera.RuntimeFailure, match="terminated"):
        _session(_branchy_model()).run(None, _feed(), options)


def test_concurrent_parallel_runs_of_one_session_agree():
    session = _session(_branchy_model())
    want = _session(_branchy_model(), parallel=False).run(None, _feed())[0]
    results, errors = [], []

    def run():
        try:
            for _ in range(10):
                results.append(session.run(None, _feed())[0])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 30
    for r in results:
        np.testing.assert_array_equal(r, want)


def test_intermediates_are_released_once_their_last_reader_ran(monkeypatch):
    # Every branch's MatMul -> Tanh intermediate is dropped from the run's slots as soon as
    # its MatMul reader is done, not at the end of the run.
    session = _session(_branchy_model())
    graph = session._plan.parallel
    released = []
    real = _parallel_plan._Run.__init__

    def init(self, *args):
        real(self, *args)
        released.append(self)

    monkeypatch.setattr(_parallel_plan._Run, "__init__", init)
    session.run(None, _feed())
    (run,) = released
    assert graph.readers and all(n == 0 for n in run.readers.values())
    assert all(run.env[s] is None for s in graph.readers)


def test_a_device_provider_keeps_the_session_sequential(plugins, caplog):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    data = make_model(
        [
            helper.make_node("Add", ["x", "x"], ["a"], name="a1"),
            helper.make_node("Add", ["x", "x"], ["b"], name="a2"),
        ],
        [tensor("x", [2, 3])],
        [tensor("a", [2, 3]), tensor("b", [2, 3])],
    )
    opts = tessera.SessionOptions()
    opts.execution_mode = tessera.ExecutionMode.ORT_PARALLEL
    opts.log_severity_level = 2
    with caplog.at_level("WARNING", logger="tessera"):
        session = tessera.InferenceSession(data, opts, providers=["fakedevice", "cpu"])
    assert session._plan.parallel is None
    assert "runs sequentially" in caplog.text


def _heavy_branches() -> bytes:
    """Four independent 256x512 @ 512x512 products (about 270M multiply-adds): enough work,
    spread evenly over branches, for a default session to run them in parallel."""
    rng = np.random.default_rng(2)
    nodes, inits, outs = [], [], []
    for b in range(4):
        w = rng.standard_normal((512, 512)).astype(np.float32) * 0.05
        inits.append(numpy_helper.from_array(w, f"w{b}"))
        nodes.append(helper.make_node("MatMul", ["x", f"w{b}"], [f"o{b}"], name=f"mm{b}"))
        outs.append(f"o{b}")
    nodes.append(helper.make_node("Concat", outs, ["y"], axis=1, name="concat"))
    return make_model(nodes, [tensor("x", [256, 512])], [tensor("y", [256, 2048])], inits)


def _default_session(data: bytes, **options) -> tessera.InferenceSession:
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 2
    for key, value in options.items():
        if key == "config":
            opts.add_session_config_entry(*value)
        else:
            setattr(opts, key, value)
    return tessera.InferenceSession(data, opts, providers=["cpu"])


def test_a_default_session_runs_wide_graphs_in_parallel_and_says_why(monkeypatch):
    # The CPU provider's native threads (below) keep default sessions sequential.
    monkeypatch.setenv("TESSERA_CPU_NATIVE_THREADS", "0")
    session = _default_session(_heavy_branches())
    assert session._plan.parallel is not None
    assert session._plan.parallel.parallelism > 3
    assert "parallel steps on 2 threads (automatic" in session.explain()
    x = np.random.default_rng(3).standard_normal((256, 512)).astype(np.float32)
    want = _default_session(
        _heavy_branches(), execution_mode=tessera.ExecutionMode.ORT_SEQUENTIAL
    ).run(None, {"x": x})[0]
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], want)


def test_a_provider_with_efficient_intra_op_threads_keeps_default_sessions_sequential():
    """The CPU provider on numba's OpenMP threads says its kernels split their own work
    cheaply (ExecutionProvider.efficient_intra_op); concurrent branches would compete with
    them. An explicit ORT_PARALLEL still runs in parallel."""
    from tessera_cpu import _native

    if not _native.available(np.float32):
        pytest.skip("the CPU provider's native threads are not usable here")
    session = _default_session(_heavy_branches())
    assert session._providers[-1].efficient_intra_op
    assert session._plan.parallel is None
    explicit = _default_session(
        _heavy_branches(), execution_mode=tessera.ExecutionMode.ORT_PARALLEL
    )
    assert explicit._plan.parallel is not None


@pytest.mark.parametrize(
    "options",
    [
        {"execution_mode": tessera.ExecutionMode.ORT_SEQUENTIAL},  # chosen by the caller
        {"config": ("tessera.execution.auto_parallel", "0")},
        {"intra_op_num_threads": 1},
    ],
    ids=["explicit-sequential", "config-off", "one-thread"],
)
def test_the_automatic_choice_yields_to_the_caller(options, monkeypatch):
    monkeypatch.setenv("TESSERA_CPU_NATIVE_THREADS", "0")  # else it never chooses parallel
    assert _default_session(_heavy_branches(), **options)._plan.parallel is None


def test_small_or_sequential_graphs_stay_sequential_by_default(monkeypatch):
    monkeypatch.setenv("TESSERA_CPU_NATIVE_THREADS", "0")  # else it never chooses parallel
    assert _default_session(_branchy_model())._plan.parallel is None  # too little work
    chain = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["a"]),
            helper.make_node("MatMul", ["a", "w"], ["y"]),
        ],
        [tensor("x", [512, 512])],
        [tensor("y", [512, 512])],
        [numpy_helper.from_array(np.eye(512, dtype=np.float32), "w")],
    )
    assert _default_session(chain)._plan.parallel is None  # heavy, but one chain
