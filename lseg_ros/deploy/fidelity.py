# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fidelity of a backend against PyTorch fp32, on byte-identical pre-processed input.

For every size, one RGB image is pre-processed once on the CPU (float32); the very same
tensor (its sha256 is recorded) is copied to the device and encoded by the reference
(PyTorch eager fp32, TF32 off) and by the backend under test.  Metrics, in float64:

* per-pixel cosine of the (512,) feature vectors: mean, p1, p0.1, min; the map of 1-cos is
  drawn as a heat map (catches localised fp16 overflow that a global cosine hides);
* relative L2 ``||A-B|| / ||A||`` and max-abs difference (raw and per-pixel normalised);
* task level, with the text embeddings of the given labels and the pipeline's head
  (normalise, dot, x2 upsample): argmax agreement of the two label maps, their mIoU (mean
  over labels present in either map, each label's IoU and pixel counts listed: a label on a
  single near-tie pixel weighs as much as a large one), and the reference's top-1 margin at
  the pixels that disagree (near-ties explain most flips).

Thresholds (defaults per precision of the backend under test; engineering targets from
docs/deployment.md) give PASS or FAIL and the tool's exit code.
"""

import hashlib
import logging
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lseg_ros.core.backends.base import resolve_device
from lseg_ros.core.backends.factory import create_backend
from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import staged_path
from lseg_ros.core.model.head import logits_at_input, text_weights
from lseg_ros.core.options import FIDELITY_LABELS
from lseg_ros.deploy.latency import strict_fp32
from lseg_ros.deploy.report import environment

LOG = logging.getLogger(__name__)

#: name -> (comparison, default for an fp16 backend, default for an fp32 backend)
THRESHOLDS = {
    'mean_cosine': ('>=', 0.999, 0.99999),
    'p1_cosine': ('>=', 0.99, 0.9999),
    'min_cosine': ('>=', 0.9, 0.9999),
    'rel_l2': ('<=', 3e-2, 1e-4),
    'agreement': ('>=', 0.99, 0.999),
    'miou': ('>=', 0.97, 0.99),
}


def default_thresholds(precision: str) -> Dict[str, float]:
    """Return the default thresholds for a backend of ``precision`` (fp16 or fp32)."""
    column = 1 if precision == 'fp16' else 2
    return {name: spec[column] for name, spec in THRESHOLDS.items()}


def input_digest(x: torch.Tensor) -> str:
    """sha256 of a CPU tensor's bytes (proves both backends saw the same input)."""
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def prepare_input(rgb: np.ndarray, size: Tuple[int, int], variant) -> torch.Tensor:
    """Resize an RGB uint8 image to exactly ``size`` and normalise it: (1, 3, H, W) CPU."""
    from lseg_ros.core.preprocess import Geometry, Normalizer

    source = (int(rgb.shape[0]), int(rgb.shape[1]))
    geometry = Geometry(source, tuple(size), tuple(size))
    image = torch.from_numpy(np.ascontiguousarray(rgb))
    return Normalizer(variant.mean, variant.std, 'cpu')(image, geometry).contiguous()


