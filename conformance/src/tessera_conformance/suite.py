"""The standard conformance tests, as a base class a provider's own test suite can subclass::

from tessera_conformance import ConformanceSuite

class TestAcmeConformance(ConformanceSuite):
    provider = "acme"
    mode = "strict"
"""

from __future__ import annotations

import pytest

from tessera_conformance._runner import run_case


class ConformanceSuite:
    """Runs every ONNX backend test case on ``provider`` (or ``--provider``)."""

    provider: str | None = None
    mode: str | None = None

    def test_case(self, conformance_case, conformance_provider, conformance_strict) -> None:
        result = run_case(conformance_case, conformance_provider, strict=conformance_strict)
        if result.status == "unsupported":
            pytest.skip(f"declined by {conformance_provider}: {result.reason}")
        if result.status == "random":
            pytest.skip(f"random outputs: {result.reason}")
        if result.status != "passed":
            pytest.fail(f"{result.status}: {result.reason}", pytrace=False)
