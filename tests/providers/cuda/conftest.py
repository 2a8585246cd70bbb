"""The CUDA tests' fixture: the host-module testing aid, registered only for the test using it."""

from __future__ import annotations

import pytest

import tessera


@pytest.fixture
def host_provider():
    """Registers the NumPy-backed CUDA provider (a testing aid) and yields its name."""
    from tessera_cuda.testing import NAME, HostTestPlugin

    tessera.register_plugin(HostTestPlugin)
    yield NAME
    tessera.unregister_plugin(HostTestPlugin)
