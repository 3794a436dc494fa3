# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Q/DQ (INT8) image-encoder ONNX for TensorRT's explicit quantisation.

``quantize_image_encoder`` takes an fp32 image-encoder ONNX from :mod:`lseg_ros.deploy.export`
and writes a copy with QuantizeLinear/DequantizeLinear pairs in front of the inputs and
weights of its convolutions and matrix products, with scales calibrated on real frames
(ONNX Runtime's static quantiser, ``quantize_static`` in QDQ format: symmetric, per-channel
weights, the format TensorRT builds as explicitly quantised, strongly typed networks).

What stays in higher precision, and why (measured on the CPU with ONNX Runtime against
PyTorch fp32, docs/benchmarks.md "INT8 Q/DQ"): LayerNorm, softmax, GELU and the residual adds
are never quantised (only ``Conv``, ``MatMul`` and ``Gemm`` are candidates); the attention
products (``q @ k^T`` and ``attn @ v``: MatMuls with no weight; quantising them cost 2.7
points of label agreement) are kept, and so are the layers named by ``keep`` (regular
expressions over node names), by default :data:`DEFAULT_KEEP`: the fusion decoder and head,
the patch embedding, the readout projections and the MLPs' second Linear (whose input, after
GELU, has the outliers), the combination with the best agreement per quantised layer.  No
combination passed the fp16 thresholds with the reference weights (best: 96.9 % label
agreement for ViT-L/16 at 384x384, 97.9 % for ResNet101): INT8 is offered for users who
measure it on their data, not as a default.
"""

import logging
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import staged_path

LOG = logging.getLogger(__name__)

#: ``fp8`` (E4M3, opset 19) takes the INT8 calibration's activation ranges (ONNX Runtime
#: calibrates float8 itself only from histograms of every tensor, which did not finish in
#: 14 CPU-minutes for ResNet101 at 96x128) and per-channel weight ranges of the fp32 weights.
MODES = ('int8', 'fp8')
#: Largest finite float8 E4M3FN value, and int8's.
FP8_MAX = 448.0
INT8_MAX = 127.0
#: Opset of FP8 QuantizeLinear/DequantizeLinear.
FP8_OPSET = 19
#: Node-name patterns kept in higher precision by default (see the module docstring).
#: (The ViT's patch embedding exports as ``/pretrained/model/proj/Conv``.)
DEFAULT_KEEP: Tuple[str, ...] = (r'/scratch/', r'^/pretrained/model/proj/', r'act_postprocess',
                                 r'/mlp/fc2/')
#: Calibration frames when no images are given: the bundled sample stream.
DEFAULT_CALIBRATION_FRAMES = 8


class QuantizeError(LsegError):
    """The ONNX graph cannot be quantised as asked."""


def calibration_inputs(images: Sequence[np.ndarray], size: Tuple[int, int], variant
                       ) -> List[np.ndarray]:
    """Return the network inputs (1, 3, H, W) float32 of ``images`` resized to ``size``."""
    from lseg_ros.deploy.fidelity import prepare_input

    return [prepare_input(rgb, size, variant).numpy() for rgb in images]


def weightless_matmuls(model) -> List[str]:
    """Return the names of MatMul nodes without an initializer input (attention products)."""
    initializers = {init.name for init in model.graph.initializer}
    constants = {out for node in model.graph.node if node.op_type == 'Constant'
                 for out in node.output}
    weights = initializers | constants
    return [node.name for node in model.graph.node
            if node.op_type == 'MatMul' and not any(i in weights for i in node.input)]


def nodes_to_keep(model, keep: Iterable[str], attention: bool = True) -> List[str]:
    """Return the node names kept in higher precision: attention products and ``keep``."""
    patterns = [re.compile(p) for p in keep]
    names = set(weightless_matmuls(model)) if attention else set()
    for node in model.graph.node:
        if node.op_type in ('Conv', 'MatMul', 'Gemm') and any(p.search(node.name)
                                                              for p in patterns):
            names.add(node.name)
    return sorted(names)


def quantize_image_encoder(onnx_path: str, output: str, images: Sequence[np.ndarray],
                           size: Tuple[int, int], variant, mode: str = 'int8',
                           keep: Iterable[str] = DEFAULT_KEEP, keep_attention: bool = True,
                           calibration: str = 'percentile') -> Dict:
    """Write a Q/DQ copy of the fp32 image-encoder ONNX ``onnx_path`` to ``output``.

    ``images``: RGB uint8 calibration frames, resized to ``size`` (the size the engine will
    mostly run).  ``mode``: ``int8``.  ``calibration``: ``percentile`` (99.999th percentile
    of |x|, robust to the ViT's activation outliers) or ``minmax``.
    Returns a report (counts of quantised and kept nodes, the kept names).
    """
    import onnx
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                              QuantFormat, QuantType, quantize_static)
    except ImportError as error:
        raise QuantizeError(f'onnxruntime (with its quantisation tools) is needed: {error}') \
            from None
    if mode not in MODES:
        raise QuantizeError(f'unknown quantisation {mode!r}; choose {", ".join(MODES)}')
    if not images:
        raise QuantizeError('no calibration images')
    if not os.path.isfile(onnx_path):
        raise QuantizeError(f'ONNX file not found: {onnx_path}')
    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        raise QuantizeError(f'{onnx_path} is an fp16 graph: quantise the fp32 export')
    if any(n.op_type == 'QuantizeLinear' for n in model.graph.node):
        raise QuantizeError(f'{onnx_path} is already quantised')
    if mode == 'fp8' and model_opset(model) < FP8_OPSET:
        raise QuantizeError(f'{onnx_path} has opset {model_opset(model)}: FP8 Q/DQ needs opset '
                            f'{FP8_OPSET} (export it with --opset {FP8_OPSET})')
    excluded = nodes_to_keep(model, keep, keep_attention)
    candidates = [n.name for n in model.graph.node if n.op_type in ('Conv', 'MatMul', 'Gemm')]
    inputs = calibration_inputs(images, size, variant)
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter([{name: x} for x in inputs])

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            return next(self._items, None)

    qtype = QuantType.QInt8
    # Biases stay float: TensorRT refuses a DequantizeLinear of int32 (ONNX Runtime's
    # default quantises them), and fuses the float bias into the INT8 kernel itself.
    extra = {'ActivationSymmetric': True, 'WeightSymmetric': True, 'QuantizeBias': False}
    if calibration == 'percentile':
        method = CalibrationMethod.Percentile
        extra['CalibPercentile'] = 99.999
    elif calibration == 'minmax':
        method = CalibrationMethod.MinMax
    else:
        raise QuantizeError(f'unknown calibration {calibration!r}; choose percentile or minmax')
    with staged_path(output, companions=('.data',)) as staged:
        quantize_static(os.fspath(onnx_path), staged, Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=['Conv', 'MatMul', 'Gemm'],
                        per_channel=True, activation_type=qtype, weight_type=qtype,
                        nodes_to_exclude=excluded, calibrate_method=method,
                        extra_options=extra,
                        use_external_data_format=_needs_external_data(onnx_path))
        if mode == 'fp8':
            float_model = onnx.load(os.fspath(onnx_path))
            fp8_model = int8_to_fp8(onnx.load(staged), {
                init.name: onnx.numpy_helper.to_array(init)
                for init in float_model.graph.initializer})
            del float_model
            onnx.save(fp8_model, staged,
                      save_as_external_data=_needs_external_data(onnx_path),
                      location=os.path.basename(os.fspath(output)) + '.data')
    quantized = onnx.load(os.fspath(output), load_external_data=False)
    pairs = sum(1 for n in quantized.graph.node if n.op_type == 'QuantizeLinear')
    LOG.info('quantised %s -> %s (%s): %d of %d Conv/MatMul/Gemm kept in higher precision, '
             '%d QuantizeLinear nodes', onnx_path, output, mode, len(excluded),
             len(candidates), pairs)
    return {'input': os.fspath(onnx_path), 'output': os.fspath(output), 'mode': mode,
            'calibration': calibration, 'calibration_frames': len(inputs),
            'calibration_size': list(size), 'candidates': len(candidates),
            'kept': excluded, 'kept_count': len(excluded), 'quantize_nodes': pairs,
            'keep_patterns': list(keep), 'keep_attention': keep_attention}


def model_opset(model) -> int:
    """Return the default-domain opset of an ONNX model."""
    return max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')),
               default=0)


def int8_to_fp8(model, float_weights: Dict[str, np.ndarray]):
    """Turn an INT8 Q/DQ graph (symmetric, from :func:`quantize_image_encoder`) into FP8 E4M3.

    Activations keep their calibrated range: an INT8 scale ``s`` (range ``127 s``) becomes
    ``127 s / 448``.  Weights are quantised again from their float values
    (``float_weights``: the fp32 graph's initializers by name; ONNX Runtime names the INT8
    copy ``<name>_quantized``) with per-channel scales ``max|w| / 448`` on the axis of
    their DequantizeLinear.  Zero points become float8 zeros.  Returns ``model`` changed.
    """
    import ml_dtypes
    from onnx import numpy_helper, TensorProto

    fp8 = ml_dtypes.float8_e4m3fn
    inits = {init.name: init for init in model.graph.initializer}
    done = set()

    def replace(name: str, array: np.ndarray) -> None:
        new = numpy_helper.from_array(array, name)
        inits[name].CopyFrom(new)
        done.add(name)

    for node in model.graph.node:
        if node.op_type not in ('QuantizeLinear', 'DequantizeLinear') or len(node.input) < 3:
            continue
        data, scale, zero = node.input[:3]
        if zero in done:
            continue
        if inits[zero].data_type != TensorProto.INT8:
            raise QuantizeError(f'{node.name}: zero point of type {inits[zero].data_type}, '
                                'expected the int8 of a symmetric INT8 graph')
        if np.any(numpy_helper.to_array(inits[zero])):
            raise QuantizeError(f'{node.name}: asymmetric INT8 (non-zero zero point)')
        if data in inits:                             # a weight: quantise its float values
            axis = next((a.i for a in node.attribute if a.name == 'axis'), 1)
            weight = float_weights.get(data[:-len('_quantized')]) \
                if data.endswith('_quantized') else None
            if weight is None:                       # no float copy: the INT8 values
                weight = numpy_helper.to_array(inits[data]).astype(np.float32) * \
                    _per_axis(numpy_helper.to_array(inits[scale]), data, axis, inits)
            weight = weight.astype(np.float32)
            scales = _channel_amax(weight, axis, numpy_helper.to_array(inits[scale]).ndim)
            scales = np.where(scales > 0, scales / FP8_MAX, 1.0).astype(np.float32)
            quantised = np.clip(weight / _per_axis(scales, data, axis, inits), -FP8_MAX, FP8_MAX)
            replace(data, quantised.astype(fp8))
            replace(scale, scales)
        else:                                         # an activation: keep its range
            values = numpy_helper.to_array(inits[scale]).astype(np.float32)
            replace(scale, (values * (INT8_MAX / FP8_MAX)).astype(np.float32))
        replace(zero, np.zeros(numpy_helper.to_array(inits[zero]).shape, fp8))
    return model


def _channel_amax(weight: np.ndarray, axis: int, scale_rank: int) -> np.ndarray:
    """Max |weight| per index of ``axis`` (a scalar for a per-tensor scale)."""
    if scale_rank == 0:
        return np.asarray(np.abs(weight).max(), np.float32)
    axis = axis % weight.ndim
    others = tuple(i for i in range(weight.ndim) if i != axis)
    return np.abs(weight).max(axis=others).astype(np.float32)


def _per_axis(scales: np.ndarray, name: str, axis: int, inits) -> np.ndarray:
    """Broadcast per-channel ``scales`` along ``axis`` of the weight ``name``."""
    from onnx import numpy_helper
    if scales.ndim == 0:
        return scales
    rank = len(inits[name].dims) if name in inits else numpy_helper.to_array(inits[name]).ndim
    shape = [1] * rank
    shape[axis % rank] = -1
    return scales.reshape(shape)


def _needs_external_data(path: str) -> bool:
    """Graphs above ~1.9 GB (ViT-L/16 fp32: 1.2 GB is below) need external data."""
    return os.path.getsize(path) > 1_900_000_000 or os.path.exists(os.fspath(path) + '.data')
