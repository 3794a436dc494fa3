# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LsegPipeline: what the node, the CLI and the tools call.

``set_labels(...)`` computes text embeddings and installs them atomically with a new label
version; ``set_query(text)`` does the same for the free-text query of the similarity
heat-map; ``segment(rgb)`` runs pre-processing, the image encoder backend and the head on the
pipeline's device and returns only what was asked for; ``segment_batch(images)`` does the
same for B frames of one size with one encoder call (several cameras, bag segmentation).
A frame is segmented and reported with one :class:`LabelSet` snapshot, so labels can change
from another thread at any time.
"""

from dataclasses import dataclass, field, replace
import logging
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from lseg_ros.core.backends import create_backend, resolve_device
from lseg_ros.core.errors import LabelError, NonFiniteOutputError
from lseg_ros.core.labels import parse_labels, parse_query
from lseg_ros.core.model.checkpoint import load_weights, LsegWeights
from lseg_ros.core.model.head import (logits_at_input, normalize_features, reduce_logits,
                                      similarity_at_input, text_weights, to_source)
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
class QueryEmbedding:
    """The free-text query of the similarity heat-map and its CLIP text embedding."""

    text: str
    embedding: torch.Tensor              # (D,) float32, L2-normalised, on the device


@dataclass(frozen=True)
class OutputRequest:
    """What :meth:`LsegPipeline.segment` computes besides the mask."""

    confidence: bool = False
    overlay: bool = False
    overlay_alpha: float = 0.5
    features_stride: int = 0           # 0: no features; n: every n-th cell of the H/2 grid
    raw: bool = False                  # image features and network-size logits (CLI)
    similarity: bool = False           # cosine to the current query (when one is set)

    @staticmethod
    def union(requests: Sequence['OutputRequest']) -> 'OutputRequest':
        """Return the request computing every output one of ``requests`` asks for.

        Several cameras in one batch share one request; overlay alpha and feature stride
        are the first request's that has them (the node gives all cameras the same).
        """
        overlay = [r for r in requests if r.overlay]
        features = [r for r in requests if r.features_stride > 0]
        return OutputRequest(
            confidence=any(r.confidence for r in requests), overlay=bool(overlay),
            overlay_alpha=overlay[0].overlay_alpha if overlay else 0.5,
            features_stride=features[0].features_stride if features else 0,
            raw=any(r.raw for r in requests),
            similarity=any(r.similarity for r in requests))

    def keep(self, result: 'SegmentationResult') -> 'SegmentationResult':
        """Return ``result`` with only the outputs this request asks for (a shallow copy)."""
        return replace(
            result, confidence=result.confidence if self.confidence else None,
            overlay=result.overlay if self.overlay else None,
            features=result.features if self.features_stride > 0 else None,
            image_features=result.image_features if self.raw else None,
            logits=result.logits if self.raw else None,
            similarity=result.similarity if self.similarity else None,
            query=result.query if self.similarity else None)


@dataclass
class SegmentationResult:
    """The outputs of one frame (numpy arrays at the source image size unless noted)."""

    mask: np.ndarray                            # (H, W) uint8 / uint16 label indices
    label_set: LabelSet
    geometry: Geometry
    confidence: Optional[np.ndarray] = None     # (H, W) float32 in [1/K, 1]
    overlay: Optional[np.ndarray] = None        # (H, W, 3) uint8 RGB
    features: Optional[np.ndarray] = None       # (h', w', D) float32, L2-normalised
    similarity: Optional[np.ndarray] = None     # (H, W) float32 cosine to the query, [-1, 1]
    query: Optional[str] = None                 # the query text of ``similarity``
    image_features: Optional[np.ndarray] = None  # (1, D, H'/2, W'/2) network output
    logits: Optional[np.ndarray] = None         # (1, K, H', W') at the network input
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedFrame:
    """An RGB frame copied to host memory the device reads directly (see ``stage``)."""

    pixels: torch.Tensor                        # (H, W, 3) uint8, page-locked on a GPU

    @property
    def shape(self) -> tuple:
        """(H, W, 3), like the numpy image it was copied from."""
        return tuple(self.pixels.shape)


class _QueuedFrame:
    """One frame's outputs on their way to the host, and its own head timer.

    ``host`` maps output names to host tensors whose copies may still be queued on the
    device; ``timer`` has one mark, ``head``, recorded after the last of them.
    """

    def __init__(self, host: Dict[str, Optional[torch.Tensor]], timer: StageTimer):
        self.host = host
        self.timer = timer

    def result(self, label_set: LabelSet, geometry: Geometry, query: Optional[QueryEmbedding],
               shared: Dict[str, float], batch: int) -> SegmentationResult:
        """Wait for the frame's device work, then wrap its outputs (``shared``: batch stages)."""
        head = self.timer.result()['head']     # synchronises on the frame's last copy
        start = time.perf_counter()
        arrays = {name: None if value is None else value.numpy()
                  for name, value in self.host.items()}
        result = SegmentationResult(
            mask=arrays['mask'].astype(label_set.mask_dtype, copy=False),
            label_set=label_set, geometry=geometry, confidence=arrays['confidence'],
            overlay=arrays.get('overlay'), features=arrays.get('features'),
            similarity=arrays.get('similarity'),
            query=query.text if 'similarity' in arrays else None,
            image_features=arrays.get('image_features'), logits=arrays.get('logits'))
        timings = {'preprocess': shared['preprocess'], 'encoder': shared['encoder'],
                   'head': head, 'postprocess': 1000.0 * (time.perf_counter() - start)}
        timings['total'] = sum(timings.values())
        timings['batch'] = float(batch)
        result.timings = timings
        return result


