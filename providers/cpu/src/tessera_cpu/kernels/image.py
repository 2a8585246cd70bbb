"""ImageDecoder through Pillow. Registered only when Pillow is importable, so without it the
capability query declines the op honestly (install ``tessera-cpu[image]``)."""

from __future__ import annotations

import importlib.util
import io

import numpy as np

from tessera.provider import NodeInfo
from tessera_cpu.kernels._registry import registry

_MODES = {"RGB": "RGB", "BGR": "RGB", "Grayscale": "L"}

if importlib.util.find_spec("PIL") is not None:

    @registry.kernel("ImageDecoder", since=20, types={"T1": ["tensor(uint8)"]})
    def image_decoder(node: NodeInfo):
        from PIL import Image, UnidentifiedImageError

        pixel_format = node.attr("pixel_format", "RGB")
        if pixel_format not in _MODES:
            raise ValueError(
                f"{node.describe()}: pixel_format {pixel_format!r} is not one of {sorted(_MODES)}"
            )
        mode = _MODES[pixel_format]

        def compute(encoded):
            try:
                with Image.open(io.BytesIO(np.ascontiguousarray(encoded).tobytes())) as img:
                    pixels = np.asarray(img.convert(mode))
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
                raise ValueError(f"{node.describe()}: cannot decode the image: {exc}") from None
            if mode == "L":
                pixels = pixels[..., None]
            elif pixel_format == "BGR":
                pixels = pixels[..., ::-1]
            return (np.ascontiguousarray(pixels, dtype=np.uint8),)

        return compute
