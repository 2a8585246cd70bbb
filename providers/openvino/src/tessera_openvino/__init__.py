"""Tessera's OpenVINO execution provider: claims the subgraphs OpenVINO supports and compiles them."""

from __future__ import annotations

__version__ = "0.1.0"
