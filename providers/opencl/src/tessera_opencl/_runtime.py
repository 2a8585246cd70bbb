"""One OpenCL device as the provider sees it: context, queue, program cache and strided launches.

Every device tensor is a ``pyopencl.array.Array``, C-contiguous. Kernels address their inputs
through (offset, strides) views, so broadcasting, Transpose, Slice and Expand need no extra copies.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

CTYPES: dict[np.dtype, str] = {
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.int8): "char",
    np.dtype(np.uint8): "uchar",
    np.dtype(np.int16): "short",
    np.dtype(np.uint16): "ushort",
    np.dtype(np.int32): "int",
    np.dtype(np.uint32): "uint",
    np.dtype(np.int64): "long",
    np.dtype(np.uint64): "ulong",
    np.dtype(np.bool_): "uchar",
}

# Programs are shared by every session in the process: building is the slow part (PoCL runs a full
# LLVM compile), so one context per device keeps the cache valid across providers.
_CONTEXTS: dict[int, cl.Context] = {}
_PROGRAMS: dict[tuple[str, int], cl.Program] = {}
_LOCK = threading.Lock()

View = tuple[Any, int, Sequence[int]]  # (array, element offset, element strides)


def ctype(dtype: Any) -> str:
    return CTYPES[np.dtype(dtype)]


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return tuple(reversed(strides))


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Strides reading an array of ``shape`` broadcast to ``out_shape`` (0 on broadcast dims)."""
    own = contiguous_strides(shape)
    pad = len(out_shape) - len(shape)
    return tuple(
        0 if i < pad or shape[i - pad] == 1 else own[i - pad] for i in range(len(out_shape))
    )


