# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Q/DQ (INT8, FP8) image-encoder ONNX for TensorRT's explicit quantisation.

``quantize_image_encoder`` takes an fp32 image-encoder ONNX from :mod:`lseg_ros.deploy.export`,
calibrates it on real frames (:func:`calibrate`: ONNX Runtime's static quantiser, symmetric,
per-channel weights) and writes a graph with QuantizeLinear/DequantizeLinear pairs on the
inputs of its convolutions and matrix products (:func:`apply_qdq`), the form TensorRT builds
as an explicitly quantised, strongly typed network: INT8, or FP8 E4M3 (opset 19) with the
same activation ranges.  The Q/DQ go into the fp32 graph or, with ``float16_base``, into an
fp16 export of the same network, so that a strongly typed engine (TensorRT-RTX, TensorRT 11)
runs every layer left unquantised in fp16, not fp32.  Biases stay float (TensorRT refuses
ONNX Runtime's int32 bias DequantizeLinear).

What stays in higher precision, and why (measured on the CPU with ONNX Runtime against
PyTorch fp32, docs/benchmarks.md "INT8 and FP8 Q/DQ"): LayerNorm, softmax, GELU and the
residual adds are never quantised (only ``Conv``, ``MatMul`` and ``Gemm`` inputs are
candidates); the attention products (``q @ k^T`` and ``attn @ v``: MatMuls with no weight)
are kept, and so are the layers named by ``keep`` (regular expressions over node names), by
default :data:`DEFAULT_KEEP`: the fusion decoder and head, the patch embedding, the readout
projections and the MLPs' second Linear (whose input, after GELU, has the outliers).  No
combination passed the fp16 thresholds with the reference weights: INT8 and FP8 are offered
for users who measure them on their data (tools/fidelity.py), not as a default.
"""

import logging
import os
import re
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import staged_path

LOG = logging.getLogger(__name__)

#: ``fp8`` (E4M3, opset 19) takes the INT8 calibration's activation ranges (ONNX Runtime
#: calibrates float8 itself only from histograms of every tensor, which did not finish in
#: 14 CPU-minutes for ResNet101 at 96x128) and per-channel weight ranges of the fp32 weights.
MODES = ('int8', 'fp8')
#: Largest finite float8 E4M3FN value, and the integer range of symmetric INT8.
FP8_MAX = 448.0
INT8_RANGE = (-127, 127)
#: The operators whose inputs are quantised.
QUANTISABLE = ('Conv', 'MatMul', 'Gemm')
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
        if node.op_type in QUANTISABLE and any(p.search(node.name) for p in patterns):
            names.add(node.name)
    return sorted(names)


def calibrate(onnx_path: str, images: Sequence[np.ndarray], size: Tuple[int, int], variant,
              calibration: str = 'percentile') -> Dict:
    """Return the :func:`qdq_plan` of every Conv/MatMul/Gemm of the fp32 graph ``onnx_path``.

    ONNX Runtime's static quantiser (QDQ format, symmetric INT8, per-channel weights, float
    biases) runs the graph on ``images`` resized to ``size``; its INT8 graph (written to a
    temporary folder) gives the activation ranges.  ``calibration``: ``percentile``
    (99.999th percentile of |x|, robust to the ViT's activation outliers) or ``minmax``.
    """
    import onnx
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                              QuantFormat, QuantType, quantize_static)
    except ImportError as error:
        raise QuantizeError(f'onnxruntime (with its quantisation tools) is needed: {error}') \
            from None
    if not images:
        raise QuantizeError('no calibration images')
    if calibration == 'percentile':
        method, extra = CalibrationMethod.Percentile, {'CalibPercentile': 99.999}
    elif calibration == 'minmax':
        method, extra = CalibrationMethod.MinMax, {}
    else:
        raise QuantizeError(f'unknown calibration {calibration!r}; choose percentile or minmax')
    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    inputs = calibration_inputs(images, size, variant)
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter([{name: x} for x in inputs])

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            return next(self._items, None)

    # Biases stay float: TensorRT refuses a DequantizeLinear of int32 (ONNX Runtime's
    # default quantises them) and fuses the float bias into the quantised kernel itself.
    extra.update(ActivationSymmetric=True, WeightSymmetric=True, QuantizeBias=False)
    with tempfile.TemporaryDirectory(prefix='lseg_calibration.') as folder:
        calibrated = os.path.join(folder, 'int8.onnx')
        quantize_static(os.fspath(onnx_path), calibrated, Reader(),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTISABLE),
                        per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=method,
                        extra_options=extra,
                        use_external_data_format=_needs_external_data(onnx_path))
        return qdq_plan(onnx.load(calibrated, load_external_data=False))


def quantize_image_encoder(onnx_path: str, output: str, images: Sequence[np.ndarray],
                           size: Tuple[int, int], variant, mode: str = 'int8',
                           keep: Iterable[str] = DEFAULT_KEEP, keep_attention: bool = True,
                           calibration: str = 'percentile',
                           float16_base: Optional[str] = None,
                           plan: Optional[Dict] = None) -> Dict:
    """Write a Q/DQ copy of the fp32 image-encoder ONNX ``onnx_path`` to ``output``.

    Calibrates (:func:`calibrate`: ``images``, RGB uint8 frames resized to ``size``, the
    size the engine will mostly run, and ``calibration``) unless a ``plan`` of it is given,
    then quantises the inputs of every Conv/MatMul/Gemm but the kept ones
    (:func:`nodes_to_keep` of ``keep`` and ``keep_attention``) to ``mode`` (``int8`` or
    ``fp8``) with :func:`apply_qdq`: Q/DQ on the inputs of the quantised layers only, the
    placement TensorRT recommends (quantising the outputs and the residual adds too, as
    ONNX Runtime's graph does, cost ResNet101 at 96x128 0.9 points of label agreement:
    97.9 % instead of 98.7 %).
    ``float16_base``: an fp16 export (opset 19) of the same network at the same size; the
    output is then that graph with the Q/DQ, so the layers left unquantised run in fp16 in
    a strongly typed TensorRT engine (TensorRT-RTX, TensorRT 11) instead of fp32.
    Returns a report (counts of quantised and kept nodes, the kept names).
    """
    import onnx

    if mode not in MODES:
        raise QuantizeError(f'unknown quantisation {mode!r}; choose {", ".join(MODES)}')
    if not os.path.isfile(onnx_path):
        raise QuantizeError(f'ONNX file not found: {onnx_path}')
    model = onnx.load(os.fspath(onnx_path), load_external_data=False)
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        raise QuantizeError(f'{onnx_path} is an fp16 graph: quantise the fp32 export (and '
                            'give the fp16 one as the float16 base)')
    if any(n.op_type == 'QuantizeLinear' for n in model.graph.node):
        raise QuantizeError(f'{onnx_path} is already quantised')
    if mode == 'fp8' and float16_base is None and model_opset(model) < FP8_OPSET:
        raise QuantizeError(f'{onnx_path} has opset {model_opset(model)}: FP8 Q/DQ needs opset '
                            f'{FP8_OPSET} (export it with --opset {FP8_OPSET})')
    target = os.fspath(onnx_path)
    if float16_base is not None:
        target = os.fspath(float16_base)
        base = onnx.load(target, load_external_data=False)
        if not any(i.data_type == onnx.TensorProto.FLOAT16 for i in base.graph.initializer):
            raise QuantizeError(f'{target} is not an fp16 graph (export_onnx --fp16)')
        if model_opset(base) < FP8_OPSET:
            raise QuantizeError(f'{target} has opset {model_opset(base)}: float16 Q/DQ needs '
                                f'opset {FP8_OPSET} (export it with --opset {FP8_OPSET})')
        del base
    excluded = nodes_to_keep(model, keep, keep_attention)
    candidates = [n.name for n in model.graph.node if n.op_type in QUANTISABLE]
    if plan is None:
        plan = calibrate(onnx_path, images, size, variant, calibration)
    quantised = apply_qdq({k: v for k, v in plan.items() if k not in set(excluded)},
                          onnx.load(target), mode, target)
    pairs = sum(1 for n in quantised.graph.node if n.op_type == 'QuantizeLinear')
    with staged_path(output, companions=('.data',)) as staged:
        onnx.save(quantised, staged, save_as_external_data=_needs_external_data(target),
                  location=os.path.basename(os.fspath(output)) + '.data')
    del quantised
    LOG.info('quantised %s -> %s (%s over %s): %d of %d Conv/MatMul/Gemm kept in higher '
             'precision, %d QuantizeLinear nodes', onnx_path, output, mode,
             'fp16' if float16_base else 'fp32', len(excluded), len(candidates), pairs)
    return {'input': os.fspath(onnx_path), 'output': os.fspath(output), 'mode': mode,
            'float_type': 'fp16' if float16_base is not None else 'fp32',
            'calibration': calibration, 'calibration_frames': len(images),
            'calibration_size': list(size), 'candidates': len(candidates),
            'kept': excluded, 'kept_count': len(excluded), 'quantize_nodes': pairs,
            'keep_patterns': list(keep), 'keep_attention': keep_attention}


def model_opset(model) -> int:
    """Return the default-domain opset of an ONNX model."""
    return max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')),
               default=0)


def qdq_plan(model) -> Dict[str, Dict[int, Tuple[str, Optional[float]]]]:
    """Return where an INT8 Q/DQ graph quantises: ``{node: {input index: (kind, value)}}``.

    ``kind`` is ``activation`` (``value``: its calibrated INT8 scale) or ``weight``
    (``value``: the channel axis of its scales, None for one scale).
    """
    from onnx import numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    plan: Dict[str, Dict[int, Tuple[str, Optional[float]]]] = {}
    for node in model.graph.node:
        if node.op_type not in QUANTISABLE:
            continue
        for index, tensor in enumerate(node.input[:2]):
            dq = producers.get(tensor)
            if dq is None or dq.op_type != 'DequantizeLinear':
                continue
            scale = numpy_helper.to_array(inits[dq.input[1]])
            if dq.input[0] in inits:
                axis = next((a.i for a in dq.attribute if a.name == 'axis'), 1)
                plan.setdefault(node.name, {})[index] = ('weight',
                                                         axis if scale.ndim else None)
            else:
                plan.setdefault(node.name, {})[index] = ('activation', float(scale))
    return plan


def scales_as(scales: np.ndarray, dtype) -> np.ndarray:
    """Return positive ``scales`` in ``dtype``: float16 ones at least its smallest normal.

    A subnormal (or zero) float16 scale would lose the scale's precision or the layer.
    """
    scales = np.asarray(scales, np.float32)
    if dtype == np.float16:
        scales = np.maximum(scales, np.finfo(np.float16).tiny)
    return scales.astype(dtype)


def quantise_weight(weight: np.ndarray, axis: Optional[int], mode: str, dtype=np.float32
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Return ``(quantised, scales)`` of a float weight: symmetric, per channel of ``axis``.

    INT8: ``scale = max|w| / 127``, values rounded into [-127, 127]; FP8 (E4M3FN):
    ``scale = max|w| / 448``, values rounded to the nearest float8.  The scales are in
    ``dtype`` (:func:`scales_as`), and the values are quantised with those rounded scales.
    """
    import ml_dtypes

    weight = weight.astype(np.float32)
    if axis is None:
        amax = np.asarray(np.abs(weight).max(), np.float32)
        shape = ()
    else:
        axis = axis % weight.ndim
        amax = np.abs(weight).max(axis=tuple(i for i in range(weight.ndim) if i != axis))
        shape = [1] * weight.ndim
        shape[axis] = -1
    top = FP8_MAX if mode == 'fp8' else float(INT8_RANGE[1])
    scales = scales_as(np.where(amax > 0, amax / top, 1.0), dtype)
    values = weight / scales.astype(np.float32).reshape(shape)
    if mode == 'fp8':
        return np.clip(values, -FP8_MAX, FP8_MAX).astype(ml_dtypes.float8_e4m3fn), scales
    return np.clip(np.rint(values), *INT8_RANGE).astype(np.int8), scales


def apply_qdq(plan, model, mode: str, source: str = 'the graph'):
    """Insert the Q/DQ of ``plan`` (:func:`qdq_plan`) into the float graph ``model``.

    ``model`` is the fp32 graph the plan was calibrated on, or an fp16 export of the same
    network (whose node names may carry a ``/model`` prefix): the quantised layers get
    ``mode`` (int8, fp8) inputs, every other layer keeps the graph's float type.  Weights are
    quantised from ``model``'s own values (:func:`quantise_weight`; a weight shared by
    several layers once); activations keep their calibrated range (an FP8 scale is the INT8
    scale x 127 / 448) with scales in the type of the tensor they quantise (float16 needs
    opset 19).  Each new Q/DQ goes right before the first node, in the graph's order, that
    reads it.  Returns ``model`` changed.
    """
    import ml_dtypes
    from onnx import helper, numpy_helper, TensorProto

    zero_type = ml_dtypes.float8_e4m3fn if mode == 'fp8' else np.int8
    float_types = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}
    inits = {init.name: init for init in model.graph.initializer}
    graph_type = np.float16 if any(i.data_type == TensorProto.FLOAT16
                                   for i in model.graph.initializer) else np.float32
    nodes = {n.name: n for n in model.graph.node if n.op_type in QUANTISABLE}
    if not set(plan) <= set(nodes):           # an fp16 export: its names carry /model
        nodes = {(n[len('/model'):] if n.startswith('/model/') else n): node
                 for n, node in nodes.items()}
    missing = sorted(set(plan) - set(nodes))
    if missing:
        raise QuantizeError(f'{source} has no node {missing[0]} ({len(missing)} missing): not '
                            'an export of the calibrated network')
    pending: Dict[str, List] = {}      # new tensor -> the Q/DQ nodes that make it
    made: Dict[Tuple[str, Optional[int]], str] = {}
    added = []

    def constant(name: str, array: np.ndarray) -> str:
        added.append(numpy_helper.from_array(array, name))
        return name

    def quantised_weight(node, tensor: str, axis: Optional[int], dtype) -> str:
        if tensor not in inits:
            raise QuantizeError(f'{source}: a weight input of {node.name} is not an '
                                'initializer')
        if (tensor, axis) not in made:
            suffix = '' if not any(t == tensor for t, _ in made) else f'_axis{axis}'
            name = f'{tensor}{suffix}'
            values, scales = quantise_weight(numpy_helper.to_array(inits[tensor]), axis, mode,
                                             dtype)
            out = f'{name}_DequantizeLinear_Output'
            pending[out] = [helper.make_node(
                'DequantizeLinear',
                [constant(f'{name}_quantized', values), constant(f'{name}_scale', scales),
                 constant(f'{name}_zero_point', np.zeros(scales.shape, zero_type))],
                [out], name=f'{name}_DequantizeLinear',
                **({} if axis is None else {'axis': axis}))]
            made[(tensor, axis)] = out
        return made[(tensor, axis)]

    def quantised_activation(tensor: str, scale: float, dtype) -> str:
        if (tensor, None) not in made:
            if mode == 'fp8':
                scale *= INT8_RANGE[1] / FP8_MAX
            params = [constant(f'{tensor}_scale', scales_as(scale, dtype)),
                      constant(f'{tensor}_zero_point', np.zeros((), zero_type))]
            out = f'{tensor}_DequantizeLinear_Output'
            pending[out] = [
                helper.make_node('QuantizeLinear', [tensor] + params,
                                 [f'{tensor}_QuantizeLinear_Output'],
                                 name=f'{tensor}_QuantizeLinear'),
                helper.make_node('DequantizeLinear', [f'{tensor}_QuantizeLinear_Output'] + params,
                                 [out], name=f'{tensor}_DequantizeLinear')]
            made[(tensor, None)] = out
        return made[(tensor, None)]

    for name, inputs in plan.items():
        node = nodes[name]
        weights = [inits[t] for t in node.input[:2] if t in inits]
        dtype = float_types.get(weights[0].data_type, graph_type) if weights else graph_type
        for index, (kind, value) in sorted(inputs.items()):
            tensor = node.input[index]
            node.input[index] = (
                quantised_weight(node, tensor, None if value is None else int(value), dtype)
                if kind == 'weight' else quantised_activation(tensor, value, dtype))
    ordered = []
    for node in model.graph.node:
        for tensor in node.input:
            ordered.extend(pending.pop(tensor, ()))
        ordered.append(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    model.graph.initializer.extend(added)
    used = {t for node in model.graph.node for t in node.input}
    used |= {o.name for o in model.graph.output}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def _needs_external_data(path: str) -> bool:
    """Graphs above ~1.9 GB (ViT-L/16 fp32: 1.2 GB is below) need external data."""
    return os.path.getsize(path) > 1_900_000_000 or os.path.exists(os.fspath(path) + '.data')
