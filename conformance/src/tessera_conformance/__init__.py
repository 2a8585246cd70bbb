"""Conformance testing of Tessera execution providers against the ONNX backend test suite.

Run it from the command line (``tessera conformance --provider NAME``), from pytest
(``pytest --pyargs tessera_conformance --provider NAME``), or subclass :class:`ConformanceSuite`.
"""

from __future__ import annotations

from tessera_conformance._cases import MODEL_KINDS, RANDOM_OPS, Case, load_cases
from tessera_conformance._report import build_report, provider_matrix, to_markdown
from tessera_conformance._runner import STATUSES, Result, run_case
from tessera_conformance.suite import ConformanceSuite

__all__ = [
    "MODEL_KINDS",
    "RANDOM_OPS",
    "STATUSES",
    "Case",
    "ConformanceSuite",
    "Result",
    "build_report",
    "load_cases",
    "provider_matrix",
    "run_case",
    "to_markdown",
]