def compare(reference: torch.Tensor, test: torch.Tensor,
            weights: Optional[torch.Tensor] = None) -> Tuple[Dict, torch.Tensor]:
    """Metrics of test vs reference (1, C, h, w) features; returns (metrics, 1-cos map)."""
    if tuple(reference.shape) != tuple(test.shape):
        raise LsegError(f'feature shapes differ: reference {tuple(reference.shape)}, '
                        f'test {tuple(test.shape)}')
    device = reference.device
    a = reference[0].to(device, torch.float64)
    b = test[0].to(device, torch.float64)
    finite = bool(torch.isfinite(b).all())
    b = torch.nan_to_num(b, nan=0.0, posinf=0.0, neginf=0.0)
    na = a.norm(dim=0)
    nb = b.norm(dim=0)
    cos = (a * b).sum(0) / (na * nb).clamp_min(1e-300)
    flat = cos.flatten()
    diff = a - b
    a_unit = a / na.clamp_min(1e-300)
    b_unit = b / nb.clamp_min(1e-300)
    metrics = {
        'finite': finite,
        'mean_cosine': float(flat.mean()),
        'p1_cosine': _lower_percentile(flat, 1.0),
        'p01_cosine': _lower_percentile(flat, 0.1),
        'min_cosine': float(flat.min()),
        'rel_l2': float(diff.norm() / a.norm().clamp_min(1e-300)),
        'max_abs': float(diff.abs().max()),
        'max_abs_normalized': float((a_unit - b_unit).abs().max()),
        'pixels': int(flat.numel()),
    }
    del diff, a_unit, b_unit
    if weights is not None:
        w = weights.to(device, torch.float32)
        ref_logits = logits_at_input(reference.float(), w)[0]
        test_logits = logits_at_input(torch.nan_to_num(test.float()), w)[0]
        ref_mask = ref_logits.argmax(0)
        test_mask = test_logits.argmax(0)
        same = ref_mask == test_mask
        metrics['agreement'] = float(same.double().mean())
        per_label = []
        for k in range(w.shape[0]):
            r, t = ref_mask == k, test_mask == k
            union = int((r | t).sum())
            if union:
                per_label.append({'label': k, 'iou': int((r & t).sum()) / union,
                                  'reference_pixels': int(r.sum()),
                                  'test_pixels': int(t.sum())})
        metrics['miou'] = float(np.mean([e['iou'] for e in per_label])) if per_label else 1.0
        metrics['labels_present'] = len(per_label)
        # Every label present counts alike in the mean, also one that covers a few
        # near-tie pixels: these entries show when such a label is what lowers the mIoU.
        metrics['label_ious'] = per_label
        if not bool(same.all()):
            top2 = ref_logits.topk(2, dim=0).values
            margin = (top2[0] - top2[1])[~same]
            metrics['flip_margin_median'] = float(margin.median())
            metrics['flip_margin_max'] = float(margin.max())
        else:
            metrics['flip_margin_median'] = metrics['flip_margin_max'] = 0.0
        metrics['label_map_pixels'] = int(ref_mask.numel())
    return metrics, (1.0 - cos).float().cpu()


def _lower_percentile(values: torch.Tensor, percent: float) -> float:
    """Return the ``percent``-th percentile (nearest rank from below) of a 1-D tensor."""
    rank = max(1, int(np.ceil(percent / 100.0 * values.numel())))
    return float(values.kthvalue(rank).values)


def verdict(metrics: Dict, thresholds: Dict[str, float]) -> List[str]:
    """Return the failed checks of ``metrics`` (empty = PASS)."""
    failed = []
    if not metrics.get('finite', True):
        failed.append('non-finite values in the backend output')
    for name, bound in thresholds.items():
        if bound is None or name not in metrics:
            continue
        op = THRESHOLDS[name][0]
        value = metrics[name]
        ok = value >= bound if op == '>=' else value <= bound
        if not ok:
            failed.append(f'{name} {value:.6g} (needs {op} {bound:g})')
    return failed


