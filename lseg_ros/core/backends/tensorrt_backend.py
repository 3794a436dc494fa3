# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""TensorRT backend: a serialized engine run from Python with a low-overhead hot path.

Load: the engine's sidecar (``<engine>.json``, written by ``build_engine``) is checked
against this machine first (TensorRT module and version, GPU compute capability, requested
precision, ONNX sha256 when the ONNX file is given, engine file hash); any mismatch raises
:class:`EngineMismatchError` saying what differs, where, and how to rebuild.  TensorRT-RTX
plans are also checked with ``Runtime.get_engine_validity`` before deserialisation.

Run (:class:`EngineRunner` + CUDA): I/O names, modes and dtypes are read once; torch CUDA
buffers are allocated once per input shape; ``set_input_shape`` and
``set_tensor_address`` are called only when the shape changes; ``execute_async_v3`` runs
on the backend's own ``torch.cuda.Stream`` (ordered after the caller's stream and back);
optionally one CUDA graph per input shape is captured around ``execute_async_v3`` and
replayed, with a fallback to plain enqueue when capture fails.  With TensorRT-RTX the
runtime's own CUDA-graph strategy is used instead of a manual capture.

Works with ``tensorrt`` >= 10 (10.3 on JetPack 6), TensorRT 11 and ``tensorrt_rtx``.
"""

import hashlib
import logging
import os
from typing import Callable, Dict, Optional, Tuple

import torch

from lseg_ros.core.backends.artifacts import (check_metadata, engine_validity, EngineBuildError,
                                              gpu_identity, import_tensorrt, is_rtx, make_logger,
                                              module_name, onnx_sha256, read_metadata,
                                              tensorrt_modules_installed)
from lseg_ros.core.backends.base import EncoderBackend
from lseg_ros.core.errors import BackendError, EngineMismatchError

LOG = logging.getLogger(__name__)

#: TensorRT DataType member name -> torch dtype.
DTYPES = {'FLOAT': torch.float32, 'HALF': torch.float16, 'BF16': torch.bfloat16,
          'INT32': torch.int32, 'INT64': torch.int64, 'INT8': torch.int8,
          'UINT8': torch.uint8, 'BOOL': torch.bool}
ALIGNMENT = 256


def tensorrt_available() -> bool:
    """Whether a TensorRT Python module (``tensorrt`` or ``tensorrt_rtx``) is installed."""
    return bool(tensorrt_modules_installed())


def torch_dtype(trt, dtype) -> torch.dtype:
    """Map a TensorRT ``DataType`` to a torch dtype."""
    for name, value in DTYPES.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return value
    raise BackendError(f'unsupported TensorRT tensor type {dtype}')


class _ShapeEntry:
    """Buffers (and an optional CUDA graph) for one input shape."""

    def __init__(self, buffers: Dict[str, torch.Tensor]):
        self.buffers = buffers
        self.graph = None          # None: not captured yet; False: capture failed
        self.replayable = False    # the context was last enqueued at this shape


class EngineRunner:
    """Device-agnostic part of running an engine: I/O, per-shape buffers, context state.

    ``allocate(shape, dtype)`` returns a buffer (torch CUDA tensors in the backend); the
    runner changes the context's input shape and tensor addresses only when the input
    shape differs from the previous call.
    """

    def __init__(self, trt, engine, context, allocate: Callable):
        self.trt = trt
        self.engine = engine
        self.context = context
        self.allocate = allocate
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        mode_input = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == mode_input]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise BackendError(f'expected an image-encoder engine with one input and one '
                               f'output, found inputs {self.inputs} and outputs {self.outputs}')
        self.input, self.output = self.inputs[0], self.outputs[0]
        self.dtypes = {n: torch_dtype(trt, engine.get_tensor_dtype(n)) for n in names}
        profile = engine.get_tensor_profile_shape(self.input, 0)
        self.profile = tuple(tuple(int(d) for d in shape) for shape in profile)
        self.entries: Dict[Tuple[int, ...], _ShapeEntry] = {}
        self.current: Optional[Tuple[int, ...]] = None
        self.state_changes = 0

    def check_shape(self, shape: Tuple[int, ...]) -> None:
        """Raise :class:`BackendError` when ``shape`` is outside the engine's profile."""
        low, _, high = self.profile
        if len(shape) != len(low) or any(not a <= s <= b for a, s, b in zip(low, shape, high)):
            raise BackendError(
                f'input shape {"x".join(map(str, shape))} is outside the engine profile '
                f'min {"x".join(map(str, low))} .. max {"x".join(map(str, high))}: rebuild '
                'the engine with --min-shape/--max-shape covering it, or change input_size')

    def select(self, shape: Tuple[int, ...]) -> _ShapeEntry:
        """Make ``shape`` current (TensorRT state changes only on a change) and return it."""
        if shape == self.current:
            return self.entries[shape]
        self.check_shape(shape)
        if not self.context.set_input_shape(self.input, shape):
            raise BackendError(f'TensorRT refused input shape {shape}')
        entry = self.entries.get(shape)
        if entry is None:
            buffers = {self.input: self.allocate(shape, self.dtypes[self.input])}
            out_shape = tuple(int(d) for d in self.context.get_tensor_shape(self.output))
            if any(d < 0 for d in out_shape):
                raise BackendError(f'TensorRT could not infer the output shape for {shape}')
            buffers[self.output] = self.allocate(out_shape, self.dtypes[self.output])
            for name, tensor in buffers.items():
                if tensor.is_cuda and tensor.data_ptr() % ALIGNMENT:
                    raise BackendError(f'buffer of {name} is not {ALIGNMENT}-byte aligned')
            entry = self.entries[shape] = _ShapeEntry(buffers)
        for name, tensor in entry.buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        if self.current is not None and self.current in self.entries:
            self.entries[self.current].replayable = False
        self.current = shape
        self.state_changes += 1
        return entry

    def enqueue(self, stream_handle: int) -> None:
        """``execute_async_v3`` on a stream; raises when TensorRT refuses."""
        if not self.context.execute_async_v3(stream_handle):
            raise BackendError('TensorRT execute_async_v3 failed (see the TensorRT log)')


