"""Known provider packages, so `tessera providers --all` can say what is available to install."""

from __future__ import annotations

CATALOG: list[dict] = [
    {
        "name": "cpu",
        "distribution": "tessera-cpu",
        "hardware": "any CPU (NumPy)",
        "install": "pip install tessera-cpu",
    },
    {
        "name": "cuda",
        "distribution": "tessera-cuda",
        "hardware": "NVIDIA GPU with CUDA 12/13 (CuPy)",
        "install": "pip install 'tessera[cuda]'",
    },
    {
        "name": "opencl",
        "distribution": "tessera-opencl",
        "hardware": "any OpenCL 1.2+ device (pyopencl)",
        "install": "pip install 'tessera[opencl]'",
    },
    {
        "name": "openvino",
        "distribution": "tessera-openvino",
        "hardware": "Intel CPU/GPU/NPU (OpenVINO)",
        "install": "pip install 'tessera[openvino]'",
    },
]