def run_fidelity(weights, backend: str = 'torch', precision: str = 'fp16',
                 sizes: Sequence[Tuple[int, int]] = ((384, 384),), device='auto',
                 labels: str = FIDELITY_LABELS, images: Optional[Sequence[np.ndarray]] = None,
                 engine: Optional[str] = None, onnx: Optional[str] = None,
                 thresholds: Optional[Dict[str, float]] = None,
                 reference_device=None, **options) -> Dict:
    """Compare ``backend`` with PyTorch fp32 at ``sizes``; returns the report.

    ``images``: RGB uint8 arrays (default: the bundled sample frame); each is resized to
    every size.  ``reference_device``: where PyTorch fp32 runs (default: ``device``).
    The report holds ``passed``, per-case metrics and failures; ``heatmaps`` (not JSON)
    holds the 1-cos maps for :func:`plot_heatmaps`.
    """
    from lseg_ros.core.labels import parse_labels
    from lseg_ros.core.model.text_encoder import ClipTextEncoder

    device = resolve_device(device)
    reference_device = resolve_device(reference_device or device)
    variant = weights.variant
    if images is None:
        from lseg_ros.core.samples import sample_frame
        images = [sample_frame(5, 480, 640)]
    label_list = parse_labels(labels)
    text = ClipTextEncoder(weights.text, device='cpu').encode(label_list)
    head_weights = text_weights(text)
    cases, heatmaps = [], []
    with strict_fp32():
        start = time.perf_counter()
        test = create_backend(backend, weights, device, precision, engine=engine, onnx=onnx,
                              **options)
        test_info = test.describe()
        test_precision = test.precision
        reference = create_backend('torch', weights, reference_device, 'fp32',
                                   cuda_graph=False, channels_last=False,
                                   cudnn_benchmark=False)
        load = time.perf_counter() - start
        limits = default_thresholds(test_precision)
        limits.update({k: v for k, v in (thresholds or {}).items() if v is not None})
        for image_index, rgb in enumerate(images):
            for size in sizes:
                x = prepare_input(rgb, size, variant)
                digest = input_digest(x)
                ref_features = reference(x.to(reference_device)).detach().float().clone()
                test_features = test(x.to(device)).detach().clone()
                if input_digest(x) != digest:
                    raise LsegError('the input tensor changed while encoding')
                metrics, heat = compare(ref_features.to(device), test_features.to(device),
                                        head_weights)
                for entry in metrics.get('label_ious', ()):
                    entry['name'] = label_list[entry['label']]
                failed = verdict(metrics, limits)
                case = {'image': image_index, 'size': list(size), 'input_sha256': digest,
                        'feature_shape': list(ref_features.shape),
                        'test_dtype': str(test_features.dtype).replace('torch.', ''),
                        'metrics': metrics, 'failed': failed, 'passed': not failed}
                cases.append(case)
                heatmaps.append((f'image {image_index}, {size[0]}x{size[1]}', heat.numpy()))
                LOG.info('fidelity %dx%d: mean cos %.6f, p1 %.6f, min %.6f, rel L2 %.2e, '
                         'agreement %.4f, mIoU %.4f -> %s', size[0], size[1],
                         metrics['mean_cosine'], metrics['p1_cosine'], metrics['min_cosine'],
                         metrics['rel_l2'], metrics.get('agreement', float('nan')),
                         metrics.get('miou', float('nan')), 'PASS' if not failed else 'FAIL')
                if metrics.get('label_ious'):
                    worst = min(metrics['label_ious'], key=lambda e: e['iou'])
                    LOG.info('  lowest label IoU: %s %.4f (%d reference pixels, %d test '
                             'pixels)', worst['name'], worst['iou'], worst['reference_pixels'],
                             worst['test_pixels'])
                del ref_features, test_features
        test.close()
        reference.close()
    return {
        'tool': 'fidelity', 'variant': variant.name, 'checkpoint': weights.source,
        'backend': test_info, 'reference': {'backend': 'torch', 'precision': 'fp32',
                                            'mode': 'eager', 'tf32': False,
                                            'device': str(reference_device)},
        'labels': list(label_list), 'thresholds': limits,
        'threshold_ops': {k: v[0] for k, v in THRESHOLDS.items()},
        'load_seconds': load, 'environment': environment(device),
        'cases': cases, 'passed': all(c['passed'] for c in cases),
        'heatmaps': heatmaps,
    }


def json_report(report: Dict) -> Dict:
    """Return the report without the heat-map arrays."""
    return {k: v for k, v in report.items() if k != 'heatmaps'}


def plot_heatmaps(report: Dict, path: str) -> str:
    """Write a PNG with one heat map of log10(1 - cos) per case."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.colors import LogNorm
    import matplotlib.pyplot as plt

    maps = report['heatmaps']
    fig, axes = plt.subplots(1, len(maps), figsize=(max(6.0, 4.6 * len(maps)), 4.4),
                             squeeze=False)
    floor = 1e-12
    values = [np.clip(m, floor, 2.0) for _, m in maps]
    vmax = max(max(float(v.max()) for v in values), floor * 10)
    vmin = max(floor, vmax * 1e-4)        # four decades below the worst pixel
    for ax, (title, _), value, case in zip(axes[0], maps, values, report['cases']):
        image = ax.imshow(value, norm=LogNorm(vmin=vmin, vmax=vmax), cmap='magma',
                          interpolation='nearest')
        m = case['metrics']
        ax.set_title(f'{title}\nmean cos {m["mean_cosine"]:.6f}, min {m["min_cosine"]:.6f}',
                     fontsize=8)
        ax.axis('off')
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label='1 - cos')
    backend = report['backend']
    mode = backend.get('mode') or backend.get('cuda_graph') or backend.get('providers') or ''
    fig.suptitle(f'{report["variant"]}: {backend.get("backend")} {backend.get("precision")} '
                 f'({mode})\nvs PyTorch fp32: {"PASS" if report["passed"] else "FAIL"}',
                 fontsize=9)
    fig.tight_layout()
    with staged_path(path) as staged:
        fig.savefig(staged, dpi=100)
    plt.close(fig)
    return path
