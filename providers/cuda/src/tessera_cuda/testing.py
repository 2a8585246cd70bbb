"""TESTING AID: the CUDA provider's kernels on NumPy ("host-module mode"), for machines without a GPU.

The factory here runs the very kernel code of the CUDA provider with ``xp = numpy`` (fused chains
are evaluated from the same op table instead of compiled CUDA C). It is never registered by the
``tessera.providers`` entry point, so discovery never offers it and no normal session can select
it; only tests, and the command below, register it explicitly::

    python -m tessera_cuda.testing conformance --strict --json cuda-host.json

It proves the kernels' logic against the ONNX conformance suite; it says nothing about CuPy,
CUDA C or speed, which ``providers/cuda/gpu_check.sh`` checks on a GPU.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tessera.provider import ExecutionProvider
from tessera_cuda import __version__
from tessera_cuda._factory import CUDAProviderFactory
from tessera_registry import hookimpl

NAME = "cuda_host_test"


class CUDAHostTestFactory(CUDAProviderFactory):
    """The CUDA provider on NumPy. Not auto-selected; named ``cuda_host_test`` only."""

    name = NAME
    aliases = ()
    vendor = "Tessera (testing aid)"
    version = __version__
    api_version = "1.0"
    default_priority = -2000  # below CPU: it never wins a claim unless asked for by name
    distribution = "tessera-cuda"

    def devices(self) -> list[str]:
        return ["cuda-host-test (NumPy; testing aid, not a GPU)"]

    def auto_select(self) -> bool:
        return False

    def create(self, options: Mapping[str, Any]) -> ExecutionProvider:
        from tessera_cuda._backend import HostBackend
        from tessera_cuda._provider import CUDAExecutionProvider

        resolved = self.validate_options(options)
        return CUDAExecutionProvider(resolved, HostBackend(resolved))


class HostTestPlugin:
    """Register with ``tessera.register_plugin(HostTestPlugin)``."""

    @staticmethod
    @hookimpl
    def tessera_provider_factories():
        return [CUDAHostTestFactory()]


def main(argv: Sequence[str] | None = None) -> int:
    """``tessera`` CLI with the host-module provider registered, e.g. ``conformance --strict``;
    ``--provider cuda_host_test`` is added when no provider is named."""
    import tessera
    from tessera.cli import main as tessera_main

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "conformance" and "--provider" not in args:
        args += ["--provider", NAME]
    tessera.register_plugin(HostTestPlugin)
    return tessera_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
