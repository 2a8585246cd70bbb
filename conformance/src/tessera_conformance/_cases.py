"""The cases: every node test of the installed onnx package, and its on-disk model tests.

Data and tolerances are the suite's own. Light models (which ship only expected outputs) get the
same deterministic inputs that onnx's own runner generates for them.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any

import onnx
from onnx import numpy_helper
from onnx.backend.test.loader import DATA_DIR
from onnx.backend.test.runner import Runner

MODEL_KINDS = ("light", "simple", "pytorch-converted", "pytorch-operator")
RANDOM_OPS = frozenset(
    {
        "Bernoulli",
        "RandomUniform",
        "RandomUniformLike",
        "RandomNormal",
        "RandomNormalLike",
        "Multinomial",
    }
)


@dataclasses.dataclass
class Case:
    """One conformance case: a model, its data sets, and the suite's tolerances."""

    name: str
    kind: str  # "node" or one of MODEL_KINDS
    model: onnx.ModelProto
    data_sets: list[tuple[list[Any], list[Any]]]
    rtol: float
    atol: float

    @property
    def ops(self) -> list[str]:
        """Op types of the top-level graph (with their domain when not ai.onnx), sorted."""
        return sorted(
            {
                f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
                for n in self.model.graph.node
            }
        )

    @property
    def random(self) -> bool:
        """Whether the expected outputs come from a random generator."""
        return any(n.op_type in RANDOM_OPS for n in self.model.graph.node)


def _normalize(value: Any) -> Any:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


def _node_cases() -> Iterator[Case]:
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_node_model_tests()
    for c in cases:
        data = [
            ([_normalize(x) for x in ins], [_normalize(y) for y in outs])
            for ins, outs in c.data_sets
        ]
        yield Case(c.name, "node", c.model, data, c.rtol, c.atol)


def _load_value(path: str, type_proto: onnx.TypeProto) -> Any:
    with open(path, "rb") as fh:
        content = fh.read()
    if type_proto.HasField("sequence_type"):
        return numpy_helper.to_list(onnx.SequenceProto.FromString(content))
    if type_proto.HasField("optional_type"):
        return numpy_helper.to_optional(onnx.OptionalProto.FromString(content))
    return numpy_helper.to_array(onnx.TensorProto.FromString(content))


def _dir_case(kind: str, case_dir: str) -> Case:
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    rtol, atol = 1e-3, 1e-7
    meta = os.path.join(case_dir, "data.json")
    if os.path.exists(meta):
        with open(meta) as fh:
            info = json.load(fh)
        rtol, atol = info.get("rtol", rtol), info.get("atol", atol)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    data = []
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        ins = [_load_value(os.path.join(ds, f"input_{i}.pb"), v.type) for i, v in enumerate(inputs)]
        outs = [
            _load_value(os.path.join(ds, f"output_{i}.pb"), v.type)
            for i, v in enumerate(model.graph.output)
            if os.path.exists(os.path.join(ds, f"output_{i}.pb"))
        ]
        data.append((ins, outs))
    return Case(os.path.basename(case_dir), kind, model, data, rtol, atol)


def _light_case(path: str) -> Case:
    """A light model: expected outputs ship beside it; inputs are onnx's runner's dummy data."""
    model = onnx.load(path)
    stem = os.path.splitext(path)[0]
    inits = {i.name for i in model.graph.initializer}
    name = os.path.basename(stem)[len("light_") :]
    inputs = [
        Runner.generate_dummy_data(v, seed=0, name=name, random=False)
        for v in model.graph.input
        if v.name not in inits
    ]
    outputs = [
        numpy_helper.to_array(onnx.load_tensor(f"{stem}_output_{i}.pb"))
        for i in range(len(model.graph.output))
    ]
    return Case(f"test_{name}", "light", model, [(inputs, outputs)], 1e-3, 1e-7)


def load_cases(
    kinds: tuple[str, ...] = ("node", *MODEL_KINDS), pattern: str | None = None
) -> list[Case]:
    """All cases of the requested kinds whose name matches ``pattern`` (a regex), sorted by name."""
    regex = re.compile(pattern) if pattern else None
    cases: list[Case] = []
    if "node" in kinds:
        cases.extend(c for c in _node_cases() if regex is None or regex.search(c.name))
    for kind in kinds:
        if kind == "node":
            continue
        root = os.path.join(DATA_DIR, kind)
        if kind == "light":
            for path in sorted(glob.glob(os.path.join(root, "light_*.onnx"))):
                name = "test_" + os.path.basename(path)[len("light_") : -len(".onnx")]
                if regex is None or regex.search(name):
                    cases.append(_light_case(path))
            continue
        for case_dir in sorted(glob.glob(os.path.join(root, "test_*"))):
            if os.path.exists(os.path.join(case_dir, "model.onnx")) and (
                regex is None or regex.search(os.path.basename(case_dir))
            ):
                cases.append(_dir_case(kind, case_dir))
    return sorted(cases, key=lambda c: (c.kind != "node", c.name))


__all__ = ["MODEL_KINDS", "RANDOM_OPS", "Case", "load_cases"]
