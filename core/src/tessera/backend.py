"""onnx backend adapter: lets ``onnx.backend.test`` and other onnx tooling drive Tessera."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from tessera._session import InferenceSession


class TesseraRep(BackendRep):
    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._names = [i.name for i in session.get_inputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        if isinstance(inputs, dict):
            feed = inputs
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feed = dict(zip(self._names, inputs))
        return tuple(self.session.run(None, feed))


class TesseraBackend(Backend):
    providers: Sequence[Any] | None = None

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> TesseraRep:
        providers = kwargs.pop("providers", cls.providers)
        return TesseraRep(InferenceSession(model.SerializeToString(), providers=providers))

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = TesseraBackend.prepare
run_model = TesseraBackend.run_model
supports_device = TesseraBackend.supports_device
is_compatible = TesseraBackend.is_compatible
