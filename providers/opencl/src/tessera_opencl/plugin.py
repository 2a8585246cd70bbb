"""Entry point of the OpenCL provider: registers its factory with Tessera's plugin registry.

Importing this module is cheap: pyopencl is imported only when devices are probed or a session
creates the provider.
"""

from __future__ import annotations

from tessera_opencl._factory import OpenCLProviderFactory
from tessera_registry import hookimpl


@hookimpl
def tessera_provider_factories():
    return [OpenCLProviderFactory()]
