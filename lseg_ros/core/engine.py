# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""TensorRT engines: one builder for TensorRT 10, TensorRT 11 and TensorRT-RTX.

* Import shim: ``tensorrt`` (10.x / 11.x) or ``tensorrt_rtx``; ``LSEG_TRT_MODULE`` or the
  ``module`` argument picks one.  Differences are detected by feature (``hasattr``), never
  by version number, and ``EXPLICIT_BATCH`` is never used (removed in TensorRT 11).
* Precision comes from the ONNX graph: the network is strongly typed, so an fp16 ONNX
  (``export_onnx --fp16``) gives an fp16 engine with LayerNorm/softmax in fp32, and an fp32
  ONNX gives a strict fp32 engine (TF32 cleared unless asked for).  Only on TensorRT 10
  an fp32 ONNX can be built as fp16 with the deprecated ``BuilderFlag.FP16`` (weakly typed).
* Optimisation profile from min/opt/max shapes, timing cache file (not for RTX, where it has
  no effect), workspace limit, builder optimisation level, RTX target compute capabilities.
  No DEBUG, SPARSE_WEIGHTS, GPU_FALLBACK or tactic-source settings.
* Every ONNX parser error is listed.  Next to ``model.engine`` a sidecar
  ``model.engine.json`` records the engine's identity (ONNX sha256, TensorRT module and
  version, GPU and compute capability, precision, profiles, builder options) and its
  :func:`cache_key`; a build is skipped only while the key and the engine file match.
