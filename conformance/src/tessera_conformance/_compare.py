"""Output comparison with the suite's semantics.

This applies the checks of onnx's ``Runner.assert_similar_outputs`` in the same order: output count,
shape, exact equality for strings, dtype, bfloat16 compared in float32 with two bfloat16 ULPs of
rtol, then ``assert_allclose`` with the case's rtol/atol. One difference: onnx's version recurses
into a sequence by treating its elements as an output list, which calls ``len()`` on 0-d tensors and
cannot compare a sequence of scalars (test_loop16_seq_none). Here a sequence is compared element by
element.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_similar_outputs(
    expected: list[Any], actual: list[Any], rtol: float, atol: float
) -> None:
    np.testing.assert_equal(len(actual), len(expected), err_msg="number of outputs")
    for i, (e, a) in enumerate(zip(expected, actual)):
        _assert_similar(e, a, rtol, atol, f"output {i}")


def _assert_similar(expected: Any, actual: Any, rtol: float, atol: float, where: str) -> None:
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)):
            raise AssertionError(f"{where}: expected a sequence, got {type(actual).__name__}")
        np.testing.assert_equal(len(actual), len(expected), err_msg=f"{where}: sequence length")
        for j, (e, a) in enumerate(zip(expected, actual)):
            _assert_similar(e, a, rtol, atol, f"{where}[{j}]")
        return
    if expected is None:
        if actual is not None:
            raise AssertionError(
                f"{where}: expected an empty optional, got {type(actual).__name__}"
            )
        return
    if not isinstance(actual, np.ndarray):
        raise AssertionError(f"{where}: expected a tensor, got {type(actual).__name__}")
    np.testing.assert_array_equal(
        actual.shape, expected.shape, err_msg=f"{where} has incorrect shape"
    )
    if expected.dtype == object:
        np.testing.assert_array_equal(actual, expected)
        return
    np.testing.assert_equal(actual.dtype, expected.dtype)
    out, ref, out_rtol = actual, expected, rtol
    if out.dtype.name == "bfloat16":
        out_rtol = max(rtol, 2**-6)
        out, ref = out.astype(np.float32), ref.astype(np.float32)
    np.testing.assert_allclose(out, ref, rtol=out_rtol, atol=atol, err_msg=where)
