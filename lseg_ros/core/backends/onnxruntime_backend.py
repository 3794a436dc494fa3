# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX Runtime backend: the exported image encoder on the CPU, or on a GPU (CUDA provider).

On the CPU the input tensor is handed to ONNX Runtime as a numpy view and the output is
wrapped without a copy.  On a GPU (``onnxruntime-gpu`` with ``CUDAExecutionProvider``)
input and output stay on the device through IOBinding with torch buffers allocated once per
input shape.  ``onnxruntime`` is imported only here.
"""

import logging
import os
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from lseg_ros.core.backends.base import EncoderBackend
from lseg_ros.core.errors import BackendError

LOG = logging.getLogger(__name__)

_NUMPY = {'tensor(float)': np.float32, 'tensor(float16)': np.float16}
_TORCH = {'tensor(float)': torch.float32, 'tensor(float16)': torch.float16}


class OnnxRuntimeBackend(EncoderBackend):
    """The exported image encoder in ONNX Runtime.

    ``precision``: ``auto`` takes the graph's (fp32 or fp16 ONNX); an explicit value must
    match it.  ``threads``: intra-op threads on the CPU (default: ONNX Runtime's).
    ``io_binding``: keep input/output on the GPU (default: on with the CUDA provider).
    """

    name = 'onnxruntime'

    def __init__(self, onnx: Optional[str], device: torch.device, precision: str = 'auto',
                 threads: Optional[int] = None, io_binding: Optional[bool] = None,
                 providers: Optional[list] = None):
        if not onnx:
            raise BackendError('backend onnxruntime needs an ONNX image encoder file (--onnx / '
                               'parameter onnx); export one with tools/export_onnx.py')
        onnx = os.fspath(onnx)
        if not os.path.isfile(onnx):
            raise BackendError(f'ONNX file not found: {onnx}')
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise BackendError(f'onnxruntime is not installed ({error}): pip install '
                               'onnxruntime (CPU) or onnxruntime-gpu') from None
        from lseg_ros.core.backends.artifacts import onnx_graph_types

        device = torch.device(device)
        graph_precision, quantization = onnx_graph_types(onnx)
        if precision in (None, 'auto'):
            precision = graph_precision
        if precision != graph_precision:
            raise BackendError(f'{onnx} is an {graph_precision} graph but precision {precision} '
                               f'was requested: use precision {graph_precision} (or auto), or '
                               f'export an {precision} ONNX')
        super().__init__(device, precision)
        available = ort.get_available_providers()
        if providers is None:
            if device.type == 'cuda':
                if 'CUDAExecutionProvider' not in available:
                    raise BackendError(
                        'onnxruntime has no CUDAExecutionProvider here (available: '
                        f'{", ".join(available)}): install onnxruntime-gpu matching your CUDA, '
                        'or use device cpu')
                providers = [('CUDAExecutionProvider', {'device_id': device.index or 0}),
                             'CPUExecutionProvider']
            else:
                providers = ['CPUExecutionProvider']
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.quantization = quantization
        if 'fp8' in self.quantization:
            # Measured (ONNX Runtime 1.32, CPU): its extended graph optimisations compute
            # float8 Q/DQ graphs wrongly (ResNet101: rel. L2 1.64 to fp32 instead of 0.087).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(onnx, options, providers=providers)
        except Exception as error:  # noqa: B902 - ORT raises its own exception types
            raise BackendError(f'onnxruntime cannot load {onnx}: {error}') from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(f'{onnx}: expected one input and one output (an image encoder '
                               f'from export_onnx), found {len(inputs)} and {len(outputs)}')
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        batch = inputs[0].shape[0] if inputs[0].shape else None
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.input_type, self.output_type = inputs[0].type, outputs[0].type
        if self.input_type not in _NUMPY or self.output_type not in _TORCH:
            raise BackendError(f'{onnx}: unsupported I/O types {self.input_type} -> '
                               f'{self.output_type}')
        self.onnx = onnx
        self.providers = self.session.get_providers()
        self.io_binding = (device.type == 'cuda') if io_binding is None else bool(io_binding)
        if self.io_binding and device.type != 'cuda':
            raise BackendError('IOBinding with torch buffers is for the CUDA provider')
        self._buffers: Dict[Tuple[int, ...], Tuple[torch.Tensor, torch.Tensor, object]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a normalised input."""
        if self.io_binding:
            return self._run_bound(x)
        array = x.detach().to('cpu', _TORCH[self.input_type]).contiguous().numpy()
        try:
            out = self.session.run([self.output_name], {self.input_name: array})[0]
        except Exception as error:  # noqa: B902 - ORT's own exception types
            raise BackendError(f'onnxruntime failed for input {tuple(x.shape)} ({self.onnx}): '
                               f'{error}') from None
        return torch.from_numpy(out).to(self.device)

    def _run_bound(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self._buffers:
            if len(shape) != 4:
                raise BackendError(f'expected a (B, 3, H, W) input, got {shape}')
            inp = torch.empty(shape, dtype=_TORCH[self.input_type], device=self.device)
            out = torch.empty((shape[0], 512, shape[2] // 2, shape[3] // 2),
                              dtype=_TORCH[self.output_type], device=self.device)
            binding = self.session.io_binding()
            index = self.device.index or 0
            binding.bind_input(self.input_name, 'cuda', index, _NUMPY[self.input_type], shape,
                               inp.data_ptr())
            binding.bind_output(self.output_name, 'cuda', index, _NUMPY[self.output_type],
                                tuple(out.shape), out.data_ptr())
            self._buffers[shape] = (inp, out, binding)
        inp, out, binding = self._buffers[shape]
        inp.copy_(x)
        torch.cuda.current_stream(self.device).synchronize()   # ORT runs on its own stream
        try:
            self.session.run_with_iobinding(binding)
        except Exception as error:  # noqa: B902 - ORT's own exception types
            raise BackendError(f'onnxruntime failed for input {shape} ({self.onnx}): '
                               f'{error}') from None
        return out

    def describe(self) -> Dict[str, str]:
        """Return what this backend runs."""
        import onnxruntime as ort

        info = super().describe()
        info.update(onnx=self.onnx, providers=','.join(self.providers),
                    onnxruntime=ort.__version__, io_binding=str(self.io_binding))
        if self.quantization:
            info['quantization'] = f'{self.quantization} Q/DQ'
        return info

    def close(self) -> None:
        """Release the session and buffers."""
        self._buffers.clear()
        self.session = None
