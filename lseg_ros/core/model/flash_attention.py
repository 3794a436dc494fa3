# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ViT blocks' attention as one Triton kernel (flash attention, forward, no mask).

softmax(q kᵀ / sqrt(d)) v for the 16 heads of 64 of ViT-L/16, one program per tile of
64 (or 128) queries of one image and head: the scores of a block of 64 (or 128) keys at a
time, an online softmax in float32 (exp2, running maximum and sum, as FlashAttention
does; the scale applied in one fused multiply-add), the keys after the last whole block
in one masked step of 16 to 128 keys (:func:`tail_block`), float32 accumulation of the
values.  It reads q, k and v straight from the ``qkv`` projection's output (strided
views, no copies), by pointers or, on Hopper GPUs, by tensor descriptors (the tensor
memory accelerator), and writes (B, N, H, D), the layout the output projection reads.

Why a kernel of our own: the GPU default is to be as fast as the GPU allows (issue 11),
and at the token counts of camera frames PyTorch's attention kernels leave most of an
H200 idle.  Measured on an H200 (torch 2.11, Triton 3.6, CUDA-graph timing of the
kernel alone, per block; docs/benchmarks.md, sessions 26 and 27):

===================  =========  =========  =========  =========  =========
(images, tokens)     (1, 577)   (1, 1201)  (1, 4097)  (4, 577)   (4, 1201)
this kernel (27/2)   9.8 us     20.4 us    172.2 us   23.2 us    70.9 us
cuDNN, SDPA's (27/2) 11.6 us    31.3 us    181.7 us   26.3 us    74.2 us
session 26's (27/1)  10.0 us    21.9 us    175.2 us   21.4 us    70.1 us
FlashAttention-2     20.0 us    38.8 us    239.6 us   40.8 us    113.5 us
FlexAttention        19.3 us    27.6 us    253.5 us   39.5 us    -
===================  =========  =========  =========  =========  =========