class TensorRTBackend(EncoderBackend):
    """A TensorRT engine built by ``build_engine``.

    ``precision``: ``auto`` accepts the engine's; ``fp16``/``fp32`` must match it.
    ``cuda_graph``: capture one CUDA graph per input shape (TensorRT-RTX: the runtime's
    whole-graph capture).  ``onnx``: when given, the engine must come from this file.
    ``check``: verify the sidecar metadata (leave on; off only for engines you built).
    ``trt``: an imported TensorRT module (tests inject a stand-in).
    """

    name = 'tensorrt'

    def __init__(self, engine: Optional[str], device: torch.device, precision: str = 'auto',
                 cuda_graph: bool = True, onnx: Optional[str] = None, check: bool = True,
                 verify_hash: bool = True, trt=None, runtime_cache: bool = True):
        if not engine:
            raise BackendError('backend tensorrt needs an engine file (--engine / parameter '
                               'engine); build one with tools/build_engine.py')
        engine = os.fspath(engine)
        if not os.path.isfile(engine):
            raise BackendError(f'TensorRT engine not found: {engine}')
        device = torch.device(device)
        if device.type != 'cuda':
            raise BackendError(f'TensorRT needs a CUDA device, not {device}')
        if not torch.cuda.is_available():
            raise BackendError('TensorRT needs a CUDA GPU, and torch sees none here')
        if device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        metadata = read_metadata(engine) if check else {}
        identity = metadata.get('identity', {})
        if trt is None:
            try:
                trt = import_tensorrt(identity.get('trt_module'))
            except EngineBuildError as error:
                raise BackendError(str(error)) from None
        engine_precision = identity.get('precision')
        if precision in (None, 'auto'):
            precision = engine_precision or 'auto'
        super().__init__(device, precision)
        self.engine_path = engine
        self.metadata = metadata
        self.trt = trt
        with open(engine, 'rb') as handle:
            plan = handle.read()
        if check:
            self._check(plan, metadata, onnx, verify_hash)
        self.logger = make_logger(trt, 'warning')
        with torch.cuda.device(device):
            self.runtime = trt.Runtime(self.logger)
            if is_rtx(trt):
                validity = engine_validity(trt, plan, self.logger)
                if validity and validity['validity'] == 'INVALID':
                    raise EngineMismatchError(
                        f'TensorRT-RTX refuses engine {engine} on {_gpu_text(device)}: '
                        f'{", ".join(validity["diagnostics"]) or "invalid"}; rebuild it for '
                        'this GPU (tools/build_engine.py --compute-capability CURRENT)')
            self.trt_engine = self.runtime.deserialize_cuda_engine(plan)
            if self.trt_engine is None:
                errors = '; '.join(self.logger.errors[-3:])
                raise EngineMismatchError(
                    f'{module_name(trt)} {getattr(trt, "__version__", "")} could not '
                    f'deserialize {engine} on {_gpu_text(device)}'
                    + (f' ({errors})' if errors else '') + ': rebuild the engine here with '
                    'tools/build_engine.py')
            self.runtime_config = None
            self.manual_graph = bool(cuda_graph)
            self.graph_mode = 'per shape' if cuda_graph else 'off'
            context = self._create_context(cuda_graph, runtime_cache)
            self.runner = EngineRunner(trt, self.trt_engine, context, self._allocate)
            self.max_batch = self.runner.profile[2][0]
            self.stream = torch.cuda.Stream(device)
        if self.runner.dtypes[self.runner.output] not in (torch.float32, torch.float16):
            raise BackendError(f'{engine}: output must be float32 or float16')
        LOG.info('TensorRT engine %s: %s %s, input %s profile %s, precision %s, cuda graph %s',
                 engine, module_name(trt), getattr(trt, '__version__', '?'), self.runner.input,
                 self.runner.profile, precision, self.graph_mode)

    def _check(self, plan: bytes, metadata: Dict, onnx: Optional[str], verify_hash: bool
               ) -> None:
        identity = metadata.get('identity', {})
        if verify_hash and metadata.get('engine_sha256') and (
                metadata.get('engine_bytes') != len(plan)
                or metadata['engine_sha256'] != _sha256(plan)):
            raise EngineMismatchError(
                f'{self.engine_path} does not match its metadata {self.engine_path}.json '
                '(replaced or modified after the build): rebuild it with tools/build_engine.py')
        onnx_sha = onnx_sha256(onnx) if onnx and os.path.isfile(onnx) else None
        requested = None if self.precision == 'auto' else self.precision
        problems = check_metadata(metadata, self.trt, gpu_identity(self.device.index),
                                  requested, onnx_sha)
        if problems:
            raise EngineMismatchError(
                f'engine {self.engine_path} cannot be used here: ' + '; '.join(problems)
                + f'. Rebuild it on this machine: tools/build_engine.py --onnx '
                f'{metadata.get("onnx") or "MODEL.onnx"} --output {self.engine_path} '
                f'(identity in {self.engine_path}.json)')
        if identity.get('precision') not in (None, 'fp16', 'fp32'):
            raise EngineMismatchError(f'unknown engine precision {identity.get("precision")}')

    def _create_context(self, cuda_graph: bool, runtime_cache: bool):
        trt, engine = self.trt, self.trt_engine
        if hasattr(engine, 'create_runtime_config') and hasattr(trt, 'CudaGraphStrategy'):
            # TensorRT-RTX: the runtime captures CUDA graphs itself (dynamic shapes included).
            config = engine.create_runtime_config()
            config.cuda_graph_strategy = (trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE if cuda_graph
                                          else trt.CudaGraphStrategy.DISABLED)
            if runtime_cache and hasattr(config, 'create_runtime_cache'):
                self._runtime_cache = config.create_runtime_cache()
                path = self.engine_path + '.runtime_cache'
                if os.path.isfile(path):
                    with open(path, 'rb') as handle:
                        self._runtime_cache.deserialize(handle.read())
                config.set_runtime_cache(self._runtime_cache)
            self.runtime_config = config
            self.manual_graph = False
            self.graph_mode = 'TensorRT-RTX runtime' if cuda_graph else 'off'
            context = engine.create_execution_context(config)
        else:
            context = engine.create_execution_context()
        if context is None:
            raise BackendError(f'cannot create an execution context for {self.engine_path} '
                               '(out of GPU memory?)')
        return context

    def _allocate(self, shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=self.device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a normalised (1, 3, H, W) input on the backend's stream."""
        runner = self.runner
        entry = runner.select(tuple(x.shape))
        caller = torch.cuda.current_stream(self.device)
        stream = self.stream
        stream.wait_stream(caller)
        with torch.cuda.stream(stream):
            entry.buffers[runner.input].copy_(x)
            if self.manual_graph and entry.graph is None:
                self._capture(entry)
            if entry.graph and entry.replayable:
                entry.graph.replay()
            else:
                # Plain enqueue: always for the first call after a shape change, so the
                # context's own state matches the shape before a graph is replayed.
                runner.enqueue(stream.cuda_stream)
                entry.replayable = True
        caller.wait_stream(stream)
        return entry.buffers[runner.output]

    def _capture(self, entry: _ShapeEntry) -> None:
        """Capture ``execute_async_v3`` at the current shape; ``False`` when impossible."""
        stream = self.stream
        self.runner.enqueue(stream.cuda_stream)       # un-captured run flushes lazy set-up
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=stream, capture_error_mode='thread_local'):
                ok = self.runner.context.execute_async_v3(stream.cuda_stream)
            if not ok:
                raise RuntimeError('execute_async_v3 returned False during capture')
        except RuntimeError as error:
            stream.synchronize()
            LOG.warning('TensorRT: CUDA graph capture failed at %s (%s); plain enqueue for '
                        'this shape', self.runner.current, error)
            entry.graph = False
            return
        entry.graph = graph
        entry.replayable = True

    def describe(self) -> Dict[str, str]:
        """Return what this backend runs."""
        info = super().describe()
        identity = self.metadata.get('identity', {})
        low, opt, high = self.runner.profile
        info.update(engine=self.engine_path, trt_module=module_name(self.trt),
                    trt_version=str(getattr(self.trt, '__version__', '?')),
                    profile=f'{low} / {opt} / {high}', cuda_graph=self.graph_mode,
                    mode='engine' if self.graph_mode == 'off' else 'engine+cuda_graph',
                    onnx_sha256=str(identity.get('onnx_sha256', ''))[:12])
        if self.metadata.get('onnx_quantization'):
            info['quantization'] = f'{self.metadata["onnx_quantization"]} Q/DQ'
        return info

    def close(self) -> None:
        """Save the RTX runtime cache and release graphs, context, engine and runtime."""
        cache = getattr(self, '_runtime_cache', None)
        if cache is not None and hasattr(cache, 'serialize'):
            try:
                with open(self.engine_path + '.runtime_cache', 'wb') as handle:
                    handle.write(bytes(cache.serialize()))
            except OSError as error:
                LOG.warning('cannot save the TensorRT-RTX runtime cache: %s', error)
        runner = getattr(self, 'runner', None)
        if runner is not None:
            runner.entries.clear()
            runner.context = None
        self.runner = None
        self.trt_engine = None
        self.runtime = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gpu_text(device: torch.device) -> str:
    gpu = gpu_identity(device.index or 0) or {}
    return f'{gpu.get("name", device)} (compute capability {gpu.get("compute_capability", "?")})'
