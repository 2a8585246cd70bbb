"""The ONNX backend test suite, as shipped inside the installed onnx package, on the CPU provider.

onnx's own runner drives ``tessera.backend`` with the suite's own data and tolerances: every node
test plus the model tests (light, simple, pytorch-converted, pytorch-operator). Cases we do not
pass yet are listed below with the reason; they are strict expected failures, so fixing one
makes this file fail until the entry is removed.
"""

from __future__ import annotations

import warnings

import onnx.backend.test
import pytest

from tessera.backend import TesseraBackend

pytestmark = pytest.mark.filterwarnings("ignore")

# case name (without the _cpu suffix) -> why it does not pass yet
_RANDOM = "expected values were drawn from NumPy's global random state when the suite was made; no kernel can reproduce them (tessera_conformance reports the case as random)"
KNOWN_FAILURES: dict[str, str] = {
    "test_bernoulli": _RANDOM,
    "test_bernoulli_double": _RANDOM,
    "test_bernoulli_seed": _RANDOM,
    "test_bernoulli_expanded": _RANDOM,
    "test_bernoulli_double_expanded": _RANDOM,
    "test_bernoulli_seed_expanded": _RANDOM,
    "test_attention_4d_causal_fp16_expanded": "2 of 192 elements differ by one float16 ulp: our float16 "
    "Softmax rounds once from float32, the expected values round after every float16 step",
    "test_loop16_seq_none": "onnx's runner cannot compare a sequence of 0-d tensors (its "
    "assert_similar_outputs calls len() on them); tessera_conformance compares it and it passes",
}

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _suite = onnx.backend.test.BackendTest(TesseraBackend, __name__)
    for _name in KNOWN_FAILURES:
        _suite.xfail(f"^{_name}_cpu$")
    _cases = _suite.test_cases
    # The runner generates a _cuda twin of every case; this file proves the CPU provider only.
    for _cls in _cases.values():
        for _attr in [a for a in vars(_cls) if a.endswith("_cuda")]:
            delattr(_cls, _attr)
    globals().update(_cases)
