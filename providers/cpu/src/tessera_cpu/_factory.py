"""The CPU provider: NumPy kernels from a KernelRegistry, intra-op threads from intra_op_num_threads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tessera.provider import ExecutionProvider, Fusion, GraphView, OptionSpec, ProviderFactory
from tessera_cpu import __version__, _arena, _native, _parallel


class CPUExecutionProvider(ExecutionProvider):
    name = "CPUExecutionProvider"
    device = "cpu"
    precision = "fp32"
    supports_concurrent_run = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        from tessera_cpu.kernels import registry  # importing registers every kernel

        self.registry = registry
        self._threads = int(self.options.get("intra_op_num_threads") or 0)
        _parallel.configure(self._threads)
        self._pin_blas = int(self.options.get("blas_threads", 1)) == 1
        # Convolutions split over numba's OpenMP threads cost ~2.5 us per split (_native), so
        # concurrent branches would only compete with them (core API 1.3; older cores ignore it).
        self.efficient_intra_op = (
            self._pin_blas and _parallel.threads() > 1 and _native.available(np.float32)
        )
        if self.options.get("enable_cpu_mem_arena", True):
            _arena.enable()

    def fuse(self, view: GraphView) -> list[Fusion]:
        from tessera_cpu._fusion import fusions

        return fusions(view)

    def on_run_start(self) -> None:
        # The pool is process-wide: a session created later with another thread count resized
        # it, so each run sizes it back to its own session's count.
        _parallel.configure(self._threads)
        if self._pin_blas:
            _parallel.run_started()

    def on_run_end(self) -> None:
        if self._pin_blas:
            _parallel.run_ended()


class CPUProviderFactory(ProviderFactory):
    name = "cpu"
    aliases = ("CPUExecutionProvider",)
    vendor = "Tessera"
    version = __version__
    api_version = "1.1"  # uses ExecutionProvider.fuse and threads_option
    threads_option = "intra_op_num_threads"
    default_priority = -1000
    distribution = "tessera-cpu"
    options = {
        "intra_op_num_threads": OptionSpec(
            int,
            0,
            "threads that split large matrix products; 0 uses every CPU this process may use",
        ),
        "blas_threads": OptionSpec(
            int,
            1,
            "1 pins BLAS to one thread during runs (robust when the machine is shared); "
            "0 leaves BLAS's own threading, faster on an otherwise idle machine",
        ),
        "enable_cpu_mem_arena": OptionSpec(
            bool,
            True,
            "keep freed memory in the process for the next run's arrays (glibc, process-wide); "
            "SessionOptions.enable_cpu_mem_arena sets it",
        ),
    }

    def devices(self) -> list[str]:
        return ["cpu"]

    def create(self, options: Mapping[str, Any]) -> CPUExecutionProvider:
        return CPUExecutionProvider(self.validate_options(options))
