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

from dataclasses import dataclass, field
import datetime
import hashlib
import json
import logging
import os
import platform
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

from lseg_ros.core.backends.artifacts import (cache_key, EngineBuildError, enum_name, file_sha256,
                                              gpu_identity, import_tensorrt, is_rtx, make_logger,
                                              METADATA_FORMAT, module_name, onnx_sha256,
                                              read_metadata, shorten, sidecar_path)
from lseg_ros.core.errors import EngineMismatchError
from lseg_ros.core.interrupts import staged_path, write_text

LOG = logging.getLogger(__name__)

#: Multiple of which image heights and widths must be (see preprocess.MULTIPLE).
IMAGE_MULTIPLE = 32


# ---------------------------------------------------------------------------- the module


# ---------------------------------------------------------------------------- identity


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
    return ', '.join(f'{k}: {shorten(old.get(k))} -> {shorten(identity.get(k))}'
                     for k in changed) or 'identical identity'


# ---------------------------------------------------------------------------------- build


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
    from lseg_ros.core.backends.artifacts import onnx_graph_types

    options = options or BuildOptions()
    onnx = os.fspath(onnx)
    engine = os.fspath(engine)
    if not os.path.isfile(onnx):
        raise EngineBuildError(f'ONNX file not found: {onnx}')
    trt = trt or import_tensorrt(module)
    start = time.perf_counter()
    onnx_sha = onnx_sha256(onnx)
    graph_precision, quantization = onnx_graph_types(onnx)
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
        'onnx_quantization': quantization,
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
