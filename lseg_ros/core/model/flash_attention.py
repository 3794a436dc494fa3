# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ViT blocks' attention as one Triton kernel (flash attention, forward, no mask).

softmax(q kᵀ / sqrt(d)) v for the 16 heads of 64 of ViT-L/16, one program per tile of
64 (or 128) queries of one image and head: the scores of a block of 64 keys at a time,
an online softmax in float32 (exp2, running maximum and sum, as FlashAttention does), the
last partial block of keys masked, float32 accumulation of the values.  It reads q, k and
v straight from the ``qkv`` projection's output (strided views, no copies) and writes
(B, N, H, D), the layout the output projection reads.

Why a kernel of our own: the GPU default is to be as fast as the GPU allows (issue 11),
and at the token counts of camera frames PyTorch's attention kernels leave most of an
H200 idle.  Measured on an H200 (torch 2.11, Triton 3.6, CUDA-graph timing of the
kernel alone, per block; docs/benchmarks.md, session 26):

=================  =========  =========  =========  =========  =========
(images, tokens)   (1, 577)   (1, 1201)  (1, 4097)  (4, 577)   (4, 1201)
this kernel        10.0 us    21.9 us    176.9 us   21.4 us    70.8 us
cuDNN (SDPA's)     11.6 us    31.3 us    181.7 us   26.1 us    73.8 us
FlashAttention-2   20.0 us    38.8 us    239.6 us   40.8 us    113.5 us
FlexAttention      19.3 us    27.6 us    253.5 us   39.5 us    -
=================  =========  =========  =========  =========  =========

(This kernel with the tiling :func:`tile_config` picks; FlexAttention: its best of five
tilings at 1201 tokens, its default elsewhere, and it failed at (4, 1201) in that run.)
In the whole ViT-L/16 default it saved 7.3 / 3.1 / 1.7 % at 480x640 / 384x384 /
1024x1024 (interleaved with the same default on PyTorch's SDPA, one process).  No
FlashAttention-3 package is installed on that machine (and it has no internet), and
FlexAttention (Triton too, in PyTorch) was slower at every size.  The tiling is chosen by
:func:`tile_config` from these measurements.

The kernel is registered as the custom operator ``lseg_ros::flash_attention``, so
``torch.compile`` keeps it as one opaque call (inside the backend's CUDA graph it is one
kernel launch).  Importing this module needs Triton; :func:`use_triton_attention` swaps
the timm attention modules of a model for :class:`TritonAttention`.  If Triton cannot
compile the kernel on this machine (first call), the operator warns once and computes
the same function with PyTorch's ``scaled_dot_product_attention`` from then on
(:data:`FALLBACK`).
"""

import contextlib
import logging
import math
from typing import Optional, Tuple

import torch
from torch import nn
import torch.nn.functional as F
import triton
import triton.language as tl

from lseg_ros.core.model.image_encoder import AttentionLayers

LOG = logging.getLogger(__name__)

#: Why the kernel is not used in this process (None while it is).
FALLBACK: Optional[str] = None
#: Errors that are not the kernel's (re-raised, no fallback).
CUDA_ERRORS = (torch.OutOfMemoryError,) + tuple(
    error for error in (getattr(torch, 'AcceleratorError', None),) if error is not None)

LOG2E = 1.4426950408889634


@triton.jit
def _attention_kernel(Q, K, V, Out, qk_scale, stride_qb, stride_qh, stride_qn,
                      stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
                      stride_ob, stride_oh, stride_on, heads, tokens,
                      HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One tile of BLOCK_M queries of one (image, head) against all keys."""
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
        qk = tl.dot(q, k) * qk_scale
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :])
        acc = tl.dot(p.to(v.dtype), v, acc)
        m_i = m_ij
    if full < tokens:                                   # the last, partial key block
        offs_n = full + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None],
                    mask=offs_n[None, :] < tokens, other=0.0)
        qk = tl.dot(q, k) * qk_scale
        qk = tl.where(offs_n[None, :] < tokens, qk, float('-inf'))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :],
                    mask=offs_n[:, None] < tokens, other=0.0)
        acc = tl.dot(p.to(v.dtype), v, acc)
    acc = acc / l_i[:, None]
    o_ptrs = Out + image * stride_ob + head * stride_oh + offs_m[:, None] * stride_on \
        + offs_d[None, :]
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < tokens)


def tile_config(image_heads: int, tokens: int, processors: int) -> Tuple[int, int, int, int]:
    """Return (queries per tile, keys per block, warps, pipeline stages).

    128 queries with 8 warps once there are at least four such tiles per multiprocessor,
    else 64 with 4 warps: the fastest of 18 tilings at each size of the table above on an
    H200 (within 0.4 % of it at (4, 1201); at (1, 4097) 128 queries 5 % faster than 64).
    """
    if image_heads * -(-tokens // 128) >= 4 * processors:
        return 128, 64, 8, 4
    return 64, 64, 4, 3


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


def run_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Launch the kernel: (B, H, N, D) q, k, v (unit last stride) -> (B, N, H, D)."""
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    images, heads, tokens, head_dim = q.shape
    out = torch.empty((images, tokens, heads, head_dim), device=q.device, dtype=q.dtype)
    block_m, block_n, warps, stages = tile_config(images * heads, tokens,
                                                  _processors(q.device))
    grid = (triton.cdiv(tokens, block_m), images * heads)
    # Triton launches on the current device: make it q's
    with torch.cuda.device(q.device) if q.is_cuda else contextlib.nullcontext():
        _attention_kernel[grid](
            q, k, v, out, LOG2E / math.sqrt(head_dim), q.stride(0), q.stride(1), q.stride(2),
            k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
            out.stride(0), out.stride(2), out.stride(1), heads, tokens,
            HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, num_warps=warps,
            num_stages=stages)
    return out


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Compute the same function with PyTorch's kernels, in the same (B, N, H, D) layout."""
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).contiguous()


@torch.library.custom_op('lseg_ros::flash_attention', mutates_args=())
def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v of (B, H, N, D) tensors, returned as (B, N, H, D)."""
    global FALLBACK
    if FALLBACK is None:
        reason = supported(q)
        if reason is None:
            try:
                return run_kernel(q, k, v)
            except CUDA_ERRORS:
                raise                        # out of memory, a CUDA error: not the kernel's
            except Exception as error:  # noqa: B902 - Triton raises its own types
                if q.is_cuda and torch.cuda.is_current_stream_capturing():
                    raise
                reason = f'{type(error).__name__}: {str(error).strip()[:200]}'
                FALLBACK = reason
                LOG.warning("Triton attention failed here (%s); using PyTorch's attention "
                            'kernels', reason)
        else:
            return sdpa(q, k, v)
    return sdpa(q, k, v)


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
    return type(module).__name__ == 'Attention' and hasattr(module, 'qkv') \
        and hasattr(module, 'proj') and hasattr(module, 'num_heads') \
        and all(isinstance(getattr(module, name, None), identity)
                for name in ('q_norm', 'k_norm', 'norm')) \
        and getattr(module, 'gate', None) is None


def use_triton_attention(model: nn.Module) -> int:
    """Replace the plain timm attention modules of ``model`` by :class:`TritonAttention`."""
    count = 0
    for name, child in list(model.named_children()):
        if _is_plain_timm_attention(child):
            setattr(model, name, TritonAttention(child))
            count += 1
        else:
            count += use_triton_attention(child)
    return count
