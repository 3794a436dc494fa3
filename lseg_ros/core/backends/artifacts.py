# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What a deployed file (ONNX graph, TensorRT engine + sidecar) is, and whether it runs here.

Runtime side of deployment: the TensorRT import shim, GPU identity, engine metadata
sidecars and their checks, the precision of an ONNX graph.  The builder
(:mod:`lseg_ros.deploy.engine_build`) writes what this module reads; backends import only
this module, never the builder.
"""

import hashlib
import importlib
import importlib.util
import json
import logging
import os
from typing import Dict, List, Optional, Tuple

from lseg_ros.core.errors import EngineMismatchError, LsegError

LOG = logging.getLogger(__name__)


def onnx_graph_types(path: str) -> Tuple[str, str]:
    """Return ``(precision, quantization)`` of an ONNX graph, reading it once.

    ``precision``: ``'fp16'`` when the graph holds float16 weights, else ``'fp32'``.
    ``quantization``: ``'int8'``, ``'fp8'`` (``'fp8+int8'`` for both, also ``'int4'``,
    ``'int16'``) for a Q/DQ graph, else ``''``: the type of the zero points (or the
    ``output_dtype``) of its QuantizeLinear/DequantizeLinear nodes.
    """
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    tensors = {init.name: init.data_type for init in model.graph.initializer}
    fp16 = onnx.TensorProto.FLOAT16
    precision = 'fp16' if fp16 in tensors.values() else 'fp32'
    for node in model.graph.node:
        if node.op_type == 'Constant':
            for attr in node.attribute:
                if attr.name == 'value':
                    tensors[node.output[0]] = attr.t.data_type
                    precision = 'fp16' if attr.t.data_type == fp16 else precision
    kinds, quantized = set(), _quantized_types()
    for node in model.graph.node:
        if node.op_type not in ('QuantizeLinear', 'DequantizeLinear'):
            continue
        dtype = tensors.get(node.input[2]) if len(node.input) > 2 and node.input[2] else next(
            (a.i for a in node.attribute if a.name == 'output_dtype'), onnx.TensorProto.UINT8)
        kinds.add(quantized.get(dtype, 'int8'))
    return precision, '+'.join(sorted(kinds))


def onnx_graph_precision(path: str) -> str:
    """Return ``'fp16'`` when the graph holds float16 weights, else ``'fp32'``."""
    return onnx_graph_types(path)[0]


def _quantized_types() -> Dict[int, str]:
    import onnx
    types = onnx.TensorProto
    names = {'INT8': 'int8', 'UINT8': 'int8', 'INT4': 'int4', 'UINT4': 'int4',
             'INT16': 'int16', 'UINT16': 'int16', 'FLOAT8E4M3FN': 'fp8',
             'FLOAT8E4M3FNUZ': 'fp8', 'FLOAT8E5M2': 'fp8', 'FLOAT8E5M2FNUZ': 'fp8'}
    return {getattr(types, name): kind for name, kind in names.items() if hasattr(types, name)}


#: Python modules that provide the TensorRT API, in the order they are tried.
TRT_MODULES = ('tensorrt', 'tensorrt_rtx')


#: Environment variable that selects the module (``tensorrt`` or ``tensorrt_rtx``).
TRT_MODULE_ENV = 'LSEG_TRT_MODULE'


METADATA_FORMAT = 1


SIDECAR_SUFFIX = '.json'


class EngineBuildError(LsegError):
    """An engine could not be built (bad ONNX, bad shapes, builder failure)."""


def tensorrt_modules_installed() -> List[str]:
    """Names of the TensorRT Python modules that can be imported here (not imported)."""
    found = []
    for name in TRT_MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):
            pass
    return found


def import_tensorrt(module: Optional[str] = None):
    """Import and return the TensorRT module (``tensorrt`` or ``tensorrt_rtx``).

    ``module`` (or ``$LSEG_TRT_MODULE``) names one; otherwise ``tensorrt`` is preferred.
    """
    wanted = module or os.environ.get(TRT_MODULE_ENV) or None
    if wanted and wanted not in TRT_MODULES:
        raise EngineBuildError(f'unknown TensorRT module {wanted!r}; use one of '
                               f'{", ".join(TRT_MODULES)}')
    order = [wanted] if wanted else list(TRT_MODULES)
    errors = []
    for name in order:
        try:
            return importlib.import_module(name)
        except ImportError as error:
            errors.append(f'{name}: {error}')
    raise EngineBuildError('TensorRT is not installed (' + '; '.join(errors) + '): install '
                           'TensorRT >= 10 (JetPack 6 ships 10.3; pip install tensorrt) or '
                           'TensorRT-RTX (pip install tensorrt-rtx)')


def module_name(trt) -> str:
    """``tensorrt`` or ``tensorrt_rtx`` for an imported module (or a test double)."""
    return getattr(trt, '__name__', 'tensorrt').split('.')[0]


def is_rtx(trt) -> bool:
    """Whether ``trt`` is TensorRT-RTX (it has compute-capability targets)."""
    return 'rtx' in module_name(trt) or hasattr(trt, 'ComputeCapability')


def make_logger(trt, level: str = 'warning'):
    """Return a TensorRT logger that forwards to :mod:`logging` and keeps the errors."""
    severity = trt.ILogger.Severity if hasattr(trt.ILogger, 'Severity') else trt.Logger

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: List[str] = []
            self.minimum = {'verbose': 4, 'info': 3, 'warning': 2, 'error': 1}[level]

        def log(self, sev, message):
            rank = _severity_rank(severity, sev)
            if rank <= 1:
                self.errors.append(str(message))
            if rank <= self.minimum:
                LOG.log({0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING,
                         3: logging.INFO}.get(rank, logging.DEBUG), 'TensorRT: %s', message)

    return _Logger()


def _severity_rank(severity, sev) -> int:
    order = ('INTERNAL_ERROR', 'ERROR', 'WARNING', 'INFO', 'VERBOSE')
    for rank, name in enumerate(order):
        if hasattr(severity, name) and sev == getattr(severity, name):
            return rank
    return 4


def file_sha256(path: str, chunk: int = 1 << 24) -> str:
    """Return the sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def onnx_external_files(path: str) -> List[str]:
    """Return the external-data files an ONNX model references (absolute, sorted)."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    base = os.path.dirname(os.path.abspath(path))
    files = set()
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            for entry in init.external_data:
                if entry.key == 'location':
                    files.add(os.path.join(base, entry.value))
    return sorted(files)


def onnx_sha256(path: str) -> str:
    """sha256 of an ONNX model including its external-data files (in a fixed order)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EngineBuildError(f'ONNX file not found: {path}')
    files = [path] + onnx_external_files(path)
    if len(files) == 1:
        return file_sha256(path)
    digest = hashlib.sha256()
    for name in files:
        if not os.path.isfile(name):
            raise EngineBuildError(f'{path} references external data {name}, which is missing')
        digest.update(file_sha256(name).encode())
    return digest.hexdigest()


