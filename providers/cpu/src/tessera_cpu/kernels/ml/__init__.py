"""ai.onnx.ml kernels (classical machine learning); importing the package registers them."""

from __future__ import annotations

from tessera_cpu.kernels.ml import encoders, linear, preprocessing, svm, trees

__all__ = ["encoders", "linear", "preprocessing", "svm", "trees"]
