# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of the LSeg image encoder and the CLIP text encoder, checked with ONNX Runtime.

Image encoder graph: input ``image`` (1, 3, H, W) float32, normalised like the variant's
pre-processing, H and W multiples of 32 -> output ``features`` (1, 512, H/2, W/2) float32
(not normalised; the head normalises).  H and W are dynamic by default (input *and* output
axes are declared, so the output shape follows the input), or fixed.

``precision='fp16'`` exports a float16 graph for strongly typed TensorRT engines (TensorRT
10/11 and TensorRT-RTX take their precision from the ONNX types): every weight and
activation is float16 except LayerNorm (and, by default, the attention softmax), which run
in float32 between explicit ``Cast`` nodes; the graph's input and output stay float32.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` at opset 17
(``LayerNormalization`` -> TensorRT ``INormalizationLayer``; TensorRT 10.0-10.3 parse
opsets up to 20).  It needs no ``onnxscript`` and gives the same graph on torch 2.11 and
2.15.  Every export is checked with ``onnx.checker`` (full check) and run in ONNX Runtime
(CPU) against PyTorch; a result beyond tolerance raises :class:`ExportError`.  The graph is
written under a temporary name next to the output and takes its name (with its ``.data``
file) only after every check passed, so a failed or interrupted export leaves no file.
"""

from dataclasses import asdict, dataclass, field
import logging
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple
import warnings

import numpy as np
import torch
from torch import nn

from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import staged_path
from lseg_ros.core.model.precision import half_encoder
from lseg_ros.core.preprocess import MULTIPLE

LOG = logging.getLogger(__name__)

DEFAULT_OPSET = 17
IMAGE_INPUT = 'image'
IMAGE_OUTPUT = 'features'
TEXT_INPUT = 'tokens'
TEXT_OUTPUT = 'text_features'
#: Size (H, W) traced for a dynamic export and the second size checked in ONNX Runtime.
DEFAULT_TRACE_SIZE = (256, 320)
DEFAULT_SECOND_SIZE = (320, 256)
#: protobuf cannot serialise a single file of 2 GiB or more; keep a margin.
PROTOBUF_LIMIT = 1900 * 1024 * 1024

#: ONNX Runtime vs PyTorch fp32 acceptance (per export precision).
TOLERANCES = {
    'fp32': {'max_rel_l2': 1e-4, 'min_cosine': 0.9999},
    'fp16': {'max_rel_l2': 3e-2, 'min_cosine': 0.99},
}


class ExportError(LsegError):
    """An ONNX export failed, or the exported graph does not match PyTorch."""


# --------------------------------------------------------------------------- fp16 modules


class FloatIO(nn.Module):
    """Run a float16 network behind float32 input and output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cast the input to float16 and the output back to float32."""
        return self.model(x.half()).float()


def image_encoder_module(weights, precision: str = 'fp32', softmax_fp32: bool = True
                         ) -> nn.Module:
    """Return the CPU module that is exported: float32 I/O for both precisions."""
    from lseg_ros.core.model.checkpoint import build_image_encoder

    if precision == 'fp32':
        return build_image_encoder(weights, 'cpu')
    if precision == 'fp16':
        return FloatIO(half_encoder(weights, 'cpu', softmax_fp32)).eval()
    raise ExportError(f'unknown export precision {precision!r}; choose fp32 or fp16')


class TextEncoderGraph(nn.Module):
    """CLIP ``encode_text`` for export: (N, 77) int64 tokens -> (N, 512) float32 embeddings.

    The end-of-text position is the argmax of the tokens cast to int32 (ONNX Runtime and
    TensorRT lack an int64 ArgMax on some versions).  The embeddings are not normalised,
    like :meth:`ClipTextEncoder.encode_tokens`.
    """

    def __init__(self, text_model: nn.Module):
        super().__init__()
        self.model = text_model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encode tokens."""
        model = self.model
        eot = tokens.to(torch.int32).argmax(dim=-1)
        x = model.token_embedding(tokens) + model.positional_embedding
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return x @ model.text_projection


# --------------------------------------------------------------------------------- results
@dataclass
class ExportResult:
    """What was exported and how it compared with PyTorch."""

    path: str
    kind: str                      # 'image' or 'text'
    variant: str
    precision: str
    dynamic: bool
    input_name: str
    output_name: str
    input_shape: List             # ints and axis names
    opset: int
    exporter: str
    size_bytes: int
    external_data: bool
    seconds: float
    torch_version: str
    checks: List[Dict] = field(default_factory=list)
    tolerance: Dict = field(default_factory=dict)

    def as_dict(self) -> Dict:
        """Return a JSON-friendly dict."""
        return asdict(self)


