"""`tessera demo`: a small CNN built on the fly, run on the CPU provider."""

from __future__ import annotations

import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_demo_model(seed: int = 0) -> onnx.ModelProto:
    """Conv-BN-Relu-MaxPool, a depthwise Conv, GlobalAveragePool, Flatten, Gemm, Softmax."""
    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int, scale: float = 0.1) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    inits = [
        init("conv1_w", 16, 3, 3, 3),
        init("conv1_b", 16),
        numpy_helper.from_array(np.ones(16, np.float32), "bn_scale"),
        init("bn_bias", 16),
        numpy_helper.from_array(np.zeros(16, np.float32), "bn_mean"),
        numpy_helper.from_array(np.ones(16, np.float32), "bn_var"),
        init("dw_w", 16, 1, 3, 3),
        init("fc_w", 10, 16),
        init("fc_b", 10),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["image", "conv1_w", "conv1_b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]
        ),
        helper.make_node(
            "BatchNormalization",
            ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["b1"],
            name="bn1",
        ),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node(
            "Conv", ["p1", "dw_w"], ["c2"], name="depthwise", group=16, pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tessera_demo_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tessera-demo"
    )
    onnx.checker.check_model(model)
    return model


def run_demo(repeat: int = 50) -> int:
    import tessera

    model = build_demo_model()
    start = time.perf_counter()
    session = tessera.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    created_ms = (time.perf_counter() - start) * 1e3
    image = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    (probs,) = session.run(None, {"image": image})

    print("Tessera demo: a small CNN (Conv, BatchNormalization, depthwise Conv, Gemm, Softmax)")
    print(f"providers: {', '.join(session.get_providers())}")
    print(f"inputs:  {', '.join(f'{i.name} {i.type} {i.shape}' for i in session.get_inputs())}")
    print(f"outputs: {', '.join(f'{o.name} {o.type} {o.shape}' for o in session.get_outputs())}")
    print(f"\nprobabilities for one 3x32x32 image (sum {probs.sum():.4f}):")
    print("  " + np.array2string(probs[0], precision=4, separator=", ", max_line_width=120))
    print(f"  predicted class: {int(probs[0].argmax())}")
    print("\npartition:")
    print("  " + session.explain().replace("\n", "\n  "))
    for node, provider in session.assignments.items():
        print(f"    {node:12} -> {provider}")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(None, {"image": image})
        times.append(time.perf_counter() - t0)
    print(
        f"\ntiming: session created in {created_ms:.1f} ms; "
        f"median run {np.median(times) * 1e3:.3f} ms over {repeat} runs (batch 1)"
    )
    try:
        import onnxruntime as ort
    except ImportError:
        return 0
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = ref.run(None, {"image": image})
    print(f"max |tessera - onnxruntime| = {np.abs(expected - probs).max():.2e}")
    return 0
