# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The backend factory: ``create_backend`` picks and builds one (``auto`` tries them in order).

Implementations are imported only when chosen, so a missing optional module (onnxruntime,
tensorrt) costs nothing until it is asked for.
"""

import inspect
import logging
import os
from typing import Dict, List, Optional

import torch

from lseg_ros.core.backends.base import EncoderBackend, resolve_device
from lseg_ros.core.errors import BackendError
from lseg_ros.core.options import BACKENDS, PRECISIONS

LOG = logging.getLogger(__name__)


def create_backend(name: str, weights=None, device: str = 'auto', precision: str = 'fp32',
                   engine: Optional[str] = None, onnx: Optional[str] = None,
                   **options) -> EncoderBackend:
    """Create the backend ``name`` (``auto`` picks the best one that can run here).

    ``weights`` (:class:`~lseg_ros.core.model.checkpoint.LsegWeights`) feeds the torch backend;
    ``engine`` a TensorRT engine file; ``onnx`` an ONNX file for ONNX Runtime.
    ``precision`` ``auto`` lets the backend decide: torch fp16 on a GPU and fp32 on the
    CPU, ONNX Runtime and TensorRT the precision of their graph or engine; an explicit
    precision is checked against the graph or engine.  ``options`` go to the backend's
    constructor (e.g. ``cuda_graph``, ``compile`` for torch).  With ``auto``, a candidate
    that cannot run here (no TensorRT, engine built elsewhere, no CUDA provider) is
    skipped with a warning and the next one is tried.  A configured engine that is not used
    (missing, not built by build_engine, modified after the build, no GPU, no TensorRT, or
    refused by TensorRT) gives one warning naming it and why, and the returned backend's
    ``fallback_reason`` (``describe()['fallback']``) says the same.
    """
    name = (name or 'auto').strip().lower()
    if name not in BACKENDS:
        raise BackendError(f'unknown backend {name!r}; choose one of {", ".join(BACKENDS)}')
    precision = (precision or 'auto').strip().lower()
    if precision not in PRECISIONS:
        raise BackendError(f'unknown precision {precision!r}; choose one of '
                           f'{", ".join(PRECISIONS)}')
    resolved = resolve_device(device)
    if name != 'auto':
        return _create(name, weights, resolved, precision, engine, onnx, options)
    candidates = auto_candidates(resolved, engine, onnx, weights is not None)
    notes = []                   # configured files that are not used, and why
    if engine and 'tensorrt' not in candidates:
        notes.append(f'engine {engine} not used: {engine_problem(engine, resolved)}')
    if not candidates:
        raise BackendError('backend auto: nothing to run; give a checkpoint (torch), an ONNX '
                           'file (onnxruntime) or an engine (tensorrt)'
                           + ''.join(f'; {note}' for note in notes))
    first_error = None
    for index, candidate in enumerate(candidates):
        try:
            backend = _create(candidate, weights, resolved, precision, engine, onnx,
                              options, strict=False)
        except BackendError as error:
            first_error = first_error or error
            if candidate == 'tensorrt':
                notes.append(f'engine {engine} not used: {error}')
            elif index + 1 < len(candidates):
                LOG.warning('backend auto: %s cannot run here (%s); trying %s', candidate,
                            error, candidates[index + 1])
                notes.append(f'{candidate} not used: {error}')
            continue
        for note in notes:
            if note.startswith('engine '):
                LOG.warning('backend auto: %s; using %s', note, candidate)
        backend.fallback_reason = '; '.join(notes) or None
        LOG.info('backend auto: using %s on %s', candidate, resolved)
        return backend
    raise first_error


def engine_problem(engine: str, device: torch.device) -> str:
    """Say why ``engine`` cannot be used here, without TensorRT ('' when nothing is found).

    The file and its metadata sidecar are checked first (present, written by build_engine,
    engine bytes matching the sidecar's hash), then the machine (CUDA device, TensorRT).
    """
    from lseg_ros.core.backends.artifacts import file_sha256, read_metadata, sidecar_path
    from lseg_ros.core.errors import EngineMismatchError

    reasons = []
    engine = os.fspath(engine)
    if not os.path.isfile(engine):
        reasons.append('the file does not exist')
    elif not os.path.isfile(sidecar_path(engine)):
        reasons.append(f'it has no metadata file {sidecar_path(engine)} (not built by '
                       'tools/build_engine.py)')
    else:
        try:
            metadata = read_metadata(engine)
        except EngineMismatchError as error:
            reasons.append(str(error))
        else:
            if (metadata.get('engine_bytes') != os.path.getsize(engine)
                    or metadata.get('engine_sha256') != file_sha256(engine)):
                reasons.append(f'it does not match its metadata {sidecar_path(engine)} '
                               '(modified or replaced after the build, or a copied sidecar)')
    if device.type != 'cuda':
        reasons.append(f'the device is {device} (TensorRT needs a CUDA GPU)')
    else:
        from lseg_ros.core.backends.tensorrt_backend import tensorrt_available
        if not tensorrt_available():
            reasons.append('no TensorRT Python module (tensorrt or tensorrt_rtx) is '
                           'installed')
    return '; '.join(reasons)


#: Values of the node parameter ``compile`` and of ``--compile``.
COMPILE_CHOICES = ('auto', 'on', 'off')


def user_options(backend: str, compile_setting: str = 'auto',
                 deterministic: bool = False) -> Dict:
    """Backend options for the user-facing switches of the node and the commands.

    ``compile_setting``: ``auto`` (the torch GPU default: Inductor for the variants whose
    compiled model passes the fidelity gate, today both; about 25 s per input shape at the
    first start), ``on`` (Inductor for every variant on a GPU) or ``off``.  ``deterministic``:
    no cuDNN autotuning (two runs pick the same kernels; segment_bag's outputs).  Only the
    torch backend (also as a candidate of ``auto``) takes them.
    """
    if (backend or 'auto').strip().lower() not in ('torch', 'auto'):
        return {}
    if compile_setting not in COMPILE_CHOICES:
        raise BackendError(f'compile must be one of {", ".join(COMPILE_CHOICES)}, '
                           f'not {compile_setting!r}')
    options: Dict = {}
    if compile_setting != 'auto':
        options['compile_mode'] = 'gpu' if compile_setting == 'on' else None
    if deterministic:
        options['cudnn_benchmark'] = False
    return options


def _create(name: str, weights, device: torch.device, precision: str, engine: Optional[str],
            onnx: Optional[str], options: Dict, strict: bool = True) -> EncoderBackend:
    if name == 'torch':
        from lseg_ros.core.backends.torch_backend import TorchBackend as cls
        if weights is None:
            raise BackendError('the torch backend needs a checkpoint')
        args = (weights, device, precision)
    elif name == 'onnxruntime':
        from lseg_ros.core.backends.onnxruntime_backend import OnnxRuntimeBackend as cls
        args = (onnx, device, precision)
    else:
        from lseg_ros.core.backends.tensorrt_backend import TensorRTBackend as cls
        args = (engine, device, precision)
        options = dict(options)
        options.setdefault('onnx', onnx)
    return cls(*args, **_accepted(cls, name, options, strict))


def _accepted(cls, name: str, options: Dict, strict: bool) -> Dict:
    """Return the ``options`` that ``cls`` takes; unknown ones raise (strict) or are dropped."""
    parameters = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in options if k not in parameters)
    if unknown and strict:
        known = [p for p in parameters if p not in ('self', 'weights', 'device', 'precision',
                                                    'engine', 'onnx')]
        raise BackendError(f'backend {name} does not take option(s) {unknown}; it takes '
                           f'{known}')
    return {k: v for k, v in options.items() if k in parameters}


def auto_candidates(device: torch.device, engine: Optional[str], onnx: Optional[str],
                    have_weights: bool = True) -> List[str]:
    """Return the backends ``auto`` tries, best first.

    TensorRT when an engine is configured, the device is a GPU and a TensorRT module is
    installed; ONNX Runtime when an ONNX file is configured; torch when there is a
    checkpoint.
    """
    candidates = []
    if engine and device.type == 'cuda':
        from lseg_ros.core.backends.tensorrt_backend import tensorrt_available
        if tensorrt_available():
            candidates.append('tensorrt')
    if onnx:
        candidates.append('onnxruntime')
    if have_weights:
        candidates.append('torch')
    return candidates
