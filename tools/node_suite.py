"""Developer tool: run ONNX backend node tests on the CPU provider and print pass/fail per case.

    python tools/node_suite.py -k conv            # cases whose name contains "conv"
    python tools/node_suite.py -k '^test_add$' -v # regex, with tracebacks

It goes through ``tessera.InferenceSession`` when the session exists, else runs the CPU kernels
directly node by node (no subgraphs, no partitioning).
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
import warnings

import numpy as np


def _compare(expected, actual, rtol, atol) -> None:
    if isinstance(expected, list):
        assert isinstance(actual, list), f"expected a sequence, got {type(actual).__name__}"
        assert len(expected) == len(actual), f"sequence length {len(actual)} != {len(expected)}"
        for e, a in zip(expected, actual):
            _compare(e, a, rtol, atol)
        return
    if expected is None:
        assert actual is None, f"expected None, got {type(actual).__name__}"
        return
    expected = np.asarray(expected)
    assert isinstance(actual, np.ndarray), f"expected ndarray, got {type(actual).__name__}"
    assert expected.dtype == actual.dtype, f"dtype {actual.dtype} != expected {expected.dtype}"
    assert expected.shape == actual.shape, f"shape {actual.shape} != expected {expected.shape}"
    if expected.dtype == object:
        assert expected.tolist() == actual.tolist(), "string values differ"
    elif expected.dtype.kind in "fc" or (
        expected.dtype.itemsize <= 1 and expected.dtype.kind == "V"
    ):
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
    else:
        try:
            np.testing.assert_allclose(
                actual.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol
            )
        except (TypeError, ValueError):
            np.testing.assert_array_equal(actual, expected)


def _run_direct(model, inputs):
    import onnx
    import onnx_ir as ir

    from tessera._graph import make_node_info
    from tessera_cpu.kernels import registry

    model = onnx.shape_inference.infer_shapes(model)
    m = ir.serde.deserialize_model(model)
    opsets = dict(m.opset_imports)
    env = {v.name: v.const_value.numpy() for v in m.graph.initializers.values()}
    for v, x in zip(m.graph.inputs, inputs):
        env[v.name] = x
    for i, node in enumerate(m.graph):
        info = make_node_info(node, i, opsets)
        fn = registry.build(info)
        args = [env[n] if n else None for n in info.inputs]
        outs = fn(*args)
        for name, val in zip(info.outputs, outs):
            if name:
                env[name] = val
    return [env[v.name] for v in m.graph.outputs]


def _run_session(model, inputs):
    import tessera

    sess = tessera.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-k", default="", help="regex on the case name")
    parser.add_argument("-v", action="store_true", help="print tracebacks")
    parser.add_argument("--direct", action="store_true", help="bypass the session")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from onnx.backend.test.loader import load_node_model_tests

    try:
        import tessera

        use_session = hasattr(tessera, "InferenceSession") and not args.direct
    except ImportError:
        use_session = False
    run = _run_session if use_session else _run_direct
    pattern = re.compile(args.k)
    counts = {"passed": 0, "failed": 0}
    for case in sorted(load_node_model_tests(), key=lambda c: c.name):
        if not pattern.search(case.name):
            continue
        for inputs, expected in case.data_sets:
            try:
                outs = run(case.model, list(inputs))
                assert len(outs) == len(expected), f"{len(outs)} outputs, expected {len(expected)}"
                for e, a in zip(expected, outs):
                    _compare(e, a, case.rtol, case.atol)
            except Exception as exc:  # noqa: BLE001 - isolate a failing plugin or case
                counts["failed"] += 1
                print(
                    f"FAIL {case.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                )
                if args.v:
                    traceback.print_exc()
                break
        else:
            counts["passed"] += 1
            if args.v:
                print(f"ok   {case.name}")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