(This kernel with the tiling :func:`tile_config` picks, and cuDNN, in session 27's
second device call; session 26's kernel (pointer loads, 64 keys per step, the scale
applied before the maximum) in its first; cuDNN's times differed by -0.6 to +2.2 %
between the two calls.  At (4, 577) session 26's form may be the faster one (not
compared in one call).  FlashAttention-2 and FlexAttention in session 26; FlexAttention:
its best of five tilings at 1201 tokens, its default elsewhere, and it failed at
(4, 1201).)  In the whole
ViT-L/16 default session 26's kernel saved 7.3 / 3.1 / 1.7 % at 480x640 / 384x384 /
1024x1024 over PyTorch's SDPA (interleaved, one process), and this one's tilings at
1201 and 4097 tokens 2.0 / 1.8 % more at 480x640 / 1024x1024.  No FlashAttention-3
package is installed on that machine (and it has no internet), and FlexAttention
(Triton too, in PyTorch) was slower at every size.  Tried on the H200 and not
kept (the figures: docs/benchmarks.md, sessions 27-31): warp specialisation of the key
loop, part of the exponentials as a polynomial or all in float16, 256-query tiles, the
next block's scores issued early, the row sums by the tensor cores, programmatic
dependent launch, a FlashAttention-3-style kernel in Gluon (as fast at 4097 tokens,
where both run at the H200's 700 W power limit, slower at the other shapes but one)
and FP8 products (24-44 % slower at 4097 tokens, and failing the fidelity gate).  Kept
from session 29: the keys after the last whole block in one narrow step
(:func:`tail_block`; 5.5 % faster at (1, 1201), 5.2 % at (4, 577)).  The tiling is chosen
by :func:`tile_config` from these measurements.

The kernel is registered as the custom operator ``lseg_ros::flash_attention``, so
``torch.compile`` keeps it as one opaque call (inside the backend's CUDA graph it is one
kernel launch).  Importing this module needs Triton; :func:`use_triton_attention` swaps
the timm attention modules of a model for :class:`TritonAttention`.  If Triton cannot
compile the kernel with descriptor loads on this machine (first call), the operator warns
once and loads by pointers from then on (:data:`DESCRIPTOR_FALLBACK`); if it cannot
compile the kernel at all, it warns once and computes the same function with PyTorch's
``scaled_dot_product_attention`` from then on (:data:`FALLBACK`).
"""

import contextlib
import logging
import math
from typing import NamedTuple, Optional

import torch
from torch import nn
import torch.nn.functional as F
import triton
import triton.language as tl

try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:                      # Triton before 3.4: loads by pointers only
    TensorDescriptor = None

from lseg_ros.core.model.image_encoder import AttentionLayers, is_timm_attention, \
    replace_modules

LOG = logging.getLogger(__name__)

#: Why the kernel is not used in this process (None while it is).
FALLBACK: Optional[str] = None
#: Why the kernel loads by pointers only in this process (None: descriptors where possible).
DESCRIPTOR_FALLBACK: Optional[str] = None
#: Errors that are not the kernel's (re-raised, no fallback).
CUDA_ERRORS = (torch.OutOfMemoryError,) + tuple(
    error for error in (getattr(torch, 'AcceleratorError', None),) if error is not None)

LOG2E = 1.4426950408889634


@triton.jit
def _online_softmax_step(qk, v, m_i, l_i, acc, qk_scale):
    """Fold one block of scores (q kᵀ, unscaled) and its values into the running state.

    ``m_i`` is the running maximum of the scaled scores (log2 units), ``l_i`` the running
    sum of their exponentials and ``acc`` the running sum of exponentials times values;
    masked keys have the score -inf.  The scale is applied in one fused multiply-add with
    the subtraction of the maximum.
    """
    m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
    return m_ij, l_i, acc


@triton.jit
def _attention_kernel(Q, K, V, Out, qk_scale, stride_qb, stride_qh, stride_qn,
                      stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
                      stride_ob, stride_oh, stride_on, heads, tokens,
                      HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                      TAIL_N: tl.constexpr):
    """One tile of BLOCK_M queries of one (image, head) against all keys (pointer loads).

    The keys past the last whole block of BLOCK_N are taken in one masked block of TAIL_N.
    """
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n0 = tl.arange(0, BLOCK_N)
    q_ptrs = Q + image * stride_qb + head * stride_qh + offs_m[:, None] * stride_qn \
        + offs_d[None, :]
    q = tl.load(q_ptrs, mask=offs_m[:, None] < tokens, other=0.0)
    k_base = K + image * stride_kb + head * stride_kh
    v_base = V + image * stride_vb + head * stride_vh
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    for start_n in range(0, full, BLOCK_N):             # whole key blocks: no mask
        offs_n = start_n + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None])
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :])
        m_i, l_i, acc = _online_softmax_step(tl.dot(q, k), v, m_i, l_i, acc, qk_scale)
    if full < tokens:                                   # the rest, one masked block
        offs_n = full + tl.arange(0, TAIL_N)
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None],
                    mask=offs_n[None, :] < tokens, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :],
                    mask=offs_n[:, None] < tokens, other=0.0)
        qk = tl.where(offs_n[None, :] < tokens, tl.dot(q, k), float('-inf'))
        m_i, l_i, acc = _online_softmax_step(qk, v, m_i, l_i, acc, qk_scale)
    acc = acc / l_i[:, None]
    o_ptrs = Out + image * stride_ob + head * stride_oh + offs_m[:, None] * stride_on \
        + offs_d[None, :]
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < tokens)


@triton.jit
def _attention_kernel_tma(desc_q, desc_k, desc_v, desc_k_tail, desc_v_tail, desc_out,
                          qk_scale, heads, tokens, HEAD_DIM: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, TAIL_N: tl.constexpr):
    """Compute the same tile with tensor-memory-accelerator loads and store (Hopper on).

    The descriptors are 4-D: q, k and v (B, H, N, D), the output (B, N, H, D); blocks past
    the last token read zeros and the store leaves them out.  The keys past the last whole
    block are read by the ``_tail`` descriptors, blocks of TAIL_N keys.
    """
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    q = desc_q.load([image, head, start_m * BLOCK_M, 0]).reshape([BLOCK_M, HEAD_DIM])
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    for start_n in range(0, full, BLOCK_N):             # whole key blocks: no mask
        k = desc_k.load([image, head, start_n, 0]).reshape([BLOCK_N, HEAD_DIM])
        v = desc_v.load([image, head, start_n, 0]).reshape([BLOCK_N, HEAD_DIM])
        m_i, l_i, acc = _online_softmax_step(tl.dot(q, k.T), v, m_i, l_i, acc, qk_scale)
    if full < tokens:                                   # the rest, one masked block
        offs_n = full + tl.arange(0, TAIL_N)
        k = desc_k_tail.load([image, head, full, 0]).reshape([TAIL_N, HEAD_DIM])
        v = desc_v_tail.load([image, head, full, 0]).reshape([TAIL_N, HEAD_DIM])
        qk = tl.where(offs_n[None, :] < tokens, tl.dot(q, k.T), float('-inf'))
        m_i, l_i, acc = _online_softmax_step(qk, v, m_i, l_i, acc, qk_scale)
    acc = acc / l_i[:, None]
    desc_out.store([image, start_m * BLOCK_M, head, 0],
                   acc.to(desc_out.dtype).reshape([1, BLOCK_M, 1, HEAD_DIM]))


class Tiling(NamedTuple):
    """How :func:`run_kernel` launches: tile sizes, warps, pipeline stages and loads."""

    block_m: int           #: queries per program
    block_n: int           #: keys per step
    warps: int
    stages: int
    tma: bool              #: loads and store by tensor descriptors (else by pointers)


def tile_config(image_heads: int, tokens: int, processors: int, tma: bool) -> Tiling:
    """Return the tiling for ``image_heads`` (images x heads) of ``tokens`` tokens.

    The fastest measured on an H200 (132 multiprocessors) in session 27's first device
    call (15 tilings each by pointer and by descriptor loads at (1, 1201) and (1, 4097),
    the best of them at the other sizes of the table above): 128 queries with 8 warps
    once there are at least four such tiles per multiprocessor ((1, 4097), (4, 1201));
    else 64 queries and 128 keys per step by descriptors while there are at most four
    64-query tiles per multiprocessor ((1, 1201), (1, 577): 9 and 2 % faster than 64 keys
    by pointers; 128 keys by pointers were 30 % slower); else 64 and 64 by pointers
    ((4, 577): session 26's form 21.4 us, 21.9 by descriptors with 128 keys; this form
    23.2 in another call).  ``tma``: whether descriptor
    loads can be used here.
    """
    if image_heads * -(-tokens // 128) >= 4 * processors:
        return Tiling(128, 64, 8, 3, False)
    if tma and image_heads * -(-tokens // 64) <= 4 * processors:
        return Tiling(64, 128, 4, 2, True)
    return Tiling(64, 64, 4, 3, False)


def tail_block(tokens: int, block_n: int) -> int:
    """Return how many keys the masked last step takes: the rest after whole blocks.

    The smallest power of two of at least 16 that holds ``tokens % block_n`` keys (at most
    ``block_n``): the one key past 4096 at 1024x1024 (4097 tokens, 64 keys per step) or
    past 576 at 384x384 with 64 keys per step (four images) costs a step of 16 keys
    instead of a whole block of 64; the 49 past 1152 at 480x640 (128 keys per step) a
    step of 64.
    """
    rest = tokens % block_n
    return min(block_n, max(16, 1 << max(0, rest - 1).bit_length()))


def supported(q: torch.Tensor) -> Optional[str]:
    """Return why the kernel cannot take ``q`` (None when it can).

    float32 runs only in Triton's interpreter (the tests): on a GPU its products would
    round to TF32.  Offsets are 32-bit: the q/k/v tensors must hold fewer than 2**31
    elements together.
    """
    head_dim = q.shape[-1]
    if q.dim() != 4 or head_dim < 16 or head_dim > 128 or head_dim & (head_dim - 1):
        return f'head dimension {head_dim} (the kernel takes 16, 32, 64 or 128)'
    if q.dtype not in (torch.float16, torch.bfloat16) \
            and not (q.dtype == torch.float32 and not q.is_cuda):
        return f'dtype {q.dtype}'
    if 3 * q.numel() >= 2 ** 31:
        return f'{3 * q.numel()} elements (32-bit offsets)'
    return None


def _processors(device: torch.device) -> int:
    if device.type != 'cuda':
        return 1
    return torch.cuda.get_device_properties(device).multi_processor_count


def _descriptor_ok(t: torch.Tensor) -> bool:
    size = t.element_size()
    return t.data_ptr() % 16 == 0 and all(s * size % 16 == 0 for s in t.stride()[:-1])


def tma_available(*tensors: torch.Tensor) -> bool:
    """Whether the kernel can load ``tensors`` by tensor descriptors here.

    Needs Triton's host tensor descriptors, a GPU of compute capability 9 or later (or
    Triton's interpreter on the CPU), 16-byte aligned data and strides.
    """
    if TensorDescriptor is None:
        return False
    cuda = tensors[0].is_cuda
    if cuda and torch.cuda.get_device_capability(tensors[0].device)[0] < 9:
        return False
    return all(_descriptor_ok(t) for t in tensors)


def run_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               tiling: Optional[Tiling] = None) -> torch.Tensor:
    """Launch the kernel: (B, H, N, D) q, k, v (unit last stride) -> (B, N, H, D).

    ``tiling``: the launch (default: :func:`tile_config`'s choice for this shape here).
    """
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    images, heads, tokens, head_dim = q.shape
    out = torch.empty((images, tokens, heads, head_dim), device=q.device, dtype=q.dtype)
    if tiling is None:
        tiling = choose_tiling(q, k, v)
    block_m, block_n = tiling.block_m, tiling.block_n
    grid = (triton.cdiv(tokens, block_m), images * heads)
    scale = LOG2E / math.sqrt(head_dim)
    tail_n = tail_block(tokens, block_n)
    launch = {'HEAD_DIM': head_dim, 'BLOCK_M': block_m, 'BLOCK_N': block_n, 'TAIL_N': tail_n,
              'num_warps': tiling.warps, 'num_stages': tiling.stages}
    # Triton launches on the current device: make it q's
    with torch.cuda.device(q.device) if q.is_cuda else contextlib.nullcontext():
        if tiling.tma:
            def descriptor(t, block):
                return TensorDescriptor(t, list(t.shape), list(t.stride()), block)

            keys = [descriptor(t, [1, 1, block_n, head_dim]) for t in (k, v)]
            tails = keys if tail_n == block_n \
                else [descriptor(t, [1, 1, tail_n, head_dim]) for t in (k, v)]
            _attention_kernel_tma[grid](
                descriptor(q, [1, 1, block_m, head_dim]), *keys, *tails,
                descriptor(out, [1, block_m, 1, head_dim]), scale, heads, tokens, **launch)
        else:
            _attention_kernel[grid](
                q, k, v, out, scale, q.stride(0), q.stride(1), q.stride(2),
                k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
                out.stride(0), out.stride(2), out.stride(1), heads, tokens, **launch)
    return out


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Compute the same function with PyTorch's kernels, in the same (B, N, H, D) layout."""
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).contiguous()


def choose_tiling(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Tiling:
    """Return :func:`tile_config`'s tiling for these tensors in this process.

    Descriptor loads only where :func:`tma_available` and they have not failed here
    (:data:`DESCRIPTOR_FALLBACK`).
    """
    images, heads, tokens, _ = q.shape
    tma = DESCRIPTOR_FALLBACK is None and tma_available(q, k, v)
    return tile_config(images * heads, tokens, _processors(q.device), tma)


def _failure(error: Exception) -> str:
    return f'{type(error).__name__}: {str(error).strip()[:200]}'


@torch.library.custom_op('lseg_ros::flash_attention', mutates_args=())
def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v of (B, H, N, D) tensors, returned as (B, N, H, D).

    If the kernel with descriptor loads fails (first call), it warns once and loads by
    pointers from then on; if the kernel fails by pointers, PyTorch's SDPA computes it.
    """
    global FALLBACK, DESCRIPTOR_FALLBACK
    if FALLBACK is not None or supported(q) is not None:
        return sdpa(q, k, v)
    while True:
        tiling = choose_tiling(q, k, v)
        try:
            return run_kernel(q, k, v, tiling)
        except CUDA_ERRORS:
            raise                            # out of memory, a CUDA error: not the kernel's
        except Exception as error:  # noqa: B902 - Triton raises its own types
            if q.is_cuda and torch.cuda.is_current_stream_capturing():
                raise
            if not tiling.tma:
                FALLBACK = _failure(error)
                LOG.warning("Triton attention failed here (%s); using PyTorch's attention "
                            'kernels', FALLBACK)
                return sdpa(q, k, v)
            DESCRIPTOR_FALLBACK = _failure(error)      # the next tiling loads by pointers
            LOG.warning('Triton attention with tensor-descriptor loads failed here (%s); '
                        'loading by pointers', DESCRIPTOR_FALLBACK)


@flash_attention.register_fake
def _flash_attention_shape(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    images, heads, tokens, head_dim = q.shape
    return q.new_empty((images, tokens, heads, head_dim))


class TritonAttention(AttentionLayers):
    """A timm ``Attention`` (no q/k norm, no gate) whose attention runs in the kernel.

    Reuses its ``qkv`` and ``proj`` layers (the state_dict keys stay those of timm).
    """

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        """Self-attention of (B, N, C) tokens (no mask: the ViT blocks pass none)."""
        if attn_mask is not None or is_causal:
            raise ValueError('TritonAttention computes attention without a mask')
        b, n, c = x.shape
        return self.proj(flash_attention(*self.heads(x)).reshape(b, n, c))


def _is_plain_timm_attention(module: nn.Module) -> bool:
    identity = (nn.Identity, type(None))
    return is_timm_attention(module) \
        and all(isinstance(getattr(module, name, None), identity)
                for name in ('q_norm', 'k_norm', 'norm')) \
        and getattr(module, 'gate', None) is None


def use_triton_attention(model: nn.Module) -> int:
    """Replace the plain timm attention modules of ``model`` by :class:`TritonAttention`."""
    return replace_modules(model, _is_plain_timm_attention, TritonAttention)
