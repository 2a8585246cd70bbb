"""Entry point of the OpenVINO provider: registers its factory with Tessera's plugin registry.

Importing this module is cheap: openvino itself is imported only when devices are probed or a
session creates the provider.
"""

from __future__ import annotations

from tessera_openvino._factory import OpenVINOProviderFactory
from tessera_registry import hookimpl


@hookimpl
def tessera_provider_factories():
    return [OpenVINOProviderFactory()]