#: Outputs of ``OutputRequest.raw`` (network-size arrays, for tools and tests).
RAW_OUTPUTS = ('image_features', 'logits')


def queues_all_heads(device: torch.device) -> bool:
    """Whether every frame's head of a batch is queued before the first frame is given.

    On a GPU the host queues them while the device runs the encoder.  On a CPU a head
    runs when it is called, so work done ahead would only delay the frame handed out.
    """
    return device.type == 'cuda'


def size_groups(images: Sequence[np.ndarray]) -> List[List[int]]:
    """Return the indices of ``images`` grouped by (height, width), first seen first.

    Each group can go to :meth:`LsegPipeline.segment_batch` as one call.
    """
    groups: Dict[tuple, List[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape[:2]), []).append(index)
    return list(groups.values())


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
        self._query: Optional[QueryEmbedding] = None

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

    # ------------------------------------------------------------------------------ query
    @property
    def query(self) -> Optional[QueryEmbedding]:
        """The query the next frame's similarity map will use (None: no query)."""
        return self._query

    def prepare_query(self, text: str) -> Optional[QueryEmbedding]:
        """Check and embed ``text`` without installing it; None for an empty query."""
        query = parse_query(text)
        if not query:
            return None
        embedding = self.text_encoder.encode([query])[0].float()
        return QueryEmbedding(query, F.normalize(embedding, dim=0).to(self.device))

    def install_query(self, query: Optional[QueryEmbedding]) -> None:
        """Make ``query`` current (None: no similarity map); one reference swap."""
        self._query = query

    def set_query(self, text: str) -> Optional[QueryEmbedding]:
        """Check, embed and install ``text``; raises :class:`LabelError` when invalid."""
        query = self.prepare_query(text)
        self.install_query(query)
        return query

    # ------------------------------------------------------------------------- inference
    def geometry(self, height: int, width: int) -> Geometry:
        """Return the network geometry used for an image of ``height`` x ``width``."""
        return plan_geometry(height, width, self.input_size)

    def warmup(self, height: int, width: int, batch: int = 1) -> None:
        """Run frames of this size so kernels, graphs and compiled code are ready.

        With ``batch`` > 1 every batch size a call of up to ``batch`` frames will use is
        run too (see :meth:`batch_shape`), so no later call compiles or captures.
        Raises :class:`NonFiniteOutputError` when the network output of the first frame has
        NaN or infinite values (weights that produce garbage).  On a GPU the memory the
        warm-up cached is returned afterwards.
        """
        frame = np.zeros((height, width, 3), np.uint8)
        # the largest batch first: the smaller ones share its output buffer (TorchBackend)
        for size in sorted({self.batch_shape(b) for b in range(2, int(batch) + 1)},
                           reverse=True):
            self.segment_batch([frame] * size)
        result = self.segment(frame, OutputRequest(raw=True))
        check_finite_output(result, self.describe())
        if self.device.type == 'cuda':
            # The warm-up's working memory (every batch size, the raw outputs) stays in the
            # caching allocator otherwise: give it back; frames reuse what they need.  The
            # CUDA graphs' pool is not affected.
            del result
            torch.cuda.empty_cache()

    def batch_shape(self, count: int, pad_to: Optional[int] = None) -> int:
        """Return the encoder batch used for ``count`` frames.

        When the backend pays for every new shape (CUDA graphs, compiled code) the batch is
        padded to ``pad_to`` (a fixed batch size, e.g. segment_bags') or else to a power of
        two, so that a few shapes serve every count; capped by ``max_batch``.
        """
        limit = self.backend.max_batch
        if limit:
            count = min(count, limit)
        if not getattr(self.backend, 'pad_batches', False) or count < 1:
            return count
        padded = max(count, pad_to) if pad_to else 1 << (count - 1).bit_length()
        return min(padded, limit) if limit else padded

    def segment(self, rgb: np.ndarray, request: OutputRequest = OutputRequest(),
                label_set: Optional[LabelSet] = None) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 RGB image with the current (or given) labels."""
        return self.segment_batch([rgb], request, label_set)[0]

    def segment_batch(self, images: Sequence[np.ndarray], request: OutputRequest = OutputRequest(),
                      label_set: Optional[LabelSet] = None,
                      pad_to: Optional[int] = None) -> List[SegmentationResult]:
        """Segment B (H, W, 3) uint8 RGB images of one size, in one encoder call per chunk.

        All images use the same label set (one snapshot).  Chunks are at most the backend's
        ``max_batch`` (an engine or ONNX file with a fixed batch of one runs them one by one).
        Each result equals :meth:`segment` of that image up to the numerics of a batched
        matrix product; ``timings`` are those of its call (``batch`` gives its size;
        ``postprocess`` is the time spent on that image's own outputs).
        ``request.similarity`` uses one snapshot of the query too (nothing without one).
        ``pad_to``: see :meth:`batch_shape` (padding frames are computed and dropped).
        """
        return list(self.iter_segment_batch(images, request, label_set, pad_to))

    @torch.inference_mode()
    def iter_segment_batch(self, images: Sequence[np.ndarray],
                           request: OutputRequest = OutputRequest(),
                           label_set: Optional[LabelSet] = None,
                           pad_to: Optional[int] = None) -> Iterator[SegmentationResult]:
        """Yield the results of :meth:`segment_batch` one by one, each as soon as it is ready.

        The first frame of a batch can be published while the next ones are copied from
        the GPU (several cameras).  ``images`` may be frames staged with :meth:`stage`.
        Consume the iterator before the next call of the pipeline: the features of a chunk
        live in the backend's output buffer.
        """
        images = list(images)
        if not images:
            return
        for rgb in images:
            if not isinstance(rgb, StagedFrame):
                check_rgb(rgb)
        shapes = sorted({tuple(rgb.shape[:2]) for rgb in images})
        if len(shapes) > 1:
            raise ValueError(f'segment_batch needs images of one size, got {shapes}; group '
                             'them by size')
        label_set = label_set or self.labels
        query = self._query if request.similarity else None
        step = self.backend.max_batch or len(images)
        for start in range(0, len(images), step):
            yield from self._segment_chunk(images[start:start + step], request, label_set,
                                           query, pad_to)

    def _segment_chunk(self, images: List[np.ndarray], request: OutputRequest,
                       label_set: LabelSet, query: Optional[QueryEmbedding],
                       pad_to: Optional[int] = None) -> Iterator[SegmentationResult]:
        geometry = self.geometry(images[0].shape[0], images[0].shape[1])
        timer = StageTimer(self.device)
        batch = self._upload(images)
        x = self.normalizer(batch, geometry)
        padded = self.batch_shape(len(images), pad_to)
        if padded > len(images):
            x = torch.cat([x, x[-1:].expand(padded - len(images), -1, -1, -1)])
        timer.mark('preprocess')
        features = self.backend(x)[:len(images)]
        timer.mark('encoder')
        small = torch.uint8 if label_set.mask_dtype is np.uint8 else torch.int32
        cuda = self.device.type == 'cuda'
        queue_all = queues_all_heads(self.device)

        def queue(i: int) -> '_QueuedFrame':
            """Queue frame ``i``'s head and its outputs' copies to the host."""
            own = StageTimer(self.device)
            logits = logits_at_input(features[i:i + 1], label_set.weights)
            index, confidence = reduce_logits(logits, geometry, request.confidence)
            outputs = {'mask': index.to(small), 'confidence': confidence}
            if request.overlay:
                outputs['overlay'] = blend(batch[i], index, label_set.colors,
                                           request.overlay_alpha)
            if query is not None:
                similarity = similarity_at_input(features[i:i + 1], query.embedding)
                outputs['similarity'] = to_source(similarity[0], geometry)[0]
            if request.features_stride > 0:
                fh, fw = geometry.feature_valid
                step = request.features_stride
                grid = normalize_features(features[i:i + 1, :, :fh:step, :fw:step])
                outputs['features'] = grid[0].permute(1, 2, 0).contiguous()
            if request.raw:
                outputs['image_features'] = features[i:i + 1].float()
                outputs['logits'] = logits.float()
            # On a GPU the copies are queued (into page-locked memory) behind the head, so
            # the frame's outputs are on the host once its timer's last event has passed
            # (the raw outputs, hundreds of MB, are copied the plain way).
            host = {name: None if value is None else
                    value.to('cpu', non_blocking=cuda and name not in RAW_OUTPUTS)
                    for name, value in outputs.items()}
            own.mark('head')
            return _QueuedFrame(host, own)

        # On a GPU every frame's head is queued at once, behind the encoder: the host
        # queues them while the device runs the encoder, and each frame's outputs are
        # ready as soon as its own head has run (not when the publishing of the frames
        # before it is done).  On a CPU a frame's head runs at its turn (work done ahead
        # would only delay the frame being handed out).
        queued: List[object] = [None] * len(images)
        for i in range(len(images)):
            for j in (range(i, len(images)) if queue_all else (i,)):
                if queued[j] is None:
                    try:
                        queued[j] = queue(j)
                    except Exception as error:  # noqa: B902 - frame j's failure, at its turn
                        queued[j] = error
            item, queued[i] = queued[i], None
            if isinstance(item, Exception):
                raise item
            yield item.result(label_set, geometry, query, timer.result(), len(images))

    def stage(self, rgb: Union[np.ndarray, 'StagedFrame']) -> 'StagedFrame':
        """Copy an (H, W, 3) uint8 RGB image to host memory the device can read directly.

        On a GPU the copy is page-locked memory (torch's caching host allocator), so its
        transfer is one DMA that does not block the host (from pageable memory the driver
        stages it synchronously).  A copy, never a tensor over the frame itself: frames may
        be read-only views of a received message's bytes (raw subscriptions), which torch
        must not alias.  Staging a frame early (e.g. while the other cameras' frames of a
        batch are on their way) takes the copy out of the batch's latency.
        """
        if isinstance(rgb, StagedFrame):
            return rgb
        check_rgb(rgb)
        pixels = torch.empty(rgb.shape, dtype=torch.uint8,
                             pin_memory=self.device.type == 'cuda')
        np.copyto(pixels.numpy(), rgb)
        return StagedFrame(pixels)

    def _upload(self, images: Sequence[Union[np.ndarray, 'StagedFrame']]) -> torch.Tensor:
        """Return the images as one (B, H, W, 3) uint8 tensor on the device.

        Each image is staged (:meth:`stage`) unless it already was; on a GPU each staged
        frame is copied with a DMA transfer that does not block the host.  The caching host
        allocator does not reuse a page-locked block before its transfer has finished.
        """
        staged = [self.stage(rgb) for rgb in images]
        if self.device.type != 'cuda':
            if len(staged) == 1:                    # no second copy of a single frame
                return staged[0].pixels.unsqueeze(0)
            return torch.stack([frame.pixels for frame in staged])
        batch = torch.empty((len(staged),) + staged[0].shape, dtype=torch.uint8,
                            device=self.device)
        for slot, frame in zip(batch, staged):
            slot.copy_(frame.pixels, non_blocking=True)
        return batch

    def describe(self) -> Dict[str, str]:
        """Return the effective configuration, for the start-up log and diagnostics."""
        info = dict(self.backend.describe())
        info.update(variant=self.variant.name, input_size=str(self.input_size))
        return info