def parse_size(text: str) -> Tuple[int, int]:
    """Parse ``HxW`` (or a single number for a square) into ``(H, W)``."""
    try:
        parts = [int(p) for p in str(text).lower().replace('×', 'x').split('x')]
    except ValueError:
        raise ExportError(f'bad size {text!r}: expected HxW such as 480x640') from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ExportError(f'bad size {text!r}: expected HxW such as 480x640')
    return parts[0], parts[1]


def check_size(size: Tuple[int, int], what: str = 'size') -> Tuple[int, int]:
    """Require a positive ``(H, W)`` whose sides are multiples of 32."""
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0 or h % MULTIPLE or w % MULTIPLE:
        raise ExportError(f'{what} {h}x{w}: height and width must be positive multiples of '
                          f'{MULTIPLE}')
    return h, w


# ------------------------------------------------------------------------------ comparison
def compare_arrays(reference: np.ndarray, test: np.ndarray, channel_axis: int = 1) -> Dict:
    """Relative L2, max-abs and per-position cosine (float64) of two equally shaped arrays."""
    if reference.shape != test.shape:
        return {'shape_ok': False, 'reference_shape': list(reference.shape),
                'test_shape': list(test.shape)}
    a = reference.astype(np.float64)
    b = test.astype(np.float64)
    denom = np.linalg.norm(a)
    rel = float(np.linalg.norm(a - b) / denom) if denom > 0 else float(np.linalg.norm(b))
    dot = (a * b).sum(channel_axis)
    norms = np.linalg.norm(a, axis=channel_axis) * np.linalg.norm(b, axis=channel_axis)
    cos = np.where(norms > 0, dot / np.maximum(norms, 1e-300), 1.0)
    finite = bool(np.isfinite(b).all())
    return {'shape_ok': True, 'finite': finite, 'rel_l2': rel,
            'max_abs': float(np.abs(a - b).max()), 'min_cosine': float(cos.min()),
            'mean_cosine': float(cos.mean())}


def _passes(metrics: Dict, tolerance: Dict) -> bool:
    return bool(metrics.get('shape_ok') and metrics.get('finite')
                and metrics['rel_l2'] <= tolerance['max_rel_l2']
                and metrics['min_cosine'] >= tolerance['min_cosine'])


