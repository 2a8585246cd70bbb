"""The example provider proves itself with Tessera's standard conformance tests.

Run ``pytest tests --conformance-cases '^test_(add|mul|relu|matmul)'`` for its own ops, or without
``--conformance-cases`` for the whole ONNX backend suite (declined cases skip with the reason).
"""

from __future__ import annotations

from tessera_conformance import ConformanceSuite


class TestExampleConformance(ConformanceSuite):
    provider = "example"
    mode = "strict"
