"""Collected by ``pytest --pyargs tessera_conformance --provider NAME``."""

from __future__ import annotations

from tessera_conformance.suite import ConformanceSuite


class TestProviderConformance(ConformanceSuite):
    """The provider named by ``--provider``, in the mode named by ``--conformance-mode``."""
