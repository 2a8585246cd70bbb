"""One compiled claim: an OpenVINO CompiledModel and a pool of infer requests to run it from any
thread, recompiling per input shape when dynamic shapes are disabled."""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_SHAPE_CACHE_SIZE = 8


class CompiledPartition:
    """``fn(*inputs) -> outputs`` over one OpenVINO model; safe to call from several threads."""

    def __init__(
        self,
        compile_fn: Callable[[Any], Any],
        ov_model: Any,
        in_dtypes: Sequence[np.dtype],
        feed_positions: Sequence[int],
        out_dtypes: Sequence[np.dtype | None],
        dynamic: bool,
    ) -> None:
        self._compile = compile_fn
        self._model = ov_model
        self._in_dtypes = list(in_dtypes)
        self._out_dtypes = list(out_dtypes)
        self._static = not ov_model.is_dynamic()
        # OpenVINO drops model inputs it does not need; feed the rest by position.
        self._feed_order = list(enumerate(feed_positions))
        # The common case: OpenVINO reads every boundary input, in order; feed a tuple then.
        # (Not a list: OpenVINO's dispatcher builds every input tensor to see whether a list is
        # one input's scalars, which doubles the Python cost of a small call, 14 us to 28 us.)
        self._feeds_in_order = list(feed_positions) == list(range(len(self._in_dtypes)))
        self._per_shape = not dynamic and not self._static
        self._lock = threading.Lock()
        self._by_shape: collections.OrderedDict[tuple, tuple[Any, queue.SimpleQueue]] = (
            collections.OrderedDict()
        )
        if not self._per_shape:
            self._compiled = compile_fn(ov_model)
            self._pool: queue.SimpleQueue = queue.SimpleQueue()

    def _for_shapes(self, shapes: tuple) -> tuple[Any, queue.SimpleQueue]:
        """The model compiled for these input shapes (a bounded LRU cache of them)."""
        with self._lock:
            hit = self._by_shape.get(shapes)
            if hit is not None:
                self._by_shape.move_to_end(shapes)
                return hit
        model = self._model.clone()
        model.reshape({i: list(shapes[j]) for i, j in self._feed_order})
        entry = (self._compile(model), queue.SimpleQueue())
        with self._lock:
            self._by_shape[shapes] = entry
            while len(self._by_shape) > _SHAPE_CACHE_SIZE:
                self._by_shape.popitem(last=False)
        return entry

    def __call__(self, *inputs: Any) -> list[Any]:
        feeds = []
        for value, dtype in zip(inputs, self._in_dtypes):
            array = np.asarray(value)
            if array.dtype != dtype:
                array = array.astype(dtype)
            # share_inputs=True hands OpenVINO the array's memory: it must be C-contiguous.
            # (np.ascontiguousarray would also turn a 0-d array into shape (1,).)
            if not array.flags.c_contiguous:
                array = np.ascontiguousarray(array)
            elif not array.flags.writeable:
                array = _shareable(array)
            feeds.append(array)
        if self._per_shape:
            compiled, pool = self._for_shapes(tuple(a.shape for a in feeds))
        else:
            compiled, pool = self._compiled, self._pool
        try:
            request = pool.get_nowait()
        except queue.Empty:
            request = compiled.create_infer_request()
        try:
            # share_outputs=False: the request's buffers are reused by the next call, so the
            # caller must own its outputs; this is the only copy made.
            by_port = (
                tuple(feeds) if self._feeds_in_order else {i: feeds[j] for i, j in self._feed_order}
            )
            results = request.infer(by_port, share_inputs=True, share_outputs=False).to_tuple()
        finally:
            pool.put(request)
        outputs = []
        for array, dtype in zip(results, self._out_dtypes):
            if dtype is not None and array.dtype != dtype:
                array = array.astype(dtype)
            outputs.append(array)
        return outputs


def _shareable(array: np.ndarray) -> np.ndarray:
    """``array``'s memory in a form OpenVINO shares instead of copying.

    OpenVINO silently copies a read-only input, and the core hands every feed over as a
    read-only view of the caller's array (so kernels cannot write into it). OpenVINO only reads
    its inputs, so a writeable view of the same memory is safe to share; memory that is truly
    read-only (a model constant, a buffer from ``np.frombuffer``) cannot be viewed writeable and
    is copied.
    """
    view = array.view()
    try:
        view.flags.writeable = True
    except ValueError:
        return array.copy()
    return view
