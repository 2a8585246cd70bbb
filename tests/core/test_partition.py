"""Partitioning: claim order, fallback, transfers, compiled groups and claim validation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_model, tensor
from onnx import helper
from support import fake_providers as fp

import tessera


def _add_relu_add_model() -> bytes:
    nodes = [
        helper.make_node("Add", ["x", "y"], ["s"], name="add1"),
        helper.make_node("Mul", ["s", "s"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "y"], ["z"], name="add2"),
    ]
    return make_model(nodes, [tensor("x", [2, 3]), tensor("y", [2, 3])], [tensor("z", [2, 3])])


def _feeds():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    return {"x": x, "y": np.ones((2, 3), np.float32)}, ((x + 1) ** 2 + 1)


def test_higher_priority_provider_claims_its_ops_and_cpu_runs_the_rest(plugins):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    sess = tessera.InferenceSession(_add_relu_add_model(), providers=["fakedevice", "cpu"])
    assert sess.assignments == {
        "add1": "FakeDeviceExecutionProvider",
        "mul": "CPUExecutionProvider",
        "add2": "FakeDeviceExecutionProvider",
    }
    feeds, expected = _feeds()
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected)


def test_transfers_are_inserted_only_at_device_boundaries(plugins):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    sess = tessera.InferenceSession(
        _add_relu_add_model(), providers=["FakeDeviceExecutionProvider"]
    )
    fp.transfer_log.clear()
    feeds, expected = _feeds()
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected)
    # x, y in for add1; s out to host for mul; m in for add2 (y reused); z out.
    assert fp.transfer_log.count("to_device") == 3
    assert fp.transfer_log.count("to_host") == 2
    assert "5 device transfer(s)" in sess.explain()


def test_default_order_follows_declared_priority_with_cpu_last(plugins, monkeypatch):
    monkeypatch.delenv("TESSERA_PROVIDERS", raising=False)
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    sess = tessera.InferenceSession(_add_relu_add_model())
    names = sess.get_providers()
    # Other installed providers may appear too; the fake (priority 10) precedes CPU, which is last.
    assert names[-1] == "CPUExecutionProvider"
    assert "FakeDeviceExecutionProvider" in names


def test_tessera_providers_env_sets_the_order(plugins, monkeypatch):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    monkeypatch.setenv("TESSERA_PROVIDERS", "cpu")
    sess = tessera.InferenceSession(_add_relu_add_model())
    assert set(sess.assignments.values()) == {"CPUExecutionProvider"}


def test_disabled_fallback_error_names_every_unclaimed_node(plugins):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    opts = tessera.SessionOptions()
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    with pytest.raises(tessera.NoKernelError) as err:
        tessera.InferenceSession(_add_relu_add_model(), opts, providers=["fakedevice"])
    message = str(err.value)
    assert "'mul'" in message and "Mul" in message and "disable_cpu_ep_fallback" in message
    assert "'add1'" not in message


def test_capability_query_that_raises_is_isolated(plugins):
    plugins(fp.Plugin(fp.RaisingCapabilityFactory()))
    sess = tessera.InferenceSession(_add_relu_add_model(), providers=["raising", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected)
    assert "capability query exploded" in sess.explain()


def test_malformed_claims_are_rejected_and_reported(plugins):
    plugins(fp.Plugin(fp.MalformedFactory()))
    sess = tessera.InferenceSession(_add_relu_add_model(), providers=["malformed", "cpu"])
    feeds, expected = _feeds()
    np.testing.assert_allclose(sess.run(None, feeds)[0], expected)
    text = sess.explain()
    assert "unknown or already claimed" in text
    assert "malformed claim" in text
    assert "unknown claim kind" in text
    assert set(sess.assignments.values()) == {"CPUExecutionProvider"}


def test_compiled_group_runs_as_one_step(plugins):
    plugins(fp.Plugin(fp.FusingFactory()))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Neg", ["r"], ["n"], name="neg"),
    ]
    model = make_model(nodes, [tensor("x", [4])], [tensor("n", [4])])
    sess = tessera.InferenceSession(model, providers=["fusing"])
    assert sess.assignments == {"relu": "FusingExecutionProvider", "neg": "FusingExecutionProvider"}
    assert len(sess._plan.steps) == 1
    x = np.array([-1, 2, -3, 4], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], -np.maximum(x, 0))


def test_compiled_claim_that_would_make_a_cycle_is_rejected(plugins):
    plugins(fp.Plugin(fp.FusingFactory()))
    # relu -> sqrt (CPU) -> neg: grouping relu with neg would need sqrt both after and before.
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sqrt", ["r"], ["s"], name="sqrt"),
        helper.make_node("Neg", ["s"], ["n"], name="neg"),
    ]
    model = make_model(nodes, [tensor("x", [3])], [tensor("n", [3])])
    sess = tessera.InferenceSession(model, providers=["fusing", "cpu"])
    assert "cycle" in sess.explain()
    x = np.array([1, 4, 9], np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], -np.sqrt(x))


def test_unknown_provider_name_lists_installed_ones():
    with pytest.raises(tessera.ProviderError, match=r"installed providers: .*CPUExecutionProvider"):
        tessera.InferenceSession(_add_relu_add_model(), providers=["NoSuchExecutionProvider"])


def test_requested_provider_without_device_raises_with_its_reason(plugins):
    plugins(fp.Plugin(fp.NoDeviceFactory()))
    with pytest.raises(tessera.ProviderError, match="no accelerator found"):
        tessera.InferenceSession(_add_relu_add_model(), providers=["nodevice"])


def test_auto_discovered_provider_without_device_is_skipped(plugins, monkeypatch):
    monkeypatch.delenv("TESSERA_PROVIDERS", raising=False)
    plugins(fp.Plugin(fp.NoDeviceFactory()))
    sess = tessera.InferenceSession(_add_relu_add_model())
    assert "nodevice" not in sess.get_providers()


def test_unknown_provider_option_lists_valid_options(plugins):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    with pytest.raises(tessera.InvalidArgument, match="valid options: scale"):
        tessera.InferenceSession(_add_relu_add_model(), providers=[("fakedevice", {"bogus": 1})])


def test_fallback_is_logged_as_a_warning(plugins, caplog):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    with caplog.at_level("WARNING", logger="tessera"):
        tessera.InferenceSession(_add_relu_add_model(), providers=["fakedevice", "cpu"])
    assert "1 node(s) fell back to CPUExecutionProvider" in caplog.text


def test_log_severity_level_silences_the_fallback_warning(plugins, caplog):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    opts = tessera.SessionOptions()
    opts.log_severity_level = 3
    with caplog.at_level("WARNING", logger="tessera"):
        tessera.InferenceSession(_add_relu_add_model(), opts, providers=["fakedevice", "cpu"])
    assert "fell back" not in caplog.text


def test_compiled_claim_extracts_as_a_standalone_model_with_embedded_weights(plugins):
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    captured = {}

    class ExtractingProvider(fp.FusingProvider):
        fusable = ("Add", "Relu")

        def compile(self, subgraph):
            extracted = subgraph.extract()
            captured["extracted"], captured["subgraph"] = extracted, subgraph
            ref = ReferenceEvaluator(extracted.model)
            return lambda *args: ref.run(None, dict(zip(extracted.inputs, args)))

    class Factory(fp.FusingFactory):
        name = "extracting"

        def create(self, options):
            return ExtractingProvider(options)

    plugins(fp.Plugin(Factory()))
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    nodes = [
        helper.make_node("Add", ["x", "w"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Neg", ["r"], ["y"], name="neg"),
    ]
    sess = tessera.InferenceSession(
        make_model(nodes, [tensor("x", [3])], [tensor("y", [3])], [w]),
        providers=["extracting", "cpu"],
    )
    extracted = captured["extracted"]
    assert extracted.inputs == ["x"] and extracted.constants == ["w"] and extracted.outputs == ["r"]
    assert list(captured["subgraph"].constants) == ["w"]
    x = np.array([-3, 0, 1], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], -np.maximum(x + 1, 0))


@pytest.mark.parametrize(
    ("text", "expected"), [("false", False), ("0", False), ("True", True), ("yes", True)]
)
def test_boolean_options_given_as_strings_are_parsed_not_cast(text, expected):
    from tessera.provider import OptionSpec, ProviderFactory

    class Factory(ProviderFactory):
        name = "flags"
        options = {"fast": OptionSpec(bool, False, "")}

    assert Factory().validate_options({"fast": text}) == {"fast": expected}
    with pytest.raises(tessera.InvalidArgument, match="option 'fast' must be bool"):
        Factory().validate_options({"fast": "maybe"})


def test_provider_that_declines_auto_selection_is_used_only_when_named(plugins, monkeypatch):
    monkeypatch.delenv("TESSERA_PROVIDERS", raising=False)

    class OptInFactory(fp.FakeDeviceFactory):
        name = "optin"
        aliases = ("OptInExecutionProvider",)

        def auto_select(self):
            return False

    plugins(fp.Plugin(OptInFactory()))
    assert (
        "OptInExecutionProvider"
        not in tessera.InferenceSession(_add_relu_add_model()).get_providers()
    )
    named = tessera.InferenceSession(_add_relu_add_model(), providers=["optin"])
    assert named.get_providers()[0] == "OptInExecutionProvider"


class _ThreadsFactory(fp.FakeDeviceFactory):
    name = "threaded"
    aliases = ("ThreadedExecutionProvider",)
    options = {"threads": fp.OptionSpec(int, 0, "host threads")}
    threads_option = "threads"

    def create(self, options):
        provider = fp.FakeDeviceProvider(self.validate_options(options))
        provider.name = "ThreadedExecutionProvider"
        return provider


def _threads_of(sess) -> int:
    return next(p for p in sess._providers if p.name == "ThreadedExecutionProvider").options[
        "threads"
    ]


def test_session_threads_reach_the_option_a_factory_names_unless_given(plugins):
    plugins(fp.Plugin(_ThreadsFactory()))
    opts = tessera.SessionOptions()
    opts.intra_op_num_threads = 3
    sess = tessera.InferenceSession(_add_relu_add_model(), opts, providers=["threaded", "cpu"])
    assert _threads_of(sess) == 3
    given = tessera.InferenceSession(
        _add_relu_add_model(), opts, providers=[("threaded", {"threads": 1}), "cpu"]
    )
    assert _threads_of(given) == 1
    default = tessera.InferenceSession(_add_relu_add_model(), providers=["threaded", "cpu"])
    assert _threads_of(default) == 0


def test_io_binding_keeps_an_output_on_the_device_that_computes_it(plugins):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    sess = tessera.InferenceSession(
        _add_relu_add_model(), providers=["FakeDeviceExecutionProvider"]
    )
    feeds, expected = _feeds()
    binding = sess.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output("z", "fake")
    fp.transfer_log.clear()
    sess.run_with_iobinding(binding)
    # x, y in; s out for the CPU Mul; m back in; z stays on the device: one to_host only.
    assert fp.transfer_log.count("to_host") == 1
    (z,) = binding.get_outputs()
    assert z.device_name() == "fake" and isinstance(z.device_value(), fp.DeviceArray)
    assert z.shape() == [2, 3] and z.data_type() == "tensor(float)"
    np.testing.assert_allclose(z.numpy(), expected)
    np.testing.assert_allclose(binding.copy_outputs_to_cpu()[0], expected)
    # Bound to the host again, the output comes back as NumPy.
    binding.bind_output("z")
    sess.run_with_iobinding(binding)
    assert isinstance(binding.get_outputs()[0].device_value(), np.ndarray)


def test_io_binding_refuses_a_device_that_does_not_compute_the_output(plugins):
    plugins(fp.Plugin(fp.FakeDeviceFactory()))
    sess = tessera.InferenceSession(_add_relu_add_model(), providers=["cpu"])
    binding = sess.io_binding()
    feeds, _ = _feeds()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output("z", "fake")
    with pytest.raises(tessera.InvalidArgument, match="computed on 'cpu', not on 'fake'"):
        sess.run_with_iobinding(binding)
