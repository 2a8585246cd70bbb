"""The CPU provider's worker pool: blocks run on workers, errors come back, callers may overlap."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tessera_cpu import _parallel


@pytest.fixture
def two_threads():
    before = _parallel._threads
    _parallel.configure(2)
    yield
    _parallel.configure(before)


def test_chunks_cover_the_range_and_run_on_a_worker(two_threads):
    seen: list[tuple[int, int, str]] = []

    def chunk(a, b):
        seen.append((a, b, threading.current_thread().name))

    _parallel.run_chunks(10, chunk)
    assert sorted((a, b) for a, b, _ in seen) == [(0, 5), (5, 10)]
    assert any(name.startswith("tessera-cpu-") for _, _, name in seen)


def test_an_error_in_a_worker_reaches_the_caller_and_the_pool_keeps_working(two_threads):
    def chunk(a, b):
        if a > 0:
            raise ValueError("block failed")

    with pytest.raises(ValueError, match="block failed"):
        _parallel.run_chunks(4, chunk)
    out = np.zeros(8)

    def fill(a, b):
        out[a:b] = 1

    _parallel.run_chunks(8, fill)
    assert out.sum() == 8


def test_overlapping_callers_get_correct_products(two_threads, monkeypatch):
    monkeypatch.setattr(_parallel, "_MIN_FLOPS", 0)  # split every product
    rng = np.random.default_rng(0)
    pairs = [(rng.random((64, 32)), rng.random((32, 48))) for _ in range(4)]
    results: dict[int, list] = {i: [] for i in range(4)}

    def work(i):
        a, b = pairs[i]
        for _ in range(50):
            results[i].append(_parallel.matmul(a, b))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (a, b) in enumerate(pairs):
        expected = a @ b
        assert all(np.allclose(r, expected) for r in results[i])
