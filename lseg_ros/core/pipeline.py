# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LsegPipeline: what the node, the CLI and the tools call.

``set_labels(...)`` computes text embeddings and installs them atomically with a new label
version; ``segment(rgb)`` runs pre-processing, the image encoder backend and the head on the
pipeline's device and returns only what was asked for; ``segment_batch(images)`` does the
same for B frames of one size with one encoder call (several cameras, bag segmentation).
A frame is segmented and reported with one :class:`LabelSet` snapshot, so labels can change
from another thread at any time.
"""

from dataclasses import dataclass, field, replace
import logging
import threading
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from lseg_ros.core.backends import create_backend, resolve_device
from lseg_ros.core.errors import LabelError, NonFiniteOutputError
from lseg_ros.core.labels import parse_labels
from lseg_ros.core.model.checkpoint import load_weights, LsegWeights
from lseg_ros.core.model.head import (logits_at_input, normalize_features, reduce_logits,
                                      text_weights)
from lseg_ros.core.model.text_encoder import ClipTextEncoder
from lseg_ros.core.model.variants import Variant
from lseg_ros.core.options import DEFAULT_INPUT_SIZE, DEFAULT_LABELS
from lseg_ros.core.overlay import blend, palette
from lseg_ros.core.preprocess import check_rgb, Geometry, Normalizer, plan_geometry
from lseg_ros.core.timing import StageTimer

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelSet:
    """One vocabulary: labels, their version, raw and head-ready text embeddings."""

    labels: tuple
    version: int
    text_features: torch.Tensor          # (K, 512) float32, CPU, not normalised
    weights: torch.Tensor                # (K, 512) normalised x logit scale, on the device
    colors: torch.Tensor                 # (K, 3) overlay colours, on the device

    @property
    def mask_dtype(self):
        """uint8 up to 255 labels, uint16 above (mono8 / mono16)."""
        return np.uint8 if len(self.labels) <= 255 else np.uint16


@dataclass(frozen=True)
class OutputRequest:
    """What :meth:`LsegPipeline.segment` computes besides the mask."""

    confidence: bool = False
    overlay: bool = False
    overlay_alpha: float = 0.5
    features_stride: int = 0           # 0: no features; n: every n-th cell of the H/2 grid
    raw: bool = False                  # image features and network-size logits (CLI)


@dataclass
class SegmentationResult:
    """The outputs of one frame (numpy arrays at the source image size unless noted)."""

    mask: np.ndarray                            # (H, W) uint8 / uint16 label indices
    label_set: LabelSet
    geometry: Geometry
    confidence: Optional[np.ndarray] = None     # (H, W) float32 in [1/K, 1]
    overlay: Optional[np.ndarray] = None        # (H, W, 3) uint8 RGB
    features: Optional[np.ndarray] = None       # (h', w', D) float32, L2-normalised
    image_features: Optional[np.ndarray] = None  # (1, D, H'/2, W'/2) network output
    logits: Optional[np.ndarray] = None         # (1, K, H', W') at the network input
    timings: Dict[str, float] = field(default_factory=dict)


def check_finite_output(result: SegmentationResult, info: Optional[Dict] = None) -> None:
    """Raise :class:`NonFiniteOutputError` when a raw result has NaN or infinite values."""
    info = info or {}
    for name, array in (('image features', result.image_features), ('logits', result.logits)):
        if array is None:
            continue
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(finite.size - np.count_nonzero(finite))
            hint = (' (or fp16 overflows: try precision fp32)'
                    if info.get('precision') == 'fp16' else '')
            raise NonFiniteOutputError(
                f'the weights produce non-finite output: {bad:,} of {finite.size:,} {name} '
                f'values of the warm-up frame are NaN or infinite with {info.get("backend")} '
                f'{info.get("precision")} on {info.get("device")}{hint}; the model cannot be '
                'used')


class LsegPipeline:
    """LSeg inference: text encoder + image encoder backend + head, on one device."""

    def __init__(self, backend, text_encoder: ClipTextEncoder, variant: Variant,
                 input_size: int = DEFAULT_INPUT_SIZE):
        self.backend = backend
        self.device = backend.device
        self.text_encoder = text_encoder
        self.variant = variant
        self.input_size = int(input_size)
        plan_geometry(self.input_size, self.input_size, self.input_size)  # validates size
        self.normalizer = Normalizer(variant.mean, variant.std, self.device)
        self._label_lock = threading.Lock()
        self._labels: Optional[LabelSet] = None
        self._pinned: Optional[torch.Tensor] = None      # GPU: page-locked upload buffer
        self._uploaded: Optional[torch.cuda.Event] = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Union[str, LsegWeights], backend: str = 'auto',
                        device: str = 'auto', precision: str = 'fp32',
                        input_size: int = DEFAULT_INPUT_SIZE,
                        labels: Union[str, Sequence[str]] = DEFAULT_LABELS,
                        engine: Optional[str] = None, onnx: Optional[str] = None,
                        **backend_options) -> 'LsegPipeline':
        """Load an official checkpoint and build the pipeline with an initial label list."""
        weights = checkpoint if isinstance(checkpoint, LsegWeights) else load_weights(checkpoint)
        resolved = resolve_device(device)
        encoder_backend = create_backend(backend, weights, resolved, precision, engine=engine,
                                         onnx=onnx, **backend_options)
        text = ClipTextEncoder(weights.text, device=resolved)
        pipeline = cls(encoder_backend, text, weights.variant, input_size)
        pipeline.set_labels(labels)
        return pipeline

    # ----------------------------------------------------------------------------- labels
    @property
    def labels(self) -> LabelSet:
        """The label set the next frame will use."""
        if self._labels is None:
            raise LabelError('no labels set')
        return self._labels

    def prepare_labels(self, labels: Union[str, Sequence[str]]) -> LabelSet:
        """Parse and embed ``labels`` without installing them (version 0 until installed)."""
        parsed = parse_labels(labels)
        return self.label_set_from_embeddings(parsed, self.text_encoder.encode(parsed))

    def label_set_from_embeddings(self, labels: Sequence[str],
                                  text_features: torch.Tensor) -> LabelSet:
        """Make a (not installed) label set from given (K, 512) text embeddings."""
        labels = tuple(labels)
        return LabelSet(labels, 0, text_features, text_weights(text_features).to(self.device),
                        palette(labels, self.device))

    def install_labels(self, label_set: LabelSet) -> LabelSet:
        """Make ``label_set`` current with the next version number; returns it."""
        with self._label_lock:
            version = 1 if self._labels is None else self._labels.version + 1
            self._labels = replace(label_set, version=version)
            return self._labels

    def set_labels(self, labels: Union[str, Sequence[str]]) -> LabelSet:
        """Parse, embed and install ``labels``; raises :class:`LabelError` when invalid."""
        return self.install_labels(self.prepare_labels(labels))

    # ------------------------------------------------------------------------- inference
    def geometry(self, height: int, width: int) -> Geometry:
        """Return the network geometry used for an image of ``height`` x ``width``."""
        return plan_geometry(height, width, self.input_size)

    def warmup(self, height: int, width: int) -> None:
        """Run one frame of this size so kernels, graphs and caches are ready.

        Raises :class:`NonFiniteOutputError` when the network output of that frame has NaN
        or infinite values (weights that produce garbage).
        """
        result = self.segment(np.zeros((height, width, 3), np.uint8), OutputRequest(raw=True))
        check_finite_output(result, self.describe())

    def segment(self, rgb: np.ndarray, request: OutputRequest = OutputRequest(),
                label_set: Optional[LabelSet] = None) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 RGB image with the current (or given) labels."""
        return self.segment_batch([rgb], request, label_set)[0]

    @torch.inference_mode()
    def segment_batch(self, images: Sequence[np.ndarray], request: OutputRequest = OutputRequest(),
                      label_set: Optional[LabelSet] = None) -> List[SegmentationResult]:
        """Segment B (H, W, 3) uint8 RGB images of one size, in one encoder call per chunk.

        All images use the same label set (one snapshot).  Chunks are at most the backend's
        ``max_batch`` (an engine or ONNX file with a fixed batch of one runs them one by one).
        Each result equals :meth:`segment` of that image up to the numerics of a batched
        matrix product; ``timings`` are those of the whole call (``batch`` gives its size).
        """
        images = list(images)
        if not images:
            return []
        for rgb in images:
            check_rgb(rgb)
        shapes = sorted({tuple(rgb.shape[:2]) for rgb in images})
        if len(shapes) > 1:
            raise ValueError(f'segment_batch needs images of one size, got {shapes}; group '
                             'them by size')
        label_set = label_set or self.labels
        step = self.backend.max_batch or len(images)
        results: List[SegmentationResult] = []
        for start in range(0, len(images), step):
            results.extend(self._segment_chunk(images[start:start + step], request, label_set))
        return results

    def _segment_chunk(self, images: List[np.ndarray], request: OutputRequest,
                       label_set: LabelSet) -> List[SegmentationResult]:
        geometry = self.geometry(images[0].shape[0], images[0].shape[1])
        timer = StageTimer(self.device)
        batch = self._upload(images)
        x = self.normalizer(batch, geometry)
        timer.mark('preprocess')
        features = self.backend(x)
        timer.mark('encoder')
        logits = logits_at_input(features, label_set.weights)
        reduced = [reduce_logits(logits[i:i + 1], geometry, request.confidence)
                   for i in range(len(images))]
        timer.mark('head')
        small = torch.uint8 if label_set.mask_dtype is np.uint8 else torch.int32
        results = []
        for i, (index, confidence) in enumerate(reduced):
            mask = index.to(small).cpu().numpy().astype(label_set.mask_dtype, copy=False)
            result = SegmentationResult(mask=mask, label_set=label_set, geometry=geometry)
            if confidence is not None:
                result.confidence = confidence.cpu().numpy()
            if request.overlay:
                result.overlay = blend(batch[i], index, label_set.colors,
                                       request.overlay_alpha).cpu().numpy()
            if request.features_stride > 0:
                fh, fw = geometry.feature_valid
                step = request.features_stride
                grid = normalize_features(features[i:i + 1, :, :fh:step, :fw:step])
                result.features = grid[0].permute(1, 2, 0).contiguous().cpu().numpy()
            if request.raw:
                result.image_features = features[i:i + 1].float().cpu().numpy()
                result.logits = logits[i:i + 1].float().cpu().numpy()
            results.append(result)
        timer.mark('postprocess')
        timings = timer.result()
        timings['batch'] = float(len(images))
        for result in results:
            result.timings = dict(timings)
        return results

    def _upload(self, images: List[np.ndarray]) -> torch.Tensor:
        """Return the images as one (B, H, W, 3) uint8 tensor on the device.

        On a GPU the frames go through a page-locked buffer, so the copy is one DMA
        transfer that does not block the host (from pageable memory the driver stages it
        synchronously).  The buffer is reused once the previous transfer has finished.
        """
        if self.device.type != 'cuda':
            if len(images) == 1:
                return torch.from_numpy(np.ascontiguousarray(images[0])).unsqueeze(0)
            return torch.from_numpy(np.stack(images))
        if self._uploaded is not None:
            self._uploaded.synchronize()
        shape = (len(images),) + tuple(images[0].shape)
        if self._pinned is None or tuple(self._pinned.shape) != shape:
            self._pinned = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        for slot, rgb in zip(self._pinned, images):
            slot.copy_(torch.from_numpy(np.ascontiguousarray(rgb)))
        batch = self._pinned.to(self.device, non_blocking=True)
        self._uploaded = torch.cuda.Event()
        self._uploaded.record()
        return batch

    def describe(self) -> Dict[str, str]:
        """Return the effective configuration, for the start-up log and diagnostics."""
        info = dict(self.backend.describe())
        info.update(variant=self.variant.name, input_size=str(self.input_size))
        return info
