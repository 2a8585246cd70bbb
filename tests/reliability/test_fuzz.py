"""Property tests: mutated models (bytes and structure) fail only with Tessera's own errors.

Small, seeded and derandomized so CI is stable; ``python tools/fuzz.py --minutes N`` runs the same
mutations for longer, each in a watched subprocess that also catches hangs and crashes.
"""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
from model_mutations import (
    STRUCTURE_MUTATIONS,
    exercise,
    feeds_for,
    flip_bits,
    insert_bytes,
    mutate,
    seed_models,
    splice,
    truncate,
)

import tessera

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SEEDS = [m.SerializeToString() for m in seed_models()]
CI = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seed_models_are_valid_and_run(index):
    onnx.checker.check_model(onnx.ModelProto.FromString(SEEDS[index]), full_check=True)
    session = tessera.InferenceSession(SEEDS[index], providers=["cpu"])
    outputs = session.run(None, feeds_for(session))
    assert all(isinstance(o, np.ndarray) for o in outputs)


@CI
@given(index=st.integers(0, len(SEEDS) - 1), rnd=st.randoms(use_true_random=False))
def test_byte_mutations_raise_only_tessera_errors(index, rnd):
    data = SEEDS[index]
    mutation = rnd.choice([flip_bits, truncate, insert_bytes])
    exercise(mutation(data, rnd))  # anything but a TesseraError propagates and fails the test


@CI
@given(
    index=st.integers(0, len(SEEDS) - 1),
    other=st.integers(0, len(SEEDS) - 1),
    rnd=st.randoms(use_true_random=False),
)
def test_spliced_models_raise_only_tessera_errors(index, other, rnd):
    exercise(splice(SEEDS[index], rnd, SEEDS[other]))


@CI
@given(
    index=st.integers(0, len(SEEDS) - 1),
    steps=st.lists(st.integers(0, len(STRUCTURE_MUTATIONS) - 1), min_size=1, max_size=3),
    rnd=st.randoms(use_true_random=False),
)
def test_structure_mutations_raise_only_tessera_errors(index, steps, rnd):
    model = onnx.ModelProto.FromString(SEEDS[index])
    for step in steps:
        STRUCTURE_MUTATIONS[step](model, rnd)
    exercise(model.SerializeToString())


def test_mixed_mutations_from_a_fixed_seed_raise_only_tessera_errors():
    rnd = random.Random(20261125)
    outcomes = [exercise(mutate(SEEDS, rnd)) for _ in range(60)]
    # The mix must exercise both paths, or the fuzzer is not testing anything.
    assert "ok" in outcomes and any(o != "ok" for o in outcomes)
