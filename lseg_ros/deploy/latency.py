# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Model-only latency of the image encoder: PyTorch eager fp32 against every backend here.

Method (the same for every row, stated in the report):

* input: the bundled sample frame rendered at each size and normalised once on the CPU;
  the identical tensor is copied to the device before timing (the pre-processing of the
  pipeline also leaves it there), so no host-to-device copy is timed;
* output: left on the device (the pipeline's head consumes it there); no device-to-host
  copy is timed;
* timed region: ``backend(x)`` followed by a device synchronisation, measured with
  ``time.perf_counter`` (host-side launch overhead included, as a caller sees it);
* warm-up: ``warmup`` calls per backend and size (CUDA-graph capture, compilation,
  autotuning happen there; the first call is reported separately), then ``iterations``
  timed calls; p50/p90/p99/mean/min/max in milliseconds;
* precision: fp32 rows are strict fp32 (TF32 off for matmul and cuDNN; TensorRT fp32
  engines are built with TF32 cleared); fp16 rows say which ops stay in fp32;
* compute floor: FLOPs of the encoder at each size (``torch.utils.flop_counter`` on the
  meta device) over the dense fp16 matmul rate measured on this GPU.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
import json
import logging
import os
import statistics
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lseg_ros.core.backends.base import resolve_device
from lseg_ros.core.backends.factory import create_backend
from lseg_ros.core.errors import BackendError, LsegError
from lseg_ros.core.interrupts import staged_path, write_text
from lseg_ros.deploy.report import environment

LOG = logging.getLogger(__name__)

#: Named torch configurations (backend options) the tool can measure.
_PLAIN = {'channels_last': False, 'cudnn_benchmark': False, 'fold_bn': False,
          'layernorm': 'fp32', 'compile_mode': None, 'fold_projections': False,
          'patch_matmul': False, 'gelu_epilogue': False, 'reassemble_matmul': False,
          'attention': 'sdpa'}
_NHWC = dict(_PLAIN, cuda_graph=True, channels_last=True, cudnn_benchmark=True)
TORCH_PRESETS = {
    # the torch backend's own defaults (on a GPU: fp16, lean, compiled in a CUDA graph; for
    # ViT-L/16 with the matrix-product levers and the projection fold)
    'torch-default': ('auto', {}),
    'torch-fp32-eager': ('fp32', dict(_PLAIN, cuda_graph=False)),
    'torch-fp32-graph': ('fp32', dict(_PLAIN, cuda_graph=True)),
    'torch-fp16-eager': ('fp16', dict(_PLAIN, cuda_graph=False)),
    'torch-fp16-graph': ('fp16', dict(_PLAIN, cuda_graph=True)),
    # the GPU default before issue 11
    'torch-fp16-graph-nhwc': ('fp16', _NHWC),
    'torch-fp16-compile': ('fp16', dict(_PLAIN, cuda_graph=False,
                                        compile_mode='reduce-overhead')),
}
#: Issue 11's levers, each on top of torch-fp16-graph-nhwc (one lever per preset).
TORCH_PRESETS.update({
    'torch-fp16-foldbn': ('fp16', dict(_NHWC, fold_bn=True)),
    'torch-fp16-ln16': ('fp16', dict(_NHWC, layernorm='fp16')),
    'torch-fp16-sdpa-flash': ('fp16', dict(_NHWC, attention='flash')),
    'torch-fp16-sdpa-cudnn': ('fp16', dict(_NHWC, attention='cudnn')),
    'torch-fp16-sdpa-efficient': ('fp16', dict(_NHWC, attention='efficient')),
    'torch-fp16-inductor-graph': ('fp16', dict(_NHWC, compile_mode='default')),
    'torch-fp16-autotune-graph': ('fp16', dict(_NHWC, compile_mode='max-autotune-no-cudagraphs')),
    'torch-fp8-rowwise': ('fp16', dict(_NHWC, fp8='rowwise')),
    'torch-fp8-tensorwise': ('fp16', dict(_NHWC, fp8='tensorwise')),
    # combinations
    'torch-fp16-lean': ('fp16', dict(_NHWC, layernorm='fp16', fold_bn=True)),
    'torch-fp16-lean-inductor': ('fp16', dict(_NHWC, layernorm='fp16', fold_bn=True,
                                              compile_mode='default')),      # = compile: true
    'torch-fp16-lean-proj': ('fp16', dict(_NHWC, layernorm='fp16', fold_bn=True,
                                          fold_projections=True)),
    'torch-fp16-lean-proj-inductor': ('fp16', dict(_NHWC, layernorm='fp16', fold_bn=True,
                                                   fold_projections=True,
                                                   compile_mode='default')),
    'torch-fp16-lean-autotune': ('fp16', dict(_NHWC, layernorm='fp16', fold_bn=True,
                                              compile_mode='max-autotune-no-cudagraphs')),
    # the default without one of its ViT levers: the patch embedding as a convolution, the
    # blocks' exact GELU in its own kernel, the decoder's projections after its upsampling,
    # the reassemble stages as convolutions, the attention in PyTorch's SDPA kernels
    'torch-default-conv-patch': ('auto', {'patch_matmul': False}),
    'torch-default-exact-gelu': ('auto', {'gelu_epilogue': False}),
    'torch-default-unfolded-proj': ('auto', {'fold_projections': False}),
    'torch-default-conv-reassemble': ('auto', {'reassemble_matmul': False}),
    'torch-default-sdpa-attention': ('auto', {'attention': 'sdpa'}),
    # the default uncompiled: the node's and the commands' `compile: off`
    'torch-default-compile-off': ('auto', {'compile_mode': None}),
})
BASELINE = 'torch-fp32-eager'
GPU_DEFAULT = ('torch-fp32-eager', 'torch-fp16-eager', 'torch-fp16-graph',
               'torch-fp16-graph-nhwc', 'torch-fp16-lean', 'torch-default')
CPU_DEFAULT = ('torch-fp32-eager',)


@dataclass
class Spec:
    """One backend configuration to measure."""

    label: str
    backend: str
    precision: str
    options: Dict = field(default_factory=dict)
    engine: Optional[str] = None
    onnx: Optional[str] = None


def parse_sizes(text: str) -> List[Tuple[int, int]]:
    """Parse ``384x384,480x640`` into ``[(384, 384), (480, 640)]`` (multiples of 32)."""
    sizes = []
    for part in str(text).replace(' ', '').split(','):
        if not part:
            continue
        pieces = part.lower().replace('×', 'x').split('x')
        try:
            dims = [int(p) for p in pieces]
        except ValueError:
            raise LsegError(f'bad size {part!r}: expected HxW such as 480x640') from None
        if len(dims) == 1:
            dims *= 2
        if len(dims) != 2 or min(dims) <= 0 or dims[0] % 32 or dims[1] % 32:
            raise LsegError(f'bad size {part!r}: HxW with positive multiples of 32')
        sizes.append((dims[0], dims[1]))
    if not sizes:
        raise LsegError('no sizes given')
    return sizes


def build_specs(names: Optional[Sequence[str]], device: torch.device,
                onnx: Sequence[str] = (), engines: Sequence[str] = (),
                baseline: bool = True) -> List[Spec]:
    """Return the baseline first (unless not wanted), the torch presets, ONNX files, engines."""
    cuda = device.type == 'cuda'
    names = list(names) if names else list(GPU_DEFAULT if cuda else CPU_DEFAULT)
    unknown = [n for n in names if n not in TORCH_PRESETS]
    if unknown:
        raise LsegError(f'unknown backend preset(s) {unknown}; choose from '
                        f'{", ".join(TORCH_PRESETS)} (ONNX files: --onnx, engines: --engine)')
    if BASELINE in names:
        names.remove(BASELINE)
    specs = [Spec(BASELINE, 'torch', *TORCH_PRESETS[BASELINE])] if baseline else []
    for name in names:
        precision, options = TORCH_PRESETS[name]
        specs.append(Spec(name, 'torch', precision, dict(options)))
    for path in onnx:
        from lseg_ros.core.backends.artifacts import onnx_graph_precision
        if not os.path.isfile(path):
            raise LsegError(f'ONNX file not found: {path}')
        precision = onnx_graph_precision(path)
        specs.append(Spec(f'onnxruntime-{precision}', 'onnxruntime', precision, onnx=path))
    for path in engines:
        from lseg_ros.core.backends.artifacts import read_metadata
        if not os.path.isfile(path):
            raise LsegError(f'engine file not found: {path}')
        identity = read_metadata(path)['identity']
        specs.append(Spec(f'{identity["trt_module"]}-{identity["precision"]}', 'tensorrt',
                          identity['precision'], engine=path))
    return specs


@contextmanager
def strict_fp32():
    """Disable TF32 for matmul and cuDNN inside the block (restored afterwards)."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn


def sample_input(variant, size: Tuple[int, int]) -> torch.Tensor:
    """Return the sample frame at ``size`` as a normalised (1, 3, H, W) float32 CPU tensor."""
    from lseg_ros.core.preprocess import Geometry, Normalizer
    from lseg_ros.core.samples import sample_frame

    rgb = torch.from_numpy(sample_frame(3, size[0], size[1]))
    geometry = Geometry(tuple(size), tuple(size), tuple(size))
    return Normalizer(variant.mean, variant.std, 'cpu')(rgb, geometry).contiguous()


def encoder_flops(variant, size: Tuple[int, int]) -> float:
    """Count the FLOPs of one image-encoder forward at ``size`` (counted on the meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lseg_ros.core.model.image_encoder import LsegImageEncoder

    with torch.device('meta'):
        model = LsegImageEncoder(variant).eval()
        x = torch.empty(1, 3, *size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def dense_fp16_tflops(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """Measured dense fp16 matmul rate of the GPU (TFLOP/s, median of ``repeats``)."""
    a = torch.randn(n, n, device=device, dtype=torch.float16)
    b = torch.randn(n, n, device=device, dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2.0 * n ** 3 / statistics.median(times) / 1e12


def percentiles(samples_ms: Sequence[float]) -> Dict[str, float]:
    """p50/p90/p99/mean/min/max of latency samples in ms."""
    values = np.asarray(samples_ms, dtype=np.float64)
    return {'p50': float(np.percentile(values, 50)), 'p90': float(np.percentile(values, 90)),
            'p99': float(np.percentile(values, 99)), 'mean': float(values.mean()),
            'min': float(values.min()), 'max': float(values.max()), 'n': int(values.size)}


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_backend(backend, x: torch.Tensor, warmup: int, iterations: int) -> Dict:
    """Time ``backend(x)`` (+ synchronisation) after ``warmup`` calls."""
    device = x.device
    _sync(device)
    start = time.perf_counter()
    out = backend(x)
    _sync(device)
    first = 1e3 * (time.perf_counter() - start)
    shape = list(out.shape)
    dtype = str(out.dtype).replace('torch.', '')
    for _ in range(max(0, warmup - 1)):
        backend(x)
    _sync(device)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        backend(x)
        _sync(device)
        samples.append(1e3 * (time.perf_counter() - start))
    result = percentiles(samples)
    result.update(first_call_ms=first, output_shape=shape, output_dtype=dtype)
    return result


def measure(weights, specs: Sequence[Spec], sizes: Sequence[Tuple[int, int]],
            device='auto', warmup: int = 10, iterations: int = 50,
            measure_peak: bool = True, batches: Sequence[int] = (1,)) -> Dict:
    """Measure every spec at every size and batch size; returns the JSON-ready report.

    A batch of B repeats the sample frame B times in one (B, 3, H, W) call; rows give the
    call's latency, ``per_image_ms`` and ``frames_per_s`` (B / p50).
    """
    device = resolve_device(device)
    variant = weights.variant
    inputs = {size: sample_input(variant, size) for size in sizes}
    flops = {size: encoder_flops(variant, size) for size in sizes}
    peak = dense_fp16_tflops(device) if measure_peak and device.type == 'cuda' else None
    results, skipped = [], []
    with strict_fp32():
        for spec in specs:
            LOG.info('latency: %s', spec.label)
            start = time.perf_counter()
            try:
                backend = create_backend(spec.backend, weights, device, spec.precision,
                                         engine=spec.engine, onnx=spec.onnx, **spec.options)
            except BackendError as error:
                LOG.warning('latency: skipping %s: %s', spec.label, error)
                skipped.append({'label': spec.label, 'reason': str(error)})
                continue
            load = time.perf_counter() - start
            info = backend.describe()
            for size in sizes:
                for batch in batches:
                    row = _measure_one(backend, spec, info, inputs[size], size, batch, device,
                                       warmup, iterations, skipped)
                    if row is None:
                        continue
                    row.update(gflop=batch * flops[size] / 1e9, load_seconds=load)
                    if peak:
                        row['floor_ms'] = batch * flops[size] / (peak * 1e12) * 1e3
                        row['x_floor'] = row['p50'] / row['floor_ms']
                    results.append(row)
            backend.close()
            del backend
            if device.type == 'cuda':
                torch.cuda.empty_cache()
    baseline = {(tuple(r['size']), r['batch']): r['p50'] for r in results
                if r['label'] == BASELINE}
    single = {(r['label'], tuple(r['size'])): r['frames_per_s'] for r in results
              if r['batch'] == 1}
    for row in results:
        base = baseline.get((tuple(row['size']), row['batch']))
        row['speedup_vs_eager_fp32'] = base / row['p50'] if base else None
        one = single.get((row['label'], tuple(row['size'])))
        row['batch_gain'] = row['frames_per_s'] / one if one else None
    return {
        'tool': 'latency', 'variant': variant.name, 'checkpoint': weights.source,
        'device': str(device), 'environment': environment(device),
        'method': {
            'input': 'sample frame, normalised once on the CPU, copied to the device before '
                     'timing (no host-to-device copy timed)',
            'output': 'left on the device (no device-to-host copy timed)',
            'timer': 'time.perf_counter around backend(x) + device synchronize',
            'warmup': warmup, 'iterations': iterations,
            'fp32': 'strict (TF32 off for matmul and cuDNN; TensorRT fp32 engines without TF32)',
            'floor': 'encoder FLOPs (torch.utils.flop_counter) / measured dense fp16 matmul '
                     'rate' if peak else None,
        },
        'dense_fp16_tflops': peak,
        'results': results, 'skipped': skipped,
    }


def _measure_one(backend, spec: Spec, info: Dict, x: torch.Tensor, size: Tuple[int, int],
                 batch: int, device: torch.device, warmup: int, iterations: int,
                 skipped: List[Dict]) -> Optional[Dict]:
    """Time one size and batch; None (and a ``skipped`` entry) when it fails."""
    x = x.to(device).expand(batch, -1, -1, -1).contiguous()
    try:
        timing = time_backend(backend, x, warmup, iterations)
    except (BackendError, RuntimeError) as error:
        LOG.warning('latency: %s at %s batch %d failed: %s', spec.label, size, batch, error)
        skipped.append({'label': spec.label, 'size': list(size), 'batch': batch,
                        'reason': f'{type(error).__name__}: {error}'})
        if device.type == 'cuda':
            torch.cuda.empty_cache()
        return None
    row = {'label': spec.label, 'backend': spec.backend,
           'precision': info.get('precision', spec.precision),
           'mode': info.get('mode') or info.get('cuda_graph') or '',
           'size': list(size), 'batch': batch, 'describe': info}
    row.update(timing)
    row['per_image_ms'] = row['p50'] / batch
    row['frames_per_s'] = 1e3 * batch / row['p50']
    LOG.info('  %dx%d batch %d: p50 %.2f ms p90 %.2f p99 %.2f (first %.0f ms)', size[0],
             size[1], batch, row['p50'], row['p90'], row['p99'], row['first_call_ms'])
    return row


def format_table(report: Dict) -> str:
    """Markdown table of a latency report."""
    lines = [f'{report["variant"]} on {_device_name(report)}',
             '',
             '| backend | precision | mode | size | batch | p50 ms | p90 ms | p99 ms '
             '| frames/s | vs batch 1 | vs eager fp32 | x floor |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for row in report['results']:
        speed = row.get('speedup_vs_eager_fp32')
        floor = row.get('x_floor')
        gain = row.get('batch_gain')
        lines.append(
            f'| {row["label"]} | {row["precision"]} | {row["mode"]} | '
            f'{row["size"][0]}x{row["size"][1]} | {row.get("batch", 1)} | {row["p50"]:.2f} | '
            f'{row["p90"]:.2f} | {row["p99"]:.2f} | {row.get("frames_per_s", 0):.0f} | '
            f'{f"{gain:.2f}x" if gain else "-"} | {f"{speed:.1f}x" if speed else "-"} | '
            f'{f"{floor:.1f}" if floor else "-"} |')
    for item in report.get('skipped', []):
        lines.append(f'\nskipped {item["label"]}'
                     + (f' at {item["size"]}' if 'size' in item else '') + f': {item["reason"]}')
    return '\n'.join(lines)


def _device_name(report: Dict) -> str:
    gpu = report.get('environment', {}).get('gpu')
    return gpu['name'] if gpu else f'{report.get("device")} ({report["environment"]["cpu"]})'


def plot(reports: Iterable[Dict], path: str) -> str:
    """Bar chart of p50 latency (p90 as error bar) per size and backend; writes a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    reports = list(reports)
    fig, axes = plt.subplots(1, len(reports), figsize=(7 * len(reports), 4.5), squeeze=False)
    for ax, report in zip(axes[0], reports):
        rows_b1 = [r for r in report['results'] if r.get('batch', 1) == 1]
        labels = list(dict.fromkeys(r['label'] for r in rows_b1))
        sizes = list(dict.fromkeys(tuple(r['size']) for r in rows_b1))
        width = 0.8 / max(1, len(labels))
        for index, label in enumerate(labels):
            rows = {tuple(r['size']): r for r in rows_b1 if r['label'] == label}
            xs = [i + index * width for i, s in enumerate(sizes) if s in rows]
            p50 = [rows[s]['p50'] for s in sizes if s in rows]
            p90 = [rows[s]['p90'] - rows[s]['p50'] for s in sizes if s in rows]
            ax.bar(xs, p50, width, yerr=[[0] * len(p90), p90], label=label, capsize=2)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))])
        ax.set_xticklabels([f'{h}x{w}' for h, w in sizes])
        ax.set_yscale('log')
        ax.set_ylabel('latency p50 (ms), bar to p90')
        ax.set_title(f'{report["variant"]} image encoder, {_device_name(report)}', fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(axis='y', which='both', alpha=0.3)
    fig.tight_layout()
    with staged_path(path) as staged:
        fig.savefig(staged, dpi=110)
    plt.close(fig)
    return path


def write_json(report: Dict, path: str) -> str:
    """Write a report as JSON (under a temporary name until it is complete)."""
    return write_text(path, json.dumps(report, indent=2, default=str) + '\n')
