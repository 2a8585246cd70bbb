"""Tessera's exception types. Names follow onnxruntime's so ORT-style ``except`` clauses read alike."""

from __future__ import annotations


class TesseraError(Exception):
    """Base class of every error Tessera raises on purpose."""


class InvalidArgument(TesseraError, ValueError):
    """A feed, an option or an argument is wrong (name, dtype, rank or dims)."""


class InvalidGraph(TesseraError, ValueError):
    """The model is malformed: undefined values, cycles, missing attributes, bad external data."""


class NoKernelError(TesseraError, NotImplementedError):
    """No provider has a kernel for a node (or the one asked for declines it)."""


class ProviderError(TesseraError, RuntimeError):
    """A provider could not be found, loaded or created."""


class RuntimeFailure(TesseraError, RuntimeError):
    """A kernel failed while running a node; the message names the node and provider."""


# ORT spells the generic failure ``Fail``.
Fail = RuntimeFailure
