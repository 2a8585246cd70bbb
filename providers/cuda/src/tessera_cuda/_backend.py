"""The array module a CUDA provider computes with: CuPy on a GPU, or NumPy as a testing aid.

Every kernel is written against ``be.xp`` (the NumPy-compatible module) plus the few methods
here, so the same kernel code runs on CuPy in production and on NumPy in the host-module test
mode, where it is checked against the ONNX conformance suite on machines without a GPU. Only
what NumPy cannot express the same way lives here: device transfers, reading small tensors on
the host, TF32 control for matrix products, and compiling fused elementwise CUDA C.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# CuPy's cuBLAS compute type is process-wide state: set it per call under one lock, so a
# session that allows TF32 never leaks it into one that does not.
_COMPUTE_TYPE_LOCK = threading.Lock()


class Backend:
    """What kernels may use besides ``xp``. Subclasses: :class:`CupyBackend`, :class:`HostBackend`."""

    xp: Any = np
    name = ""
    device = "cpu"
    allow_tf32 = False

    def asarray(self, value: Any) -> Any:
        """A value as an array of this backend (uploads host arrays on a GPU)."""
        raise NotImplementedError("a Backend must implement asarray(value)")

    def host(self, value: Any) -> np.ndarray:
        """A value as a NumPy array: shape inputs, axes, pads. A synchronising read on a GPU."""
        raise NotImplementedError("a Backend must implement host(value)")

    def adopt(self, value: Any) -> Any | None:
        """A device array made elsewhere, ready to be read here; None if it cannot be."""
        return None

    def matmul(self, a: Any, b: Any) -> Any:
        return self.xp.matmul(a, b)

    def erf(self, x: Any) -> Any:
        raise NotImplementedError("a Backend must implement erf(x)")

    def fused(self, source: FusedSource) -> Callable[..., Any]:
        """A callable computing a fused elementwise chain over broadcast inputs."""
        raise NotImplementedError("a Backend must implement fused(source)")

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """The device and stream kernels run under (entered around each run)."""
        yield


class FusedSource:
    """A fused elementwise chain as both CUDA C and a host evaluation of the same op table.

    ``in_params``/``out_params``/``body`` are what ``cupy.ElementwiseKernel`` takes; ``host(be,
    *inputs)`` evaluates the chain step by step with the backend's array functions, for the
    host-module test mode and as the reference the CUDA C is checked against on a GPU.
    """

    def __init__(
        self,
        name: str,
        in_params: str,
        out_params: str,
        body: str,
        host: Callable[..., Any],
        out_dtype: np.dtype,
    ) -> None:
        self.name, self.in_params, self.out_params, self.body = name, in_params, out_params, body
        self.host = host
        self.out_dtype = np.dtype(out_dtype)


class HostBackend(Backend):
    """NumPy in place of CuPy: a TESTING AID, never selected by discovery (see testing.py).

    It exists so the kernels' logic is verified against the conformance suite without a GPU.
    """

    xp = np
    name = "numpy (host-module test mode)"
    device = "cuda-host-test"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.allow_tf32 = bool((options or {}).get("allow_tf32", False))

    def asarray(self, value: Any) -> Any:
        return np.asarray(value)

    def host(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def adopt(self, value: Any) -> Any | None:
        return value if isinstance(value, np.ndarray) else None

    def erf(self, x: Any) -> Any:
        import math

        flat = np.fromiter((math.erf(v) for v in np.asarray(x, np.float64).ravel()), np.float64)
        return flat.reshape(np.shape(x)).astype(np.asarray(x).dtype, copy=False)

    def fused(self, source: FusedSource) -> Callable[..., Any]:
        host = source.host

        def run(*inputs: Any) -> Any:
            with np.errstate(all="ignore"):
                return host(self, *inputs)

        return run


class CupyBackend(Backend):
    """CuPy on one device, with one stream per provider instance and an optional pool limit."""

    name = "cupy"

    def __init__(self, options: Mapping[str, Any]) -> None:
        import cupy

        self.xp = cupy
        self.device_id = int(options.get("device_id", 0))
        self.allow_tf32 = bool(options.get("allow_tf32", False))
        self.device = f"cuda:{self.device_id}"
        self._device = cupy.cuda.Device(self.device_id)
        with self._device:
            # A blocking stream: it orders after the legacy default stream, which CuPy uses
            # for the uploads of constants made at session creation.
            self.stream = cupy.cuda.Stream(non_blocking=False)
            limit = int(options.get("memory_limit", 0) or 0)
            if limit:
                cupy.get_default_memory_pool().set_limit(size=limit)
        self._kernels: dict[str, Any] = {}
        self._lock = threading.Lock()
        from cupy._core import _routines_linalg as linalg  # cuBLAS compute-type switch

        self._linalg = linalg

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        with self._device, self.stream:
            yield

    def asarray(self, value: Any) -> Any:
        if isinstance(value, self.xp.ndarray):
            return value
        with self._device, self.stream:
            return self.xp.asarray(value)

    def host(self, value: Any) -> np.ndarray:
        if isinstance(value, self.xp.ndarray):
            return self.xp.asnumpy(value, stream=self.stream)
        return np.asarray(value)

    def adopt(self, value: Any) -> Any | None:
        """A CuPy array on this device, read in place once the device is idle: it may have
        been written on another session's stream, which this provider's stream does not follow."""
        if not isinstance(value, self.xp.ndarray) or value.device.id != self.device_id:
            return None
        self._device.synchronize()
        return value

    def matmul(self, a: Any, b: Any) -> Any:
        if a.dtype != np.float32:
            return self.xp.matmul(a, b)
        linalg = self._linalg
        wanted = linalg.COMPUTE_TYPE_TF32 if self.allow_tf32 else linalg.COMPUTE_TYPE_FP32
        with _COMPUTE_TYPE_LOCK:
            before = linalg.get_compute_type(np.float32)
            linalg.set_compute_type(np.float32, wanted)
            try:
                return self.xp.matmul(a, b)
            finally:
                linalg.set_compute_type(np.float32, before)

    def erf(self, x: Any) -> Any:
        from cupyx.scipy import special

        return special.erf(x)

    def fused(self, source: FusedSource) -> Callable[..., Any]:
        key = f"{source.in_params}|{source.out_params}|{source.body}"
        with self._lock:
            kern = self._kernels.get(key)
            if kern is None:
                kern = self._kernels[key] = self.xp.ElementwiseKernel(
                    source.in_params, source.out_params, source.body, source.name
                )
        return kern


def broadcast_shape(shapes: Sequence[Sequence[int]]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
