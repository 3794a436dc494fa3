# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's /diagnostics status: key/values from its counters, configuration and GPU."""

from typing import Dict, Mapping, Optional

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def gpu_memory(device) -> Optional[Dict[str, float]]:
    """Return torch's ``allocated``/``reserved`` MiB on a CUDA ``device`` (None on the CPU)."""
    if device.type != 'cuda':
        return None
    import torch
    return {'allocated': torch.cuda.memory_allocated(device) / 2**20,
            'reserved': torch.cuda.memory_reserved(device) / 2**20}


def diagnostic_values(snap: Mapping, counters: Mapping[str, int], info: Mapping[str, str],
                      settings: Mapping, label_set, startup_s: float,
                      memory: Optional[Mapping[str, float]] = None) -> Dict[str, str]:
    """Return the key/values of the node's status.

    ``snap``: :meth:`RollingStats.snapshot`; ``counters``: ``received``, ``dropped`` (the
    frame slot's) and ``lost`` (in transport); ``info``: ``pipeline.describe()``;
    ``settings``: the node's parameters; ``memory``: :func:`gpu_memory`.
    """
    values = {
        'fps': f'{snap["fps"]:.2f}',
        'latency_p50_ms': f'{snap["latency"]["p50"]:.2f}',
        'latency_p99_ms': f'{snap["latency"]["p99"]:.2f}',
        'frames_received': str(counters['received']),
        'frames_processed': str(snap['processed']),
        'frames_dropped': str(counters['dropped']),
        'frames_bad': str(snap['bad']),
        'frames_lost_in_transport': str(counters['lost']),
        'backend': info['backend'], 'device': info['device'],
        'precision': info['precision'], 'mode': info.get('mode', '-'),
        'levers': info.get('levers', '-'),
        'quantization': info.get('quantization', '-'), 'variant': info['variant'],
        'engine': settings['engine'] or '-', 'input_size': info['input_size'],
        'engine_fallback': info.get('fallback') or '-',
        'label_version': str(label_set.version), 'labels': ','.join(label_set.labels),
        'startup_s': f'{startup_s:.2f}',
    }
    for stage, value in snap['stages_p50'].items():
        values[f'stage_{stage}_p50_ms'] = f'{value:.3f}'
    if memory is not None:
        values['gpu_memory_allocated_mb'] = f'{memory["allocated"]:.0f}'
        values['gpu_memory_reserved_mb'] = f'{memory["reserved"]:.0f}'
    return values


def diagnostic_status(name: str, snap: Mapping, dropped: int, hardware_id: str,
                      values: Mapping[str, str]) -> DiagnosticStatus:
    """Return the status ``name`` (one per camera): WARN while only bad frames came, else OK."""
    level = DiagnosticStatus.WARN if snap['bad'] and snap['processed'] == 0 else \
        DiagnosticStatus.OK
    return DiagnosticStatus(
        level=level, name=name,
        message=f'{snap["fps"]:.1f} fps, {dropped} dropped', hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()])
