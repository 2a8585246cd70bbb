"""``ExecutionMode.ORT_PARALLEL``: a plan's independent steps run concurrently.

The plan's steps form a graph through their slots (a step waits for the steps that produce what
it reads). The calling thread and ``inter_op_num_threads - 1`` helper threads take ready steps in
plan order, so each branch of an inception block can run on its own thread, where sequential
execution could only split each small convolution in two. A value is released when its last
reader has run, whatever the order turned out to be.

Only main-graph plans whose providers all run on the host and declare
``supports_concurrent_run`` run this way. The session decides: ``ORT_PARALLEL`` asks for it, and
a session that leaves ``execution_mode`` alone gets it when the graph's branches carry enough of
its estimated work (``StepGraph.parallelism``). Subgraphs and profiled runs stay sequential.
"""

from __future__ import annotations

import heapq
import os
import threading
from collections.abc import Callable
from typing import Any

from tessera._errors import RuntimeFailure, TesseraError


class StepGraph:
    """Which steps wait for which, and how many steps read each releasable slot."""

    def __init__(self, steps: list, keep: set[int], costs: list[float] | None = None) -> None:
        producer: dict[int, int] = {}
        for i, (_fn, _ins, outs, _frees) in enumerate(steps):
            for slot in outs:
                producer.setdefault(slot, i)
        self.size = len(steps)
        self.waits = [0] * self.size
        self.next: list[list[int]] = [[] for _ in steps]
        readers: dict[int, int] = {}
        self.reads: list[tuple[int, ...]] = []
        for i, (_fn, ins, _outs, _frees) in enumerate(steps):
            before = {producer[s] for s in ins if s in producer and producer[s] < i}
            self.waits[i] = len(before)
            for p in before:
                self.next[p].append(i)
            distinct = tuple(s for s in set(ins) if s not in keep)
            self.reads.append(distinct)
            for s in distinct:
                readers[s] = readers.get(s, 0) + 1
        self.readers = readers
        self.first = [i for i, w in enumerate(self.waits) if w == 0]
        # Total work over the critical path's: how many threads the graph could keep busy.
        costs = costs or [1.0] * self.size
        finish = [0.0] * self.size
        for i in range(self.size):  # plan order is a topological order
            finish[i] += costs[i]
            for j in self.next[i]:
                finish[j] = max(finish[j], finish[i])
        self.total = float(sum(costs))
        self.parallelism = self.total / max(max(finish, default=0.0), 1e-9) if self.size else 1.0

    @property
    def branches(self) -> int:
        """Most steps that become ready together (1: nothing to run concurrently)."""
        return max([len(self.first)] + [len(n) for n in self.next], default=1)


class _Helper:
    """A thread with one task slot, as the CPU provider's workers (they block when idle)."""

    def __init__(self, name: str) -> None:
        self._task: Callable[[], None] | None = None
        self._ready = threading.Condition()
        self.idle = threading.Event()
        self.idle.set()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self._ready:
                while self._task is None:
                    self._ready.wait()
                task, self._task = self._task, None
            try:
                task()
            finally:
                self.idle.set()

    def start(self, task: Callable[[], None]) -> None:
        self.idle.clear()
        with self._ready:
            self._task = task
            self._ready.notify()


class _Pool:
    def __init__(self, size: int) -> None:
        self.helpers = [_Helper(f"tessera-inter-op-{i}") for i in range(size)]
        self.busy = threading.Lock()


_pools: dict[int, _Pool] = {}
_pools_lock = threading.Lock()


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool(threads: int) -> _Pool:
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = _Pool(threads - 1)
        return pool


def run_parallel(
    steps: list,
    graph: StepGraph,
    env: list[Any],
    threads: int,
    terminated: Callable[[], bool],
    failure: Callable[[Callable, tuple, Exception], Exception],
    short: Callable[[int, int], Exception],
) -> bool:
    """Run ``steps`` over ``env`` on ``threads`` threads (this one included). False, having run
    nothing, when another parallel run is using the helpers: the caller runs sequentially."""
    pool = _pool(threads)
    if not pool.busy.acquire(blocking=False):
        return False
    try:
        _Run(steps, graph, env, terminated, failure, short).execute(pool.helpers)
    finally:
        pool.busy.release()
    return True


class _Run:
    """The state of one parallel run, shared by its threads under one condition."""

    def __init__(self, steps, graph: StepGraph, env, terminated, failure, short) -> None:
        self.steps, self.graph, self.env = steps, graph, env
        self.terminated, self.failure, self.short = terminated, failure, short
        self.waits = list(graph.waits)
        self.readers = dict(graph.readers)
        self.ready = list(graph.first)
        heapq.heapify(self.ready)
        self.running = 0
        self.done = 0
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def execute(self, helpers: list[_Helper]) -> None:
        for helper in helpers:
            helper.start(self.work)
        try:
            self.work()
        finally:
            for helper in helpers:
                helper.idle.wait()
        if self.error is not None:
            raise self.error

    def _take(self) -> int | None:
        """Under the condition: pop the next ready step for this thread (None to wait or stop).
        Another waiting thread is woken only while more steps stay ready, so a thread follows
        its own chain without handing each step across (a chain's steps ping-ponged between
        the threads, with a wake-up each, and made sequential graphs 10-35% slower)."""
        if self.error is not None or not self.ready:
            return None
        if self.terminated():
            self.error = RuntimeFailure(
                "the run was terminated: RunOptions.terminate was set to True"
            )
            self.cond.notify_all()
            return None
        self.running += 1
        i = heapq.heappop(self.ready)
        if self.ready:
            self.cond.notify()
        return i

    def _wait_for_step(self) -> int | None:
        """The next ready step, waiting while running steps may make one ready."""
        with self.cond:
            while True:
                if self.error is not None or self.done == self.graph.size:
                    return None
                i = self._take()
                if i is not None or self.error is not None:
                    return i
                if self.running == 0:  # nothing ready and nothing running: all done
                    return None
                self.cond.wait()

    def work(self) -> None:
        steps, env = self.steps, self.env
        i = self._wait_for_step()
        while i is not None:
            fn, ins, outs, _frees = steps[i]
            try:
                results = fn(*[env[s] for s in ins])
                if len(results) < len(outs):  # more is allowed: unrequested optional outputs
                    raise self.short(len(results), len(outs))
                for slot, value in zip(outs, results):
                    env[slot] = value
            except Exception as exc:  # noqa: BLE001 - raised in the caller by execute()
                self._stop(exc if isinstance(exc, TesseraError) else self.failure(fn, ins, exc))
                return
            except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and the like, unchanged
                self._stop(exc)
                return
            with self.cond:
                self.running -= 1
                self.done += 1
                for j in self.graph.next[i]:
                    self.waits[j] -= 1
                    if self.waits[j] == 0:
                        heapq.heappush(self.ready, j)
                for slot in self.graph.reads[i]:
                    left = self.readers[slot] - 1
                    self.readers[slot] = left
                    if left == 0:
                        env[slot] = None
                if self.done == self.graph.size or self.error is not None:
                    self.cond.notify_all()  # wake the waiting threads to finish
                    return
                i = self._take()
                if i is None and not self.running:
                    self.cond.notify_all()
                    return
            if i is None:
                i = self._wait_for_step()

    def _stop(self, error: BaseException) -> None:
        with self.cond:
            self.running -= 1
            if self.error is None:
                self.error = error
            self.cond.notify_all()