def gpu_identity(device: int = 0) -> Optional[Dict[str, str]]:
    """Name, compute capability and driver of the CUDA GPU, or None without a GPU."""
    try:
        import torch
        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability(device)
        info = {'name': torch.cuda.get_device_name(device),
                'compute_capability': f'{major}.{minor}'}
    except Exception:  # noqa: B902 - no usable CUDA
        return None
    driver = nvidia_driver_version()
    if driver:
        info['driver'] = driver
    return info


def nvidia_driver_version() -> Optional[str]:
    """Return the NVIDIA driver version (``nvidia-smi``), or None."""
    import shutil
    import subprocess

    if shutil.which('nvidia-smi') is None:
        return None
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def sidecar_path(engine: str) -> str:
    """Return the metadata file of ``engine`` (``<engine>.json``)."""
    return os.fspath(engine) + SIDECAR_SUFFIX


def cache_key(identity: Dict) -> str:
    """sha256 of the canonical JSON of an engine identity."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(',', ':'))
                          .encode()).hexdigest()


def read_metadata(engine: str) -> Dict:
    """Read the sidecar of ``engine``; raises :class:`EngineMismatchError` if absent/bad."""
    path = sidecar_path(engine)
    if not os.path.isfile(path):
        raise EngineMismatchError(
            f'engine {engine} has no metadata file {path}: it was not built by build_engine. '
            'Rebuild it: tools/build_engine.py --onnx MODEL.onnx --output ' + os.fspath(engine))
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise EngineMismatchError(f'cannot read engine metadata {path}: {error}') from None
    if not isinstance(data, dict) or 'identity' not in data or 'cache_key' not in data:
        raise EngineMismatchError(f'{path} is not an lseg_ros engine metadata file')
    return data


def shorten(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + '...'


def check_metadata(metadata: Dict, trt, gpu: Optional[Dict], precision: Optional[str] = None,
                   onnx_sha: Optional[str] = None) -> List[str]:
    """Return the reasons an engine with ``metadata`` cannot run here (empty = compatible)."""
    identity = metadata.get('identity', {})
    problems = []
    if identity.get('trt_module') != module_name(trt):
        problems.append(f'built with {identity.get("trt_module")}, loading with '
                        f'{module_name(trt)}')
    version = str(getattr(trt, '__version__', 'unknown'))
    if identity.get('trt_version') != version:
        problems.append(f'built with TensorRT {identity.get("trt_version")}, this is {version}')
    built_gpu = identity.get('gpu')
    if built_gpu and gpu:
        if built_gpu.get('compute_capability') != gpu.get('compute_capability'):
            problems.append(f'built for compute capability {built_gpu.get("compute_capability")}'
                            f' ({built_gpu.get("name")}), this GPU is '
                            f'{gpu.get("compute_capability")} ({gpu.get("name")})')
        elif built_gpu.get('name') != gpu.get('name'):
            LOG.warning('engine built on %s, running on %s (same compute capability)',
                        built_gpu.get('name'), gpu.get('name'))
    targets = identity.get('rtx_targets') or []
    if gpu and targets and targets not in (['default'], ['CURRENT']):
        cc = 'SM' + gpu.get('compute_capability', '').replace('.', '')
        if cc not in targets:
            problems.append(f'TensorRT-RTX engine built for {targets}, this GPU is {cc}')
    if precision and identity.get('precision') != precision:
        problems.append(f'engine precision is {identity.get("precision")}, requested {precision}')
    if onnx_sha and identity.get('onnx_sha256') != onnx_sha:
        problems.append('the ONNX file changed since the engine was built (sha256 '
                        f'{identity.get("onnx_sha256", "")[:12]} -> {onnx_sha[:12]})')
    return problems


def engine_validity(trt, plan: bytes, logger=None) -> Optional[Dict]:
    """TensorRT-RTX pre-flight check of a plan: ``{'validity', 'diagnostics'}`` or None.

    Full TensorRT has no such API (deserialise and see); returns None there.
    """
    runtime = trt.Runtime(logger or make_logger(trt, 'error'))
    if not hasattr(runtime, 'get_engine_validity'):
        return None
    validity, diagnostics = runtime.get_engine_validity(plan)
    names = []
    if hasattr(trt, 'EngineInvalidityDiagnostics'):
        for name in dir(trt.EngineInvalidityDiagnostics):
            member = getattr(trt.EngineInvalidityDiagnostics, name)
            if name.isupper() and int(diagnostics) & int(member):
                names.append(name)
    return {'validity': enum_name(validity), 'diagnostics': sorted(names),
            'diagnostics_bits': int(diagnostics)}


def enum_name(value) -> str:
    """Return the member name of a TensorRT (pybind11) or Python enum value."""
    name = getattr(value, 'name', None)
    return name if isinstance(name, str) else str(value).split('.')[-1]
