"""Spying on the CPU provider's native threads (``tessera_cpu._native``) in tests."""

from __future__ import annotations


def record_parts(monkeypatch) -> list[int]:
    """The thread counts the native regions got from now on, in order (``acquire`` is what
    both the kernels and ``region`` call)."""
    from tessera_cpu import _native

    parts: list[int] = []
    real_acquire = _native.acquire

    def acquire(n: int) -> int:
        parts.append(real_acquire(n))
        return parts[-1]

    monkeypatch.setattr(_native, "acquire", acquire)
    return parts