def _coalesce(shape: Sequence[int], views: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge adjacent dims every view walks contiguously, so a few compiled
    ranks serve every shape."""
    dims = [i for i, d in enumerate(shape) if d != 1]
    out_shape = [int(shape[i]) for i in dims]
    out_views = [[v[i] for i in dims] for v in views]
    i = len(out_shape) - 2
    while i >= 0:
        if all(v[i] == v[i + 1] * out_shape[i + 1] for v in out_views):
            out_shape[i] *= out_shape[i + 1]
            del out_shape[i + 1]
            for v in out_views:
                v[i] = v[i + 1]
                del v[i + 1]
        i -= 1
    return out_shape, out_views


class Runtime:
    """The device, its shared context, this provider's queue, and cached programs and metadata."""

    def __init__(self, device: cl.Device) -> None:
        self.device = device
        with _LOCK:
            ctx = _CONTEXTS.get(device.int_ptr)
            if ctx is None:
                ctx = _CONTEXTS[device.int_ptr] = cl.Context([device])
        self.context = ctx
        self.queue = cl.CommandQueue(ctx, device)
        ext = device.extensions.split()
        self.fp64 = "cl_khr_fp64" in ext or bool(getattr(device, "double_fp_config", 0))
        self.fp16 = "cl_khr_fp16" in ext
        self._kernels: dict[tuple[str, str], cl.Kernel] = {}
        self._meta: dict[tuple[int, ...], cl.Buffer] = {}
        self._launch = threading.Lock()
        self.launches = 0

    # -- programs -------------------------------------------------------------------------------
    def kernel(self, source: str, name: str = "k") -> cl.Kernel:
        found = self._kernels.get((source, name))
        if found is not None:
            return found
        key = (source, self.device.int_ptr)
        with _LOCK:
            program = _PROGRAMS.get(key)
            if program is None:
                header = "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" if self.fp64 else ""
                with warnings.catch_warnings():
                    # PoCL's build log has benign notes (unused values, sign compares).
                    warnings.simplefilter("ignore", cl.CompilerWarning)
                    program = cl.Program(self.context, header + source).build()
                _PROGRAMS[key] = program
        kern = self._kernels[(source, name)] = cl.Kernel(program, name)
        return kern

    def launch(self, kern: cl.Kernel, global_size: Sequence[int], *args: Any, local=None) -> None:
        if any(int(g) == 0 for g in global_size):
            return
        with self._launch:  # set_args + enqueue on a shared Kernel object must not interleave
            kern(self.queue, tuple(int(g) for g in global_size), local, *args)
            self.launches += 1

    # -- memory ---------------------------------------------------------------------------------
    def empty(self, shape: Sequence[int], dtype: Any) -> cla.Array:
        return cla.empty(self.queue, tuple(int(d) for d in shape), np.dtype(dtype))

    def upload(self, value: Any) -> cla.Array:
        host = np.array(value, order="C", copy=None)  # ascontiguousarray would make 0-d 1-d
        out = self.empty(host.shape, host.dtype)
        if host.size:
            out.set(host, queue=self.queue)
        return out

    def download(self, value: cla.Array) -> np.ndarray:
        if value.size == 0:
            return np.empty(value.shape, value.dtype)
        return value.get(queue=self.queue)

    def meta(self, values: Sequence[int]) -> cl.Buffer:
        """A read-only int64 buffer of kernel metadata (shapes, strides), cached by value."""
        key = tuple(int(v) for v in values) or (0,)
        buf = self._meta.get(key)
        if buf is None:
            if len(self._meta) > 4096:  # dynamic shapes: keep the cache bounded
                self._meta.clear()
            host = np.asarray(key, dtype=np.int64)
            flags = cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR
            buf = self._meta[key] = cl.Buffer(self.context, flags, hostbuf=host)
        return buf

    def as_device(self, value: Any) -> cla.Array:
        return value if isinstance(value, cla.Array) else self.upload(value)

    def host(self, value: Any) -> np.ndarray:
        """A small tensor's values on the host (shape inputs, axes, pads): a synchronising read."""
        return self.download(value) if isinstance(value, cla.Array) else np.asarray(value)

    # -- strided elementwise --------------------------------------------------------------------
    def strided(
        self,
        expr: str,
        out_dtype: Any,
        shape: Sequence[int],
        views: Sequence[View],
        out: cla.Array | None = None,
        out_view: tuple[int, Sequence[int]] | None = None,
        preamble: str = "",
        prelude: str = "",
        body: Sequence[str] = (),
    ) -> cla.Array:
        """``out[i] = expr(a, b, c, ...)`` over ``shape``, input k read through view k.

        The expression names inputs a, b, c, ... and may use the macros TA, TB, ... (input C
        types) and TO (output C type). ``out_view`` writes into part of ``out`` (Concat, Split).
        ``preamble`` is code after the type macros; ``prelude`` is code before them, free to
        define its own; ``body`` are statements between the loads and the store (a fused
        chain's intermediate values).
        """
        if out is None:
            out = self.empty(shape, out_dtype)
        n = int(np.prod(shape, dtype=np.int64))
        if n == 0:
            return out
        o_off, o_str = out_view if out_view is not None else (0, contiguous_strides(shape))
        all_views = [list(o_str)] + [list(v[2]) for v in views]
        rshape, rviews = _coalesce(shape, all_views)
        rank = len(rshape)
        names = "abcdefghijklmnop"
        tnames = [ctype(v[0].dtype) for v in views]
        src = [prelude] if prelude else []
        src.append(f"#define TO {ctype(out.dtype)}")
        src += [f"#define T{names[k].upper()} {t}" for k, t in enumerate(tnames)]
        src.append(preamble)
        params = ["__global TO* out"]
        params += [f"__global const T{names[k].upper()}* in{k}" for k in range(len(views))]
        params.append("__global const long* m")
        src.append(f"__kernel void k({', '.join(params)}) {{")
        src.append("  long r = get_global_id(0);")
        src.append(f"  long io = m[{rank}];")
        width = rank + 1
        for k in range(len(views)):
            src.append(f"  long i{k} = m[{rank + (k + 1) * width}];")
        if rank:
            src.append(f"  for (int d = {rank - 1}; d >= 0; --d) {{")
            src.append("    long c = r % m[d]; r /= m[d];")
            src.append(f"    io += c * m[{rank + 1} + d];")
            for k in range(len(views)):
                src.append(f"    i{k} += c * m[{rank + 1 + (k + 1) * width} + d];")
            src.append("  }")
        for k in range(len(views)):
            src.append(f"  T{names[k].upper()} {names[k]} = in{k}[i{k}];")
        src.extend(body)
        src.append(f"  out[io] = (TO)({expr});")
        src.append("}")
        kern = self.kernel("\n".join(src))
        meta = list(rshape) + [o_off + out.offset // out.dtype.itemsize] + rviews[0]
        for k, (arr, off, _) in enumerate(views):
            meta += [off + arr.offset // arr.dtype.itemsize] + rviews[k + 1]
        args = [out.base_data] + [v[0].base_data for v in views] + [self.meta(meta)]
        self.launch(kern, (n,), *args)
        return out


def view_of(arr: cla.Array, out_shape: Sequence[int] | None = None) -> View:
    """A contiguous array read as itself, or broadcast to ``out_shape``."""
    if out_shape is None:
        return (arr, 0, contiguous_strides(arr.shape))
    return (arr, 0, broadcast_strides(arr.shape, out_shape))