"""

from dataclasses import asdict, dataclass, field
import datetime
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import platform
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

from lseg_ros.core.errors import EngineMismatchError, LsegError
from lseg_ros.core.interrupts import staged_path, write_text

LOG = logging.getLogger(__name__)

#: Python modules that provide the TensorRT API, in the order they are tried.
TRT_MODULES = ('tensorrt', 'tensorrt_rtx')
#: Environment variable that selects the module (``tensorrt`` or ``tensorrt_rtx``).
TRT_MODULE_ENV = 'LSEG_TRT_MODULE'
METADATA_FORMAT = 1
SIDECAR_SUFFIX = '.json'
#: Multiple of which image heights and widths must be (see preprocess.MULTIPLE).
IMAGE_MULTIPLE = 32


class EngineBuildError(LsegError):
    """An engine could not be built (bad ONNX, bad shapes, builder failure)."""


# ---------------------------------------------------------------------------- the module
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


# ---------------------------------------------------------------------------- identity
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


# ------------------------------------------------------------------------------ options
Shape = Tuple[int, ...]


@dataclass
class BuildOptions:
    """How to build an engine (everything here is part of the cache key)."""

    precision: str = 'auto'           # auto (from the ONNX types), fp16 or fp32
    tf32: bool = False                # allow TF32 in an fp32 engine
    min_shapes: Dict[str, str] = field(default_factory=dict)   # input name ('' = only) -> spec
    opt_shapes: Dict[str, str] = field(default_factory=dict)
    max_shapes: Dict[str, str] = field(default_factory=dict)
    workspace_mib: Optional[int] = None
    optimization_level: Optional[int] = None
    timing_cache: Optional[str] = None
    #: TensorRT-RTX targets: e.g. ['SM89', 'SM120'] or ['CURRENT']; empty = RTX default.
    compute_capabilities: Sequence[str] = ()


@dataclass
class BuildResult:
    """The outcome of :func:`build_engine`."""

    engine: str
    metadata: Dict
    built: bool
    reason: str
    seconds: float = 0.0


def parse_shape(spec: str) -> Tuple[Optional[str], Shape]:
    """Parse ``[name:]D1xD2x...`` (e.g. ``480x640``, ``image:1x3x480x640``)."""
    text = str(spec).strip()
    name = None
    if ':' in text:
        name, text = text.rsplit(':', 1)
        name = name.strip()
    try:
        dims = tuple(int(d) for d in re.split(r'[x×,]', text.lower()) if d.strip())
    except ValueError:
        raise EngineBuildError(f'bad shape {spec!r}: expected e.g. 480x640 or '
                               'image:1x3x480x640') from None
    if not dims or any(d <= 0 for d in dims):
        raise EngineBuildError(f'bad shape {spec!r}: dimensions must be positive')
    return name, dims


def complete_shape(name: str, network_dims: Sequence[int], dims: Shape) -> Shape:
    """Fill a short shape into the input's dimensions.

    With as many values as the input has dynamic (-1) dimensions they replace those, in
    order (``480x640`` for an image input ``1x3x-1x-1``); with as many values as its rank
    they are the full shape; fewer values are its trailing dimensions.
    """
    network_dims = tuple(int(d) for d in network_dims)
    dynamic = [i for i, d in enumerate(network_dims) if d < 0]
    if len(dims) == len(network_dims):
        full = tuple(dims)
    elif len(dims) == len(dynamic):
        values = iter(dims)
        full = tuple(next(values) if d < 0 else d for d in network_dims)
    elif len(dims) < len(network_dims):
        # The trailing dimensions (HxW of an image input whose other dims are fixed).
        full = tuple(network_dims[:len(network_dims) - len(dims)]) + tuple(dims)
        if any(d < 0 for d in full):
            raise EngineBuildError(
                f'input {name!r} has shape {_fmt(network_dims)}: {_fmt(dims)} leaves a '
                f'dynamic dimension open; give a full shape of rank {len(network_dims)}')
    else:
        raise EngineBuildError(
            f'input {name!r} has shape {_fmt(network_dims)}: give {len(dynamic)} value(s) '
            f'for its dynamic dimension(s) or a full shape of rank {len(network_dims)}, '
            f'not {_fmt(dims)}')
    for index, (want, got) in enumerate(zip(network_dims, full)):
        if want >= 0 and want != got:
            raise EngineBuildError(f'input {name!r}: dimension {index} is fixed at {want} in '
                                   f'the ONNX graph, shape {_fmt(full)} does not match')
    return full


def _fmt(dims) -> str:
    return 'x'.join(str(d) for d in dims)


def resolve_profiles(inputs: Sequence[Tuple[str, Sequence[int]]], options: BuildOptions
                     ) -> Dict[str, Dict[str, List[int]]]:
    """Return ``{input: {'min', 'opt', 'max'}}`` for every network input.

    ``inputs``: ``(name, dims)`` of the network inputs (-1 = dynamic).  A dynamic input
    needs at least an opt shape (min and max default to it: a static engine for one size);
    4-D image inputs need heights and widths that are multiples of 32.
    """
    names = [name for name, _ in inputs]
    specs = {}
    for kind in ('min', 'opt', 'max'):
        given = getattr(options, f'{kind}_shapes') or {}
        for key, spec in given.items():
            parsed_name, dims = parse_shape(spec)
            target = parsed_name or key or ''
            if not target:
                if len(names) != 1:
                    raise EngineBuildError(f'the network has inputs {names}: prefix each '
                                           f'--{kind}-shape with the input name (name:shape)')
                target = names[0]
            if target not in names:
                raise EngineBuildError(f'--{kind}-shape names input {target!r}; the network '
                                       f'inputs are {names}')
            specs.setdefault(target, {})[kind] = dims
    profiles = {}
    for name, dims in inputs:
        dims = tuple(int(d) for d in dims)
        given = specs.get(name, {})
        if all(d >= 0 for d in dims):
            for kind, shape in given.items():
                if complete_shape(name, dims, shape) != dims:
                    raise EngineBuildError(f'input {name!r} is static ({_fmt(dims)}); '
                                           f'--{kind}-shape {_fmt(shape)} does not match')
            profiles[name] = {k: list(dims) for k in ('min', 'opt', 'max')}
            continue
        if 'opt' not in given:
            example = '480x640' if len(dims) == 4 else 'N'
            raise EngineBuildError(
                f'input {name!r} has dynamic shape {_fmt(dims)}: give at least --opt-shape '
                f'(and --min-shape/--max-shape for a range), e.g. --opt-shape {example}')
        full = {k: complete_shape(name, dims, given.get(k, given['opt']))
                for k in ('min', 'opt', 'max')}
        if not all(a <= b <= c for a, b, c in zip(full['min'], full['opt'], full['max'])):
            raise EngineBuildError(f'input {name!r}: need min <= opt <= max in every dimension, '
                                   f'got min {_fmt(full["min"])}, opt {_fmt(full["opt"])}, '
                                   f'max {_fmt(full["max"])}')
        if len(dims) == 4:
            for kind, shape in full.items():
                if shape[2] % IMAGE_MULTIPLE or shape[3] % IMAGE_MULTIPLE:
                    raise EngineBuildError(
                        f'input {name!r}: {kind} shape {_fmt(shape)}: height and width must be '
                        f'multiples of {IMAGE_MULTIPLE}')
        profiles[name] = {k: list(v) for k, v in full.items()}
    return profiles


# --------------------------------------------------------------------------- precision
def choose_precision(requested: str, graph_precision: str, trt) -> Tuple[str, bool]:
    """Return ``(engine precision, strongly_typed)`` for a request and an ONNX graph."""
    requested = (requested or 'auto').lower()
    if requested not in ('auto', 'fp16', 'fp32'):
        raise EngineBuildError(f'unknown precision {requested!r}; choose auto, fp16 or fp32')
    if requested in ('auto', graph_precision):
        return graph_precision, True
    if requested == 'fp32':
        raise EngineBuildError('the ONNX graph is fp16; an fp32 engine needs an fp32 ONNX '
                               '(export_onnx without --fp16)')
    if hasattr(trt.BuilderFlag, 'FP16'):
        LOG.warning('building an fp16 engine from an fp32 ONNX with BuilderFlag.FP16 (weak '
                    'typing, deprecated since TensorRT 10.12); prefer export_onnx --fp16')
        return 'fp16', False
    raise EngineBuildError(f'{module_name(trt)} {getattr(trt, "__version__", "")} builds only '
                           'strongly typed networks: export an fp16 ONNX with '
                           'export_onnx --fp16 for an fp16 engine')


# ------------------------------------------------------------------------------ metadata
def sidecar_path(engine: str) -> str:
    """Return the metadata file of ``engine`` (``<engine>.json``)."""
    return os.fspath(engine) + SIDECAR_SUFFIX


def cache_key(identity: Dict) -> str:
    """sha256 of the canonical JSON of an engine identity."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(',', ':'))
                          .encode()).hexdigest()


