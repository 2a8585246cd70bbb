"""Entry point of the CUDA provider: registers its factory with Tessera's plugin registry.

Importing this module is cheap and never imports CuPy: CuPy is imported only when devices are
probed or a session creates the provider.
"""

from __future__ import annotations

from tessera_cuda._factory import CUDAProviderFactory
from tessera_registry import hookimpl


@hookimpl
def tessera_provider_factories():
    return [CUDAProviderFactory()]
