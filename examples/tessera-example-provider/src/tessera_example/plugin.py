"""Entry point of the example provider: hands its factory to Tessera's plugin registry.

Tessera imports this module during discovery, so it imports nothing heavy: the kernels load only
when a session creates the provider.
"""

from __future__ import annotations

from tessera_example._factory import ExampleProviderFactory
from tessera_registry import hookimpl


@hookimpl
def tessera_provider_factories():
    return [ExampleProviderFactory()]
