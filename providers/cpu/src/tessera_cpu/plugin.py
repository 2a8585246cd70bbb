"""Entry point of the CPU provider: registers its factory with Tessera's plugin registry.

Importing this module is cheap: kernels load only when a session creates the provider.
"""

from __future__ import annotations

from tessera_cpu._factory import CPUProviderFactory
from tessera_registry import hookimpl


@hookimpl
def tessera_provider_factories():
    return [CPUProviderFactory()]