def engine_identity(onnx_sha: str, trt, gpu: Optional[Dict], precision: str,
                    strongly_typed: bool, profiles: Dict, options: BuildOptions) -> Dict:
    """Everything that determines an engine plan, as a JSON-friendly dict."""
    rtx = is_rtx(trt)
    targets = [str(c).upper() for c in options.compute_capabilities] if rtx else []
    uses_gpu = not rtx or 'CURRENT' in targets
    return {
        'onnx_sha256': onnx_sha,
        'trt_module': module_name(trt),
        'trt_version': str(getattr(trt, '__version__', 'unknown')),
        'gpu': ({k: gpu[k] for k in ('name', 'compute_capability')} if gpu and uses_gpu
                else None),
        'rtx_targets': (targets or ['default']) if rtx else None,
        'precision': precision,
        'strongly_typed': bool(strongly_typed),
        'tf32': bool(options.tf32 and precision == 'fp32'),
        'profiles': profiles,
        'workspace_mib': options.workspace_mib,
        'optimization_level': options.optimization_level,
    }


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


def write_json_atomic(path: str, data: Dict) -> None:
    """Write JSON to ``path`` via a temporary file (none is left when interrupted)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + '\n')


def up_to_date(engine: str, key: str) -> Tuple[bool, str]:
    """Whether ``engine`` and its sidecar exist, carry ``key`` and match each other."""
    if not os.path.isfile(engine):
        return False, 'no engine file'
    try:
        meta = read_metadata(engine)
    except EngineMismatchError as error:
        return False, str(error)
    if meta.get('cache_key') != key:
        return False, f'cache key changed ({str(meta.get("cache_key"))[:12]} -> {key[:12]})'
    size = os.path.getsize(engine)
    if meta.get('engine_bytes') != size or meta.get('engine_sha256') != file_sha256(engine):
        return False, 'engine file does not match its metadata (modified or replaced)'
    return True, 'up to date'


def describe_identity_change(engine: str, identity: Dict) -> str:
    """Human-readable difference between an engine's recorded identity and ``identity``."""
    try:
        old = read_metadata(engine).get('identity', {})
    except EngineMismatchError as error:
        return str(error)
    changed = [k for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)]
    return ', '.join(f'{k}: {_short(old.get(k))} -> {_short(identity.get(k))}'
                     for k in changed) or 'identical identity'


