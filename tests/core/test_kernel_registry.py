"""KernelRegistry: exact schema-version matching, type constraints, and errors that teach."""

from __future__ import annotations

import pytest

from tessera._kernels import NodeInfo
from tessera.provider import FLOAT_TYPES, KernelDef, KernelRegistry, NoKernelError


def _node(op="Relu", opset=17, types=("tensor(float)",), domain=""):
    return NodeInfo(op, domain, "n0", opset, {}, ["x"], ["y"], list(types), [None], [None])


def _registry():
    reg = KernelRegistry("TestProvider")

    @reg.kernel("Relu", since=(6, 13, 14), types={"T": FLOAT_TYPES})
    def relu(node):
        return lambda x: (x,)

    return reg


def test_lookup_uses_the_schema_version_in_effect():
    reg = _registry()
    assert reg.lookup(_node(opset=13)).since_version == 13
    assert reg.lookup(_node(opset=17)).since_version == 14


def test_lookup_declines_a_schema_version_the_kernel_does_not_declare():
    reg = KernelRegistry("TestProvider")

    @reg.kernel("Relu", since=6)
    def relu(node):
        return lambda x: (x,)

    with pytest.raises(
        NoKernelError, match=r"schema version 14; kernels are registered for versions \[6\]"
    ):
        reg.lookup(_node(opset=17))


def test_type_constraint_declines_with_the_reason():
    found = _registry().find(_node(types=("tensor(int8)",)))
    assert isinstance(found, str)
    assert "input 0 (type parameter T) has type tensor(int8)" in found


def test_missing_kernel_error_names_node_op_opset_and_provider():
    with pytest.raises(NoKernelError) as err:
        _registry().lookup(_node(op="Elu"))
    text = str(err.value)
    assert "TestProvider" in text and "'n0'" in text and "Elu" in text and "opset 17" in text


def test_registering_a_version_twice_is_an_error():
    reg = _registry()
    with pytest.raises(ValueError, match="registered twice"):
        reg.kernel("Relu", since=13)(lambda node: None)


def test_custom_domain_uses_highest_version_at_or_below_opset():
    reg = KernelRegistry("TestProvider")

    @reg.kernel("Fancy", since=(1, 3), domain="com.acme")
    def fancy(node):
        return lambda x: (x,)

    assert reg.lookup(_node(op="Fancy", domain="com.acme", opset=2)).since_version == 1
    assert reg.lookup(_node(op="Fancy", domain="com.acme", opset=5)).since_version == 3


def test_a_claim_check_declines_a_matched_node_with_its_reason():
    reg = KernelRegistry("P")

    @reg.kernel("Relu", since=(6, 13, 14))
    def relu(node):
        return lambda x: (x,)

    seen: list[int] = []

    @reg.check("Relu")
    def no_marked(node):
        seen.append(node.since_version)
        return "marked nodes are not run here" if node.attrs.get("marked") else None

    @reg.check("Relu")
    def second(node):
        return "the second check declines too" if node.attrs.get("also") else None

    def node(**attrs):
        n = _node("Relu", 14)
        n.attrs.update(attrs)
        return n

    assert isinstance(reg.find(node()), KernelDef) and seen == [14]
    assert reg.find(node(marked=1)) == "marked nodes are not run here"
    assert reg.find(node(also=1)) == "the second check declines too"
    with pytest.raises(NoKernelError, match="marked nodes are not run here"):
        reg.lookup(node(marked=1))
