"""The CPU provider's kernel registry; every kernel module registers into it."""

from __future__ import annotations

from tessera.provider import KernelRegistry

registry = KernelRegistry("CPUExecutionProvider")