def _short(value):
    text = repr(value)
    return text if len(text) < 80 else text[:77] + '...'


# ---------------------------------------------------------------------------------- build
def enum_name(value) -> str:
    """Return the member name of a TensorRT (pybind11) or Python enum value."""
    name = getattr(value, 'name', None)
    return name if isinstance(name, str) else str(value).split('.')[-1]


def parser_errors(parser) -> List[str]:
    """Every error of a TensorRT ONNX parser, one line each."""
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        parts = []
        for attr in ('node_name', 'node_operator'):
            getter = getattr(error, attr, None)
            if getter is not None:
                try:
                    value = getter()
                except Exception:  # noqa: B902 - older bindings
                    value = ''
                if value:
                    parts.append(f'{attr.replace("_", " ")} {value}')
        node = error.node() if hasattr(error, 'node') else -1
        where = f'node #{node}' + (f' ({", ".join(parts)})' if parts else '')
        code = enum_name(error.code()) if hasattr(error, 'code') else ''
        lines.append(f'{where}: {error.desc()} [{code}]')
    return lines


def network_io(network) -> Dict[str, List[Dict]]:
    """Names, shapes and dtypes of a network's inputs and outputs."""
    def tensors(count, get):
        out = []
        for index in range(count):
            tensor = get(index)
            out.append({'name': tensor.name, 'shape': [int(d) for d in tensor.shape],
                        'dtype': enum_name(tensor.dtype)})
        return out
    return {'inputs': tensors(network.num_inputs, network.get_input),
            'outputs': tensors(network.num_outputs, network.get_output)}


def build_engine(onnx: str, engine: str, options: Optional[BuildOptions] = None,
                 force: bool = False, trt=None, module: Optional[str] = None,
                 log_level: str = 'warning') -> BuildResult:
    """Build ``engine`` from ``onnx`` (skipped while an up-to-date engine exists).

    ``trt``: an imported TensorRT module (default: :func:`import_tensorrt` of ``module``).
    Returns a :class:`BuildResult`; raises :class:`EngineBuildError` on failure.
    """
    from lseg_ros.core.export import onnx_graph_precision

    options = options or BuildOptions()
    onnx = os.fspath(onnx)
    engine = os.fspath(engine)
    if not os.path.isfile(onnx):
        raise EngineBuildError(f'ONNX file not found: {onnx}')
    trt = trt or import_tensorrt(module)
    start = time.perf_counter()
    onnx_sha = onnx_sha256(onnx)
    graph_precision = onnx_graph_precision(onnx)
    precision, strongly_typed = choose_precision(options.precision, graph_precision, trt)
    logger = make_logger(trt, log_level)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, 'STRONGLY_TYPED'):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx):
        errors = parser_errors(parser) or logger.errors or ['unknown parser error']
        raise EngineBuildError(f'{module_name(trt)} cannot parse {onnx} ({len(errors)} '
                               'error(s)):\n  ' + '\n  '.join(errors))
    io = network_io(network)
    profiles = resolve_profiles([(t['name'], t['shape']) for t in io['inputs']], options)
    gpu = gpu_identity()
    identity = engine_identity(onnx_sha, trt, gpu, precision, strongly_typed, profiles, options)
    key = cache_key(identity)
    if not force:
        fresh, reason = up_to_date(engine, key)
        if fresh:
            LOG.info('engine %s is up to date (cache key %s); use force to rebuild', engine,
                     key[:12])
            return BuildResult(engine, read_metadata(engine), False, 'up to date')
        reason = (describe_identity_change(engine, identity)
                  if os.path.isfile(engine) and os.path.isfile(sidecar_path(engine)) else reason)
    else:
        reason = 'forced'
    LOG.info('building %s (%s): %s', engine, reason, json.dumps(identity, sort_keys=True))

    config = builder.create_builder_config()
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == 'fp32' and not options.tf32 and hasattr(trt.BuilderFlag, 'TF32'):
        config.clear_flag(trt.BuilderFlag.TF32)
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(options.workspace_mib) << 20)
    if options.optimization_level is not None:
        if not 0 <= options.optimization_level <= 5:
            raise EngineBuildError('optimization level must be within 0..5')
        config.builder_optimization_level = int(options.optimization_level)
    _set_rtx_targets(trt, config, options)
    dynamic = any(p['min'] != p['max'] for p in profiles.values()) or any(
        -1 in t['shape'] for t in io['inputs'])
    if dynamic:
        profile = builder.create_optimization_profile()
        for name, shapes in profiles.items():
            profile.set_shape(name, tuple(shapes['min']), tuple(shapes['opt']),
                              tuple(shapes['max']))
        config.add_optimization_profile(profile)
    cache = _load_timing_cache(trt, config, options.timing_cache)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        details = '; '.join(logger.errors[-5:]) or 'see the TensorRT log above'
        raise EngineBuildError(f'{module_name(trt)} failed to build {engine}: {details}')
    data = bytes(plan) if not isinstance(plan, (bytes, bytearray)) else bytes(plan)
    # The new engine takes its name without a sidecar, which is written last: interrupted in
    # between, the engine is refused (no metadata) and rebuilt, never used with old metadata.
    with staged_path(engine) as staged:
        with open(staged, 'wb') as handle:
            handle.write(data)
        if os.path.lexists(sidecar_path(engine)):
            os.remove(sidecar_path(engine))
    if cache is not None:
        _save_timing_cache(config, options.timing_cache)
    seconds = time.perf_counter() - start
    metadata = {
        'format': METADATA_FORMAT,
        'cache_key': key,
        'identity': identity,
        'onnx': os.path.abspath(onnx),
        'onnx_graph_precision': graph_precision,
        'io': io,
        'engine_bytes': len(data),
        'engine_sha256': hashlib.sha256(data).hexdigest(),
        'build_seconds': round(seconds, 3),
        'built_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'build_gpu': gpu,
        'host': {'machine': platform.machine(), 'system': platform.system(),
                 'python': platform.python_version()},
        'timing_cache': os.path.abspath(options.timing_cache) if cache is not None else None,
    }
    write_json_atomic(sidecar_path(engine), metadata)
    LOG.info('built %s (%.1f MB) in %.1f s', engine, len(data) / 1e6, seconds)
    return BuildResult(engine, metadata, True, reason, seconds)


