"""IOBinding and OrtValue: ORT's way to bind inputs and outputs to buffers before a run."""

from __future__ import annotations

from typing import Any

import numpy as np

from tessera._errors import InvalidArgument
from tessera._types import value_type_string


class OrtValue:
    """A value with a device, as onnxruntime's OrtValue. Host values wrap a NumPy array."""

    def __init__(self, value: Any, device_type: str = "cpu", device_id: int = 0) -> None:
        self._value = value
        self._device = (device_type.lower(), int(device_id))

    @classmethod
    def ortvalue_from_numpy(
        cls, array: np.ndarray, device_type: str = "cpu", device_id: int = 0
    ) -> OrtValue:
        if device_type.lower() != "cpu":
            raise InvalidArgument(
                f"OrtValue on device {device_type!r} needs that device's provider; "
                "only 'cpu' values can be made from NumPy here"
            )
        return cls(np.asarray(array), device_type, device_id)

    def numpy(self) -> np.ndarray:
        return self._value if isinstance(self._value, np.ndarray) else np.asarray(self._value)

    def shape(self) -> list[int]:
        return list(np.shape(self._value))

    def data_type(self) -> str:
        return value_type_string(self._value)

    def device_name(self) -> str:
        return self._device[0]

    def is_tensor(self) -> bool:
        return isinstance(self._value, np.ndarray)


class IOBinding:
    """Bind inputs and outputs by name, run, then read outputs (ORT's ``session.io_binding()``)."""

    def __init__(self, session) -> None:
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._outputs: list[str] = []
        self._output_buffers: dict[str, np.ndarray] = {}
        self._results: list[OrtValue] = []

    def bind_cpu_input(self, name: str, arr: np.ndarray) -> None:
        self._inputs[name] = arr

    def bind_ortvalue_input(self, name: str, value: OrtValue) -> None:
        self._inputs[name] = value.numpy()

    def bind_input(
        self,
        name: str,
        device_type: str,
        device_id: int,
        element_type: Any,
        shape: Any,
        buffer_ptr: Any,
    ) -> None:
        raise InvalidArgument(
            "bind_input with a raw buffer pointer needs a device provider that accepts pointers; "
            "use bind_cpu_input(name, numpy_array) for host data"
        )

    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Any = None,
        buffer_ptr: Any = None,
    ) -> None:
        if device_type.lower() != "cpu":
            raise InvalidArgument(
                f"output {name!r}: binding to device {device_type!r} needs a provider for it"
            )
        if buffer_ptr is not None:
            raise InvalidArgument(
                f"output {name!r}: binding a raw buffer pointer is not supported on cpu; "
                "use bind_ortvalue_output or omit the buffer"
            )
        if name not in self._outputs:
            self._outputs.append(name)

    def bind_ortvalue_output(self, name: str, value: OrtValue) -> None:
        self._output_buffers[name] = value.numpy()
        if name not in self._outputs:
            self._outputs.append(name)

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()
        self._output_buffers.clear()

    def synchronize_inputs(self) -> None:
        """Host bindings need no synchronisation."""

    def synchronize_outputs(self) -> None:
        """Host bindings need no synchronisation."""

    def _run(self, run_options) -> None:
        names = self._outputs or [o.name for o in self._session.get_outputs()]
        results = self._session.run(names, self._inputs, run_options)
        for name, value in zip(names, results):
            buf = self._output_buffers.get(name)
            if buf is not None:
                if buf.shape != np.shape(value) or buf.dtype != value.dtype:
                    raise InvalidArgument(
                        f"output {name!r} is {value.dtype}{list(value.shape)}, the bound OrtValue is "
                        f"{buf.dtype}{list(buf.shape)}"
                    )
                np.copyto(buf, value)
        self._results = [OrtValue(v) for v in results]

    def get_outputs(self) -> list[OrtValue]:
        return list(self._results)

    def copy_outputs_to_cpu(self) -> list[Any]:
        return [v.numpy() if v.is_tensor() else v._value for v in self._results]
