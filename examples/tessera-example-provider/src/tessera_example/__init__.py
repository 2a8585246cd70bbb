"""An example third-party Tessera provider, laid out as a vendor's own package would be."""

from __future__ import annotations

__version__ = "0.1.0"