def _set_rtx_targets(trt, config, options: BuildOptions) -> None:
    targets = [str(c).upper() for c in options.compute_capabilities]
    if not targets:
        return
    if not hasattr(trt, 'ComputeCapability') or not hasattr(config,
                                                            'num_compute_capabilities'):
        raise EngineBuildError('compute-capability targets are a TensorRT-RTX option; '
                               f'{module_name(trt)} builds for the GPU it runs on')
    unknown = [t for t in targets if not hasattr(trt.ComputeCapability, t)]
    if unknown:
        known = [n for n in dir(trt.ComputeCapability) if n.isupper() and n != 'NONE']
        raise EngineBuildError(f'unknown compute capability {unknown}; {module_name(trt)} '
                               f'knows {known}')
    if 'CURRENT' in targets and len(targets) > 1:
        raise EngineBuildError('CURRENT cannot be combined with other compute capabilities')
    config.num_compute_capabilities = len(targets)
    for index, name in enumerate(targets):
        if config.set_compute_capability(getattr(trt.ComputeCapability, name), index) is False:
            raise EngineBuildError(f'{module_name(trt)} refused compute capability {name}')


def _load_timing_cache(trt, config, path: Optional[str]):
    if not path:
        return None
    if is_rtx(trt) or not hasattr(config, 'create_timing_cache'):
        LOG.info('timing cache ignored: it has no effect with %s', module_name(trt))
        return None
    data = b''
    if os.path.isfile(path):
        with open(path, 'rb') as handle:
            data = handle.read()
        LOG.info('timing cache %s: %d bytes loaded', path, len(data))
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        LOG.warning('timing cache %s does not match this GPU/TensorRT; starting a new one', path)
        cache = config.create_timing_cache(b'')
        config.set_timing_cache(cache, False)
    return cache


def _save_timing_cache(config, path: str) -> None:
    cache = config.get_timing_cache()
    if cache is None:
        return
    data = bytes(cache.serialize())
    with staged_path(path) as staged:
        with open(staged, 'wb') as handle:
            handle.write(data)


# ----------------------------------------------------------------------- load-time checks
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


def as_dict(options: BuildOptions) -> Dict:
    """JSON-friendly build options."""
    return asdict(options)