def onnxruntime_session(path: str, threads: Optional[int] = None):
    """Return a CPU ONNX Runtime session for ``path`` (onnxruntime imported here)."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ExportError(f'onnxruntime is not installed ({error}); pip install onnxruntime') \
            from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), options, providers=['CPUExecutionProvider'])


def check_onnx_model(path: str) -> None:
    """Run ``onnx.checker`` (full check: types and shapes inferred); raise on failure."""
    import onnx

    try:
        onnx.checker.check_model(os.fspath(path), full_check=True)
    except Exception as error:  # noqa: B902 - onnx raises several types
        raise ExportError(f'{path}: onnx checker failed: {error}') from None


# --------------------------------------------------------------------------------- export
def _torch_export(module: nn.Module, example: torch.Tensor, path: str, input_name: str,
                  output_name: str, dynamic_axes: Optional[Dict], opset: int) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo=True (needs onnxscript);
        # it is kept because it gives the same opset-17 graph on every torch we support.
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', category=UserWarning)
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        kwargs = {'input_names': [input_name], 'output_names': [output_name],
                  'opset_version': opset, 'do_constant_folding': True,
                  'dynamic_axes': dynamic_axes}
        try:
            torch.onnx.export(module, (example,), path, dynamo=False, **kwargs)
        except TypeError:  # torch without the dynamo argument
            torch.onnx.export(module, (example,), path, **kwargs)


def _finalize_file(path: str, external_data: Optional[bool]) -> bool:
    """Move weights to ``<file>.data`` when asked (or needed); returns whether it did."""
    import onnx

    size = os.path.getsize(path)
    if external_data is None:
        external_data = size >= PROTOBUF_LIMIT
    if not external_data:
        return False
    model = onnx.load(path)
    location = os.path.basename(path) + '.data'
    data_path = os.path.join(os.path.dirname(os.path.abspath(path)), location)
    if os.path.exists(data_path):
        os.remove(data_path)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=1024)
    return True


def _file_size(path: str) -> int:
    data = path + '.data'
    return os.path.getsize(path) + (os.path.getsize(data) if os.path.exists(data) else 0)


def export_image_encoder(weights, output: str, precision: str = 'fp32',
                         dynamic: bool = True, size: Optional[Tuple[int, int]] = None,
                         check_sizes: Optional[Sequence[Tuple[int, int]]] = None,
                         opset: int = DEFAULT_OPSET, softmax_fp32: bool = True,
                         external_data: Optional[bool] = None,
                         tolerance: Optional[Dict] = None, check: bool = True,
                         seed: int = 0) -> ExportResult:
    """Export the image encoder of ``weights`` to ``output`` and check it.

    ``dynamic``: H and W are free (multiples of 32; ``size`` is then only the traced
    example, default 256x320).  Otherwise the graph is fixed at ``size`` (required).
    ``check_sizes``: sizes run in ONNX Runtime and PyTorch (default: the traced size and,
    for a dynamic graph, a second, transposed size); a result beyond ``tolerance``
    (:data:`TOLERANCES`) raises :class:`ExportError`.
    """
    if precision not in TOLERANCES:
        raise ExportError(f'unknown export precision {precision!r}; choose fp32 or fp16')
    if not 7 <= opset <= 20:
        raise ExportError(f'opset {opset} is not supported: use 17..20 (TensorRT 10.3 parses '
                          'opsets up to 20; LayerNormalization needs 17)')
    if size is None:
        if not dynamic:
            raise ExportError('a fixed-size export needs a size (HxW)')
        size = DEFAULT_TRACE_SIZE
    size = check_size(size, 'export size')
    if check_sizes is None:
        check_sizes = [size]
        if dynamic and DEFAULT_SECOND_SIZE != size:
            check_sizes.append(DEFAULT_SECOND_SIZE if size == DEFAULT_TRACE_SIZE
                               else (size[1], size[0]))
    check_sizes = [check_size(s, 'check size') for s in check_sizes]
    if not dynamic and any(s != size for s in check_sizes):
        raise ExportError(f'a fixed {size[0]}x{size[1]} graph can only be checked at that size')
    tolerance = dict(TOLERANCES[precision], **(tolerance or {}))
    output = os.fspath(output)
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)

    start = time.perf_counter()
    module = image_encoder_module(weights, precision, softmax_fp32)
    example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
    axes = None
    if dynamic:
        axes = {IMAGE_INPUT: {2: 'height', 3: 'width'},
                IMAGE_OUTPUT: {2: 'feature_height', 3: 'feature_width'}}
    LOG.info('exporting %s image encoder (%s, %s) to %s', weights.variant.name, precision,
             'dynamic HxW' if dynamic else f'{size[0]}x{size[1]}', output)
    with staged_path(output, companions=('.data',)) as staged:
        try:
            with torch.inference_mode(False), torch.no_grad():
                _torch_export(module, example, staged, IMAGE_INPUT, IMAGE_OUTPUT, axes, opset)
        except Exception as error:  # noqa: B902 - exporter failures come in many types
            raise ExportError(f'torch.onnx.export failed: {type(error).__name__}: {error}') \
                from None
        external = _finalize_file(staged, external_data)
        check_onnx_model(staged)
        shape = [1, 3, 'height', 'width'] if dynamic else [1, 3, size[0], size[1]]
        result = ExportResult(
            path=output, kind='image', variant=weights.variant.name, precision=precision,
            dynamic=dynamic, input_name=IMAGE_INPUT, output_name=IMAGE_OUTPUT,
            input_shape=shape, opset=opset, exporter='torch.onnx.export(dynamo=False)',
            size_bytes=_file_size(staged), external_data=external, seconds=0.0,
            torch_version=torch.__version__, tolerance=tolerance)
        if check:
            reference = module if precision == 'fp32' else image_encoder_module(weights,
                                                                                'fp32')
            result.checks = check_image_encoder(staged, reference, check_sizes, tolerance,
                                                seed)
        result.seconds = time.perf_counter() - start
        return _checked(result, output, tolerance)


def check_image_encoder(path: str, reference: nn.Module, sizes: Sequence[Tuple[int, int]],
                        tolerance: Dict, seed: int = 0) -> List[Dict]:
    """Run the ONNX graph (ONNX Runtime CPU) and the fp32 PyTorch module at ``sizes``."""
    session = onnxruntime_session(path)
    checks = []
    for index, (h, w) in enumerate(sizes):
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed + 1 + index))
        with torch.inference_mode():
            expected = reference(x).float().numpy()
        actual = session.run([IMAGE_OUTPUT], {IMAGE_INPUT: x.numpy()})[0]
        metrics = compare_arrays(expected, actual)
        metrics.update(size=[h, w], passed=_passes(metrics, tolerance))
        LOG.info('onnxruntime vs torch at %dx%d: %s', h, w,
                 ', '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                           for k, v in metrics.items() if k != 'size'))
        checks.append(metrics)
    return checks


def export_text_encoder(weights, output: str, opset: int = DEFAULT_OPSET,
                        check: bool = True, labels: Sequence[str] = ('dog', 'grass', 'a photo '
                                                                     'of a red car', 'other'),
                        tolerance: Optional[Dict] = None) -> ExportResult:
    """Export CLIP ``encode_text`` (dynamic batch N, 77 tokens, fp32) and check it."""
    from lseg_ros.core.model.text_encoder import CONTEXT_LENGTH, ClipTextEncoder

    if not 14 <= opset <= 20:
        raise ExportError(f'opset {opset} is not supported for the text encoder: use 14..20')
    tolerance = dict(TOLERANCES['fp32'], **(tolerance or {}))
    output = os.fspath(output)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    start = time.perf_counter()
    encoder = ClipTextEncoder(weights.text, device='cpu')
    module = TextEncoderGraph(encoder.model).eval()
    tokens = encoder.tokenize(list(labels))
    axes = {TEXT_INPUT: {0: 'labels'}, TEXT_OUTPUT: {0: 'labels'}}
    LOG.info('exporting the CLIP text encoder to %s', output)
    with staged_path(output, companions=('.data',)) as staged:
        try:
            with torch.inference_mode(False), torch.no_grad():
                _torch_export(module, tokens[:2], staged, TEXT_INPUT, TEXT_OUTPUT, axes, opset)
        except Exception as error:  # noqa: B902
            raise ExportError(f'torch.onnx.export failed: {type(error).__name__}: {error}') \
                from None
        check_onnx_model(staged)
        result = ExportResult(
            path=output, kind='text', variant=weights.variant.name, precision='fp32',
            dynamic=True, input_name=TEXT_INPUT, output_name=TEXT_OUTPUT,
            input_shape=['labels', CONTEXT_LENGTH], opset=opset,
            exporter='torch.onnx.export(dynamo=False)', size_bytes=_file_size(staged),
            external_data=False, seconds=0.0, torch_version=torch.__version__,
            tolerance=tolerance)
        if check:
            session = onnxruntime_session(staged)
            expected = encoder.encode_tokens(tokens).numpy()
            actual = session.run([TEXT_OUTPUT], {TEXT_INPUT: tokens.numpy()})[0]
            metrics = compare_arrays(expected, actual)
            metrics.update(size=[int(tokens.shape[0]), CONTEXT_LENGTH],
                           passed=_passes(metrics, tolerance))
            result.checks = [metrics]
        result.seconds = time.perf_counter() - start
        return _checked(result, output, tolerance)


def _checked(result, output: str, tolerance):
    """Return ``result``, or raise :class:`ExportError` when a check failed."""
    failed = [c for c in result.checks if not c['passed']]
    if failed:
        raise ExportError(f'{output}: ONNX Runtime output differs from PyTorch beyond tolerance '
                          f'{tolerance}: {failed}')
    return result


def count_ops(path: str) -> Dict[str, int]:
    """Return how often each op type occurs in the ONNX graph at ``path``."""
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def fp32_islands(path: str) -> Dict[str, int]:
    """Count the ops of an fp16 graph that compute in float32 between Cast nodes.

    Returns ``{op_type: count}`` of nodes whose first input is produced by a Cast to float.
    """
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    to_float = set()
    for node in model.graph.node:
        if node.op_type == 'Cast':
            to = [a.i for a in node.attribute if a.name == 'to']
            if to and to[0] == onnx.TensorProto.FLOAT:
                to_float.update(node.output)
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        if node.input and node.input[0] in to_float and node.op_type != 'Cast':
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
