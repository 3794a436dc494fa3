# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""PyTorch backend: eager fp32 on the CPU; on a GPU fp32 or fp16, eager, CUDA graphs or compiled.

The GPU default is the fastest configuration that passes tools/fidelity.py against fp32 at
384x384, 480x640 and 1024x1024 for both variants (docs/benchmarks.md, issue 11): fp16
weights and activations (PyTorch's LayerNorm kernel, whose statistics accumulate in
float32; the attention softmax of the SDPA kernels accumulates in float32), BatchNorm
folded into the convolutions, channels-last convolutions with cuDNN autotuning, for
ViT-L/16 the patch embedding, each block's ``fc1`` + GELU (the GELU in cuBLASLt's epilogue,
its tanh approximation) and the reassemble stages as matrix products and the decoder's
projections before its upsampling (:mod:`lseg_ros.core.model.fusion`), and on Hopper GPUs
the blocks' attention in our Triton kernel (:mod:`lseg_ros.core.model.flash_attention`),
captured into one CUDA graph per input shape (``torch.cuda.CUDAGraph`` into static
input/output buffers after a warm-up on a side stream), so a frame costs one graph launch.

Inductor (``torch.compile``, mode ``default``: fused element-wise kernels, layout changes
and upsampling) inside that graph is part of the default for both variants.  On an H200
(issue 11's closing run, ``tools/latency.py``) the compiled ViT-L/16 default took 2.83 /
1.92 / 10.30 ms at 480x640 / 384x384 / 1024x1024, and ResNet101 1.97 ms at 480x640
(2.81-2.83 uncompiled, 2026-12-01).  The levers also apply uncompiled (``compile: off``:
3.64 / 2.35 / 12.16 ms, session 27), which passed the gate too (before the Triton
attention).  Both compiled defaults pass the gate over 20 frames at the three sizes
(tools/fidelity.py: per image cosine, relative L2 and label agreement, per size the set's
mIoU over the labels on 100 or more pixels).
Each lever's gain on its own, earlier runs, and why ViT-L/16 was once left uncompiled:
docs/benchmarks.md.  Compilation costs about 25 s per input shape the first time on an
H200 and about 6 s from Inductor's on-disk cache, which is kept in
``<lseg_ros cache>/inductor`` unless ``TORCHINDUCTOR_CACHE_DIR`` is set.  When Inductor
cannot compile here (no Triton, no C compiler) the backend warns once and runs the same
model without compiling.

The returned features of a graph live in one output buffer per input size, shared by the
batch sizes of that size (the largest batch captured first sets its size: warm up the
largest batch first, as :meth:`LsegPipeline.warmup` does), and the next call overwrites
them: consume (or copy) them before the next call, as the pipeline does.  All graphs share
one memory pool and one capture stream, and the warm-up memory of a capture is returned
to the driver afterwards, so several batch sizes cost little more than the largest.  A
batch runs the backbone and the coarser decoder stages on all its images and the last
decoder stage (most of the working memory) on one image at a time: on an H200 the graphs
of batches 4, 2 and 1 of ViT-L/16 at 480x640 took 644 instead of 1320 MiB (batch 1: 306;
measured with ``fold_projections`` on), and four cameras through the node 1.08x one
camera's device memory instead of 1.21x, at a cost of 1.5-2.7 % in batch-4 latency
(docs/benchmarks.md, docs/node_benchmark.md).
"""

import contextlib
import importlib
import importlib.util
import logging
import os
from typing import Dict, Optional, Tuple

import torch

from lseg_ros.core.backends.base import EncoderBackend
from lseg_ros.core.cache import cache_dir
from lseg_ros.core.errors import BackendError
from lseg_ros.core.model.checkpoint import build_image_encoder

LOG = logging.getLogger(__name__)

#: Sample frames (lseg_ros.core.samples) that calibrate the FP8 input scales, and the margin.
CALIBRATION_FRAMES = (0, 2, 4)
FP8_MARGIN = 1.0

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
#: torch.compile modes that capture CUDA graphs themselves (no graph of ours around them).
GRAPHING_COMPILE_MODES = ('reduce-overhead', 'max-autotune')
#: ``attention`` values: the scaled-dot-product-attention kernel forced for the ViT blocks,
#: ``sdpa`` (PyTorch picks its kernel) or ``triton``: the blocks' attention in our Triton
#: kernel (:mod:`lseg_ros.core.model.flash_attention`).
ATTENTION_KERNELS = ('flash', 'cudnn', 'efficient', 'math', 'sdpa', 'triton')
FP8_MODES = ('rowwise', 'tensorwise')
#: The speed levers :meth:`TorchBackend.describe` names (a key each when on), summed up in
#: its ``levers`` value for the node's start-up log and diagnostics.
LEVERS = ('channels_last', 'cudnn_benchmark', 'fold_bn', 'fold_projections', 'patch_matmul',
          'gelu_epilogue', 'reassemble_matmul', 'attention', 'fp8')


#: Variants whose compiled fp16 model passes tools/fidelity.py against fp32 at 384x384,
#: 480x640 and 1024x1024 (H200, 20 frames, docs/benchmarks.md): compiled by default.
COMPILED_VARIANTS = ('rn101', 'vit_l16')


def default_attention(device: torch.device, fast: bool, vit: bool) -> Optional[str]:
    """Return ``triton`` for ViT-L/16 in fp16 on a Hopper GPU with Triton, else None.

    Measured faster than PyTorch's kernels on an H200 only (compute capability 9.0); on
    other GPUs PyTorch picks its SDPA kernel as before, and ``attention='triton'`` asks for
    the kernel there.
    """
    if not (fast and vit) or importlib.util.find_spec('triton') is None \
            or torch.cuda.get_device_capability(device)[0] != 9:
        return None
    try:
        importlib.import_module('lseg_ros.core.model.flash_attention')   # imports Triton
    except Exception as error:  # noqa: B902 - a broken Triton raises anything
        LOG.warning('torch backend: Triton does not import here (%s: %s); the ViT blocks '
                    "use PyTorch's attention", type(error).__name__, error)
        return None
    return 'triton'


def resolve_compile_mode(mode: Optional[str], fast: bool, variant: str) -> Optional[str]:
    """Return the torch.compile mode for ``mode`` (``auto``, ``gpu``, a mode or None).

    ``fast``: fp16 on a GPU.  ``auto`` compiles the variants of COMPILED_VARIANTS there,
    ``gpu`` every variant; neither compiles anything elsewhere (CPU, fp32).
    """
    if mode == 'auto':
        return 'default' if fast and variant in COMPILED_VARIANTS else None
    if mode == 'gpu':
        return 'default' if fast else None
    return mode


#: Input shapes each compiled model may specialise on (Dynamo's default of 8 would leave
#: the ninth camera size or batch uncompiled).
RECOMPILE_LIMIT = 64


def raise_recompile_limit(limit: int = RECOMPILE_LIMIT) -> None:
    """Let Dynamo compile up to ``limit`` input shapes (it keeps a larger setting)."""
    import torch._dynamo.config as dynamo_config
    name = 'recompile_limit' if hasattr(dynamo_config, 'recompile_limit') \
        else 'cache_size_limit'
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), limit))


class _Graph:
    """One captured CUDA graph with its static input and output."""

    def __init__(self, graph, static_input: torch.Tensor, static_output: torch.Tensor):
        self.graph = graph
        self.input = static_input
        self.output = static_output


class TorchBackend(EncoderBackend):
    """The image encoder in PyTorch.

    ``precision``: ``fp32``, ``fp16`` (GPU only) or ``auto`` (fp16 on a GPU, else fp32).
    ``cuda_graph``: replay one captured CUDA graph per input shape (default: on for a GPU
    unless ``compile_mode`` captures graphs itself).  ``compile_mode``: a ``torch.compile``
    mode, ``auto`` (the default: ``default`` for fp16 on a GPU for the variants of
    :data:`COMPILED_VARIANTS`, else none), ``gpu`` (``default`` for fp16 on a GPU, every
    variant) or None; ``default`` and ``max-autotune-no-cudagraphs`` are captured in our
    graph.
    ``fold_bn``: fold BatchNorm into the convolutions (default: on for fp16 on a GPU).
    ``fold_projections``: the decoder's 1x1 projections before its upsampling and merged
    (:func:`lseg_ros.core.model.fusion.fold_projections`; default: on for ViT-L/16 in fp16
    on a GPU, where compiled it was 3.5-4.4 % faster on an H200 and passes the 20-frame
    gate; off for ResNet101, not measured compiled, docs/benchmarks.md).
    ``patch_matmul``: the ViT's patch embedding as a matrix product of the unfolded patches
    (:func:`lseg_ros.core.model.fusion.patch_embedding_as_matmul`; ViT-L/16 only; default:
    on for ViT-L/16 in fp16 on a GPU, where it was 1.4-5.3 % faster on an H200 and passes
    the fidelity gate, docs/benchmarks.md).
    ``gelu_epilogue``: each ViT block's ``fc1`` and GELU as one matrix product with the
    GELU in cuBLASLt's epilogue (:func:`lseg_ros.core.model.fusion.gelu_into_matmul`; the
    tanh approximation of GELU on CUDA; ViT-L/16 only; default: on for ViT-L/16 in fp16 on
    a GPU without ``fp8``, where it was 4.2-7.5 % faster on an H200 and passes the fidelity
    gate, docs/benchmarks.md; with ``fp8`` it is off and may not be asked for: the FP8
    conversion takes ``fc1`` as a Linear layer).
    ``reassemble_matmul``: the ViT's four reassemble stages computed on the tokens, their
    transposed convolutions as matrix products
    (:func:`lseg_ros.core.model.fusion.reassemble_as_matmul`; exact in real arithmetic;
    ViT-L/16 only; default: on for ViT-L/16 in fp16 on a GPU, where it was 0.3-0.5 %
    faster on an H200 timed interleaved with the default without it (timed one after the
    other it was 1-2.5 % slower at 384x384 and 480x640: within the spread of such timings)
    and passes the fidelity gate, docs/benchmarks.md).
    ``layernorm``: ``fp32`` (explicit float32 LayerNorm; the default except for fp16 on a
    GPU) or ``fp16`` (PyTorch's kernel, statistics in float32; the fp16 GPU default).
    ``attention``: force one SDPA kernel (``flash``, ``cudnn``, ``efficient``, ``math``),
    let PyTorch pick one (``sdpa``; on an H200 it picks cuDNN's), or ``triton``: the ViT
    blocks' attention in our Triton flash-attention kernel
    (:mod:`lseg_ros.core.model.flash_attention`; fp16 and Triton needed; default: on for
    ViT-L/16 in fp16 on a Hopper GPU (compute capability 9.x) with Triton, where on an
    H200 it was 7.3 / 3.1 / 1.7 % faster at 480x640 / 384x384 / 1024x1024, timed
    interleaved with the default on PyTorch's SDPA, and passes the fidelity gate,
    docs/benchmarks.md; elsewhere PyTorch picks its SDPA kernel).
    ``fp8``: ``rowwise`` or ``tensorwise`` FP8 weights with static calibrated input scales
    for the ViT blocks' Linear layers (:mod:`lseg_ros.core.model.fp8`; fp16, FP8 GPUs).
    ``channels_last``: NHWC memory format for the convolutions (GPU).  ``cudnn_benchmark``:
    let cuDNN time its convolution algorithms per shape (a process-wide torch setting; set
    while this backend is open and restored by :meth:`close`).  Both default to on for fp16
    on a GPU (measured 13-19 % faster on an H100, fidelity unchanged: docs/benchmarks.md)
    and off otherwise.
    """

    name = 'torch'

    def __init__(self, weights, device: torch.device, precision: str = 'fp32',
                 cuda_graph: Optional[bool] = None, compile_mode: Optional[str] = 'auto',
                 warmup_iterations: int = 2, channels_last: Optional[bool] = None,
                 cudnn_benchmark: Optional[bool] = None, fold_bn: Optional[bool] = None,
                 layernorm: Optional[str] = None, attention: Optional[str] = None,
                 fp8: Optional[str] = None, fold_projections: Optional[bool] = None,
                 patch_matmul: Optional[bool] = None, gelu_epilogue: Optional[bool] = None,
                 reassemble_matmul: Optional[bool] = None):
        device = torch.device(device)
        cuda = device.type == 'cuda'
        if precision == 'auto':
            precision = 'fp16' if cuda else 'fp32'
        if precision not in ('fp32', 'fp16'):
            raise BackendError(f'torch backend: unknown precision {precision!r}')
        if precision == 'fp16' and not cuda:
            raise BackendError('torch backend: fp16 needs a CUDA device; use fp32 on the CPU')
        fast = cuda and precision == 'fp16'         # the measured GPU default (see above)
        compile_mode = resolve_compile_mode(compile_mode, fast, weights.variant.name)
        if fold_bn is None:
            fold_bn = fast
        if layernorm is None:
            layernorm = 'fp16' if fast else 'fp32'
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise BackendError(f'torch backend: unknown compile mode {compile_mode!r}; choose '
                               f'one of {", ".join(COMPILE_MODES)}')
        if cuda_graph is None:
            cuda_graph = cuda and compile_mode not in GRAPHING_COMPILE_MODES
        if cuda_graph and not cuda:
            raise BackendError('torch backend: CUDA graphs need a CUDA device')
        if cuda_graph and compile_mode in GRAPHING_COMPILE_MODES:
            raise BackendError(f'torch backend: compile mode {compile_mode} captures CUDA graphs '
                               'itself; turn cuda_graph off or use a mode without graphs')
        if layernorm not in ('fp32', 'fp16'):
            raise BackendError(f'torch backend: layernorm must be fp32 or fp16, not {layernorm!r}')
        if attention is not None and attention not in ATTENTION_KERNELS:
            raise BackendError(f'torch backend: unknown attention kernel {attention!r}; choose '
                               f'one of {", ".join(ATTENTION_KERNELS)}')
        if fp8 is not None:
            from lseg_ros.core.model.fp8 import fp8_supported
            if gelu_epilogue:
                raise BackendError('torch backend: gelu_epilogue and fp8 exclude each other '
                                   '(the FP8 conversion takes fc1 as a Linear layer)')
            if fp8 not in FP8_MODES:
                raise BackendError(f'torch backend: fp8 must be one of {", ".join(FP8_MODES)}')
            if precision != 'fp16' or not fp8_supported(device):
                raise BackendError('torch backend: fp8 needs precision fp16 on a GPU with FP8 '
                                   'tensor cores (compute capability 8.9 or newer)')
        vit = weights.variant.name == 'vit_l16'
        if patch_matmul is None:
            patch_matmul = fast and vit
        if gelu_epilogue is None:
            gelu_epilogue = fast and vit and fp8 is None
        if reassemble_matmul is None:
            reassemble_matmul = fast and vit
        if fold_projections is None:
            fold_projections = fast and vit
        if attention is None:
            attention = default_attention(device, fast, vit)
        for option, value in (('patch_matmul', patch_matmul), ('gelu_epilogue', gelu_epilogue),
                              ('reassemble_matmul', reassemble_matmul),
                              ('attention triton', attention == 'triton')):
            if value and not vit:
                raise BackendError(f'torch backend: {option} is a ViT-L/16 option (the '
                                   f'{weights.variant.name} variant has no ViT blocks)')
        if attention == 'triton' and precision != 'fp16':
            raise BackendError('torch backend: attention triton needs precision fp16 (its '
                               'float32 products would round to TF32)')
        if attention == 'triton' and importlib.util.find_spec('triton') is None:
            raise BackendError('torch backend: attention triton needs Triton')
        if channels_last is None:
            channels_last = cuda and precision == 'fp16'
        if cudnn_benchmark is None:
            cudnn_benchmark = cuda and precision == 'fp16'
        if (channels_last or cudnn_benchmark) and not cuda:
            raise BackendError('torch backend: channels_last and cudnn_benchmark are GPU options')
        super().__init__(device, precision)
        self.dtype = torch.float16 if precision == 'fp16' else torch.float32
        self.fold_bn, self.layernorm, self.attention, self.fp8 = fold_bn, layernorm, attention, fp8
        self.fold_projections = bool(fold_projections)
        if precision == 'fp16':
            from lseg_ros.core.model.precision import half_encoder
            self.model = half_encoder(weights, device, layernorm_fp32=layernorm == 'fp32',
                                      fold_bn=fold_bn, fold_projections=fold_projections)
        else:
            self.model = build_image_encoder(weights, device)
            from lseg_ros.core.model import fusion
            if fold_bn:
                fusion.fold_batchnorm(self.model)
            if fold_projections:
                fusion.fold_projections(self.model)
        self.patch_matmul, self.gelu_epilogue = bool(patch_matmul), bool(gelu_epilogue)
        self.reassemble_matmul = bool(reassemble_matmul)
        if patch_matmul:
            from lseg_ros.core.model.fusion import patch_embedding_as_matmul
            patch_embedding_as_matmul(self.model)
        if gelu_epilogue:
            from lseg_ros.core.model.fusion import gelu_into_matmul
            gelu_into_matmul(self.model)
        if reassemble_matmul:
            from lseg_ros.core.model.fusion import reassemble_as_matmul
            reassemble_as_matmul(self.model)
        if attention == 'triton':
            from lseg_ros.core.model.flash_attention import use_triton_attention
            use_triton_attention(self.model)
        if fp8 is not None:
            self._convert_fp8(weights.variant, fp8 == 'rowwise')
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._cudnn_benchmark_before = None
        if cudnn_benchmark:
            self._cudnn_benchmark_before = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
        self.cuda_graph = bool(cuda_graph)
        self.compile_mode = compile_mode
        self.pad_batches = self.cuda_graph or compile_mode is not None
        self.warmup_iterations = max(1, int(warmup_iterations))
        self._graphs: Dict[Tuple[int, ...], Optional[_Graph]] = {}
        self._outputs: Dict[Tuple[int, ...], torch.Tensor] = {}   # per input size (H, W)
        self._pool = None
        self._side: Optional[torch.cuda.Stream] = None
        self._coarse, self._fine = self.model.encode_coarse, self.model.decode_fine
        self._compiled = compile_mode is not None
        self.compile_fallback: Optional[str] = None
        if compile_mode is not None:
            os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', str(cache_dir() / 'inductor'))
            raise_recompile_limit()
            self._coarse = torch.compile(self._coarse, mode=compile_mode, dynamic=False)
            self._fine = torch.compile(self._fine, mode=compile_mode, dynamic=False)

    def _forward(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run the backbone and coarse decoder on the batch, the last stage image by image.

        The last fusion stage's maps at a quarter and half of the input resolution are
        most of the encoder's working memory (at 480x640 about 120 MB per image in fp16),
        so a batch needs that working memory once, not B times (GPU memory of several
        cameras, issue 12); the backbone and the coarser stages, whose small maps gain
        from batching, keep the batch.  Each image's features are copied into ``out``
        (allocated when None; one image's are returned as they are).
        """
        path, skip = self._coarse(x)
        count = x.shape[0]
        for i in range(count):
            features = self._fine(path[i:i + 1], skip[i:i + 1])
            if out is None:
                if count == 1:
                    return features
                out = torch.empty((count,) + tuple(features.shape[1:]), dtype=features.dtype,
                                  device=features.device, memory_format=self.memory_format)
            out[i:i + 1].copy_(features)
            del features
        return out

    def _convert_fp8(self, variant, rowwise: bool) -> None:
        """Calibrate input scales on the bundled sample frames, then convert to FP8."""
        from lseg_ros.core.model.fp8 import calibrate_amax, convert_to_fp8
        from lseg_ros.core.preprocess import Geometry, Normalizer
        from lseg_ros.core.samples import sample_frame

        normalizer = Normalizer(variant.mean, variant.std, self.device)
        size = (480, 640)
        inputs = []
        for index in range(len(CALIBRATION_FRAMES)):
            rgb = torch.from_numpy(sample_frame(CALIBRATION_FRAMES[index], *size))
            x = normalizer(rgb.to(self.device), Geometry(size, size, size))
            inputs.append(x.to(self.dtype))
        amax = calibrate_amax(self.model, inputs)
        if not amax:
            raise BackendError('torch backend: fp8 found no ViT block Linear layers (the '
                               'ResNet101 variant has none)')
        self.fp8_layers = convert_to_fp8(self.model, amax, FP8_MARGIN, rowwise)

    def _attention_kernel(self):
        if self.attention in (None, 'sdpa', 'triton'):
            return contextlib.nullcontext()
        from torch.nn.attention import sdpa_kernel, SDPBackend
        kernel = {'flash': SDPBackend.FLASH_ATTENTION, 'cudnn': SDPBackend.CUDNN_ATTENTION,
                  'efficient': SDPBackend.EFFICIENT_ATTENTION,
                  'math': SDPBackend.MATH}[self.attention]
        return sdpa_kernel([kernel])

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype, memory_format=self.memory_format)
        with self._attention_kernel():
            try:
                return self._forward(x)
            except Exception as error:  # noqa: B902 - Inductor and Triton raise their own types
                if not self._compiled:
                    raise
                self._without_compile(x, error)
                return self._forward(x)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a normalised input."""
        if not self.cuda_graph:
            return self._eager(x)
        shape = tuple(x.shape)
        if shape not in self._graphs:
            self._graphs[shape] = self._capture(x)
        entry = self._graphs[shape]
        if entry is None:                       # capture failed for this shape: eager
            return self._eager(x)
        entry.input.copy_(x)
        entry.graph.replay()
        return entry.output

    def _capture(self, x: torch.Tensor) -> Optional[_Graph]:
        """Capture the model at the shape of ``x`` (None when capture fails)."""
        with torch.cuda.device(self.device):
            try:
                return self._capture_on_device(x)
            finally:
                torch.cuda.empty_cache()        # the warm-up's blocks (not the graphs' pool)

    def _capture_on_device(self, x: torch.Tensor) -> Optional[_Graph]:
        static_input = torch.empty(x.shape, dtype=self.dtype, device=self.device,
                                   memory_format=self.memory_format)
        static_input.copy_(x)
        current = torch.cuda.current_stream(self.device)
        if self._side is None:
            self._side = torch.cuda.Stream(self.device)
        side = self._side
        side.wait_stream(current)
        try:
            with torch.cuda.stream(side), self._attention_kernel():
                for _ in range(self.warmup_iterations):    # lazy init, cuDNN/cuBLAS choices
                    sample = self._forward(static_input)
            current.wait_stream(side)
            output = self._output_buffer(sample)
            del sample
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode='thread_local'), \
                    self._attention_kernel():
                self._forward(static_input, output)
        except Exception as error:  # noqa: B902 - Inductor and Triton raise their own types
            torch.cuda.synchronize(self.device)
            if self._compiled:
                return self._without_compile(x, error)
            if not isinstance(error, RuntimeError):
                raise
            LOG.warning('torch backend: CUDA graph capture failed at %s (%s); running eager '
                        'for this shape', tuple(x.shape), error)
            return None
        if self._pool is None:
            self._pool = graph.pool()          # shapes share one memory pool
        LOG.debug('torch backend: captured a CUDA graph for input %s', tuple(x.shape))
        return _Graph(graph, static_input, output)

    def _output_buffer(self, sample: torch.Tensor) -> torch.Tensor:
        """Return the graph output for ``sample``'s shape: a view of its input size's buffer.

        The graph copies the model's output there, so the output of the model itself is
        pool memory that the other shapes reuse.  A batch larger than the buffer gets a new
        buffer (graphs captured before keep the old one).
        """
        size = tuple(sample.shape[2:])
        buffer = self._outputs.get(size)
        if buffer is None or buffer.shape[0] < sample.shape[0] \
                or buffer.shape[1:] != sample.shape[1:] \
                or buffer.stride()[1:] != sample.stride()[1:]:
            buffer = torch.empty_strided(sample.shape, sample.stride(), dtype=sample.dtype,
                                         device=sample.device)
            self._outputs[size] = buffer
        return buffer[:sample.shape[0]]

    def _without_compile(self, x: torch.Tensor, error: Exception) -> Optional[_Graph]:
        """Inductor failed: warn once, run the same model uncompiled from now on."""
        reason = f'{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}' \
            if str(error).strip() else type(error).__name__
        LOG.warning('torch backend: torch.compile (%s) failed here (%s); running the model '
                    'without compiling', self.compile_mode, reason)
        self.compile_fallback = reason
        self._coarse, self._fine = self.model.encode_coarse, self.model.decode_fine
        self._compiled = False
        return self._capture(x) if self.cuda_graph else None

    def describe(self) -> Dict[str, str]:
        """Return what this backend runs."""
        info = super().describe()
        compiled = self.compile_mode is not None and self.compile_fallback is None
        mode = '+'.join(filter(None, ['cuda_graph' if self.cuda_graph else '',
                                      f'compile:{self.compile_mode}' if compiled else ''])) \
            or 'eager'
        if self.compile_fallback:
            info['compile_fallback'] = self.compile_fallback
        info.update(mode=mode, torch=torch.__version__)
        if self.memory_format == torch.channels_last:
            info['channels_last'] = 'True'
        if self._cudnn_benchmark_before is not None:
            info['cudnn_benchmark'] = 'True'
        if self.precision == 'fp16':
            info['fp32_ops'] = ('LayerNorm (attention softmax accumulates in fp32)'
                                if self.layernorm == 'fp32' else
                                'LayerNorm statistics and attention softmax accumulate in fp32')
        if self.fold_bn:
            info['fold_bn'] = 'True'
        if self.fold_projections:
            info['fold_projections'] = 'True'
        if self.patch_matmul:
            info['patch_matmul'] = 'True'
        if self.gelu_epilogue:
            info['gelu_epilogue'] = 'True (tanh GELU on CUDA)'
        if self.reassemble_matmul:
            info['reassemble_matmul'] = 'True'
        attention = self.attention
        if attention == 'triton':
            from lseg_ros.core.model import flash_attention
            if flash_attention.FALLBACK is None:
                info['attention'] = 'triton'
                if flash_attention.DESCRIPTOR_FALLBACK is not None:
                    info['attention'] += ' (pointer loads; tensor descriptors failed here: ' \
                        f'{flash_attention.DESCRIPTOR_FALLBACK})'
            else:
                attention = 'sdpa'
                info['attention'] = f'sdpa (the Triton kernel failed here: ' \
                    f'{flash_attention.FALLBACK})'
        elif attention:
            info['attention'] = attention
        if self.fp8:
            info['fp8'] = f'{self.fp8} e4m3, static input scales, {self.fp8_layers} Linear layers'
        info['levers'] = ','.join(key if key != 'attention' else f'attention:{attention}'
                                  for key in LEVERS if key in info) or '-'
        return info

    def close(self) -> None:
        """Drop graphs and weights."""
        self._graphs.clear()
        self._outputs.clear()
        self._pool = None
        self._side = None
        if self._cudnn_benchmark_before is not None:
            torch.backends.cudnn.benchmark = self._cudnn_benchmark_before
            self._cudnn_benchmark_before = None
        self._coarse = self._fine = None
        self.model = None
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()
