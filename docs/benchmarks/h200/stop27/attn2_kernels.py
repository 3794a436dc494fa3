"""Attention kernel variants for the session-27 probe (fma, tma, tma_ws, poly)."""
import math

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

LOG2E = 1.4426950408889634


@triton.jit
def _exp2_poly(x):
    # 2**x for x <= 0 on the FMA pipe: 2**floor(x) by exponent bits, 2**frac by a cubic
    x = tl.maximum(x, -126.0)
    xi = tl.floor(x)
    f = x - xi
    p = 0.07802403102605543 * f + 0.22606707273040222
    p = p * f + 0.6958339921071484
    p = p * f + 0.9999251255464433
    bits = p.to(tl.int32, bitcast=True) + (xi.to(tl.int32) << 23)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _step(q, k, v, m_i, l_i, acc, qk_scale, POLY: tl.constexpr):
    qk = tl.dot(q, k)
    m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    qk = qk * qk_scale - m_ij[:, None]
    if POLY:
        a, b = tl.split(tl.reshape(qk, [qk.shape[0], qk.shape[1] // 2, 2]))
        p = tl.reshape(tl.join(tl.math.exp2(a), _exp2_poly(b)), [qk.shape[0], qk.shape[1]])
    else:
        p = tl.math.exp2(qk)
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc)
    return m_ij, l_i, acc


@triton.jit
def fma_kernel(Q, K, V, Out, qk_scale, stride_qb, stride_qh, stride_qn,
               stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
               stride_ob, stride_oh, stride_on, heads, tokens,
               HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               POLY: tl.constexpr):
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n0 = tl.arange(0, BLOCK_N)
    q = tl.load(Q + image * stride_qb + head * stride_qh + offs_m[:, None] * stride_qn
                + offs_d[None, :], mask=offs_m[:, None] < tokens, other=0.0)
    k_base = K + image * stride_kb + head * stride_kh
    v_base = V + image * stride_vb + head * stride_vh
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    for start_n in range(0, full, BLOCK_N):
        offs_n = start_n + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None])
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :])
        m_i, l_i, acc = _step(q, k, v, m_i, l_i, acc, qk_scale, POLY)
    if full < tokens:
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
    tl.store(Out + image * stride_ob + head * stride_oh + offs_m[:, None] * stride_on
             + offs_d[None, :], acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < tokens)


@triton.jit
def tma_kernel(desc_q, desc_k, desc_v, desc_o, qk_scale, heads, tokens,
               HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               WS: tl.constexpr, POLY: tl.constexpr):
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    q = desc_q.load([image, head, start_m * BLOCK_M, 0]).reshape([BLOCK_M, HEAD_DIM])
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    for start_n in tl.range(0, full, BLOCK_N, warp_specialize=WS):
        k = desc_k.load([image, head, start_n, 0]).reshape([BLOCK_N, HEAD_DIM]).T
        v = desc_v.load([image, head, start_n, 0]).reshape([BLOCK_N, HEAD_DIM])
        m_i, l_i, acc = _step(q, k, v, m_i, l_i, acc, qk_scale, POLY)
    if full < tokens:
        offs_n = full + tl.arange(0, BLOCK_N)
        k = desc_k.load([image, head, full, 0]).reshape([BLOCK_N, HEAD_DIM]).T
        qk = tl.dot(q, k) * qk_scale
        qk = tl.where(offs_n[None, :] < tokens, qk, float('-inf'))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = desc_v.load([image, head, full, 0]).reshape([BLOCK_N, HEAD_DIM])
        acc = tl.dot(p.to(v.dtype), v, acc)
    acc = acc / l_i[:, None]
    desc_o.store([image, start_m * BLOCK_M, head, 0],
                 acc.to(desc_o.dtype).reshape([1, BLOCK_M, 1, HEAD_DIM]))


def run(variant, q, k, v, config):
    """(B, H, N, D) strided q, k, v -> (B, N, H, D)."""
    bm, bn, warps, stages = config
    images, heads, tokens, head_dim = q.shape
    out = torch.empty((images, tokens, heads, head_dim), device=q.device, dtype=q.dtype)
    grid = (triton.cdiv(tokens, bm), images * heads)
    scale = LOG2E / math.sqrt(head_dim)
    poly = variant.endswith('poly')
    if variant.startswith('tma'):
        def desc(t, block):
            return TensorDescriptor(t, list(t.shape), list(t.stride()), block)
        tma_kernel[grid](desc(q, [1, 1, bm, head_dim]), desc(k, [1, 1, bn, head_dim]),
                         desc(v, [1, 1, bn, head_dim]), desc(out, [1, bm, 1, head_dim]),
                         scale, heads, tokens, HEAD_DIM=head_dim, BLOCK_M=bm, BLOCK_N=bn,
                         WS=variant.startswith('tma_ws'), POLY=poly, num_warps=warps,
                         num_stages=stages)
    else:
        fma_kernel[grid](q, k, v, out, scale, q.stride(0), q.stride(1), q.stride(2),
                         k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1),
                         v.stride(2), out.stride(0), out.stride(2), out.stride(1), heads,
                         tokens, HEAD_DIM=head_dim, BLOCK_M=bm, BLOCK_N=bn, POLY=poly,
                         num_warps=warps, num_stages=stages)
    return out


@triton.jit
def _softmax_pv(qk, v, m_i, l_i, acc, qk_scale):
    m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc)
    return m_ij, l_i, acc


@triton.jit
def pipe_kernel(Q, K, V, Out, qk_scale, stride_qb, stride_qh, stride_qn,
                stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
                stride_ob, stride_oh, stride_on, heads, tokens,
                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # the scores of key block j+1 are issued before the softmax of block j (tokens >= BLOCK_N)
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n0 = tl.arange(0, BLOCK_N)
    q = tl.load(Q + image * stride_qb + head * stride_qh + offs_m[:, None] * stride_qn
                + offs_d[None, :], mask=offs_m[:, None] < tokens, other=0.0)
    k_base = K + image * stride_kb + head * stride_kh
    v_base = V + image * stride_vb + head * stride_vh
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    k = tl.load(k_base + offs_n0[None, :] * stride_kn + offs_d[:, None])
    qk = tl.dot(q, k)
    for start_n in range(BLOCK_N, full, BLOCK_N):
        offs_n = start_n + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None])
        qk_next = tl.dot(q, k)
        v = tl.load(v_base + (offs_n - BLOCK_N)[:, None] * stride_vn + offs_d[None, :])
        m_i, l_i, acc = _softmax_pv(qk, v, m_i, l_i, acc, qk_scale)
        qk = qk_next
    v = tl.load(v_base + (full - BLOCK_N + offs_n0)[:, None] * stride_vn + offs_d[None, :])
    m_i, l_i, acc = _softmax_pv(qk, v, m_i, l_i, acc, qk_scale)
    if full < tokens:
        offs_n = full + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None],
                    mask=offs_n[None, :] < tokens, other=0.0)
        qk = tl.dot(q, k)
        qk = tl.where(offs_n[None, :] < tokens, qk, float('-inf'))
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :],
                    mask=offs_n[:, None] < tokens, other=0.0)
        m_i, l_i, acc = _softmax_pv(qk, v, m_i, l_i, acc, qk_scale)
    acc = acc / l_i[:, None]
    tl.store(Out + image * stride_ob + head * stride_oh + offs_m[:, None] * stride_on
             + offs_d[None, :], acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < tokens)


@triton.jit
def tpipe_kernel(desc_q, desc_k, desc_v, desc_o, qk_scale, heads, tokens,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    q = desc_q.load([image, head, start_m * BLOCK_M, 0]).reshape([BLOCK_M, HEAD_DIM])
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    qk = tl.dot(q, desc_k.load([image, head, 0, 0]).reshape([BLOCK_N, HEAD_DIM]).T)
    for start_n in range(BLOCK_N, full, BLOCK_N):
        k = desc_k.load([image, head, start_n, 0]).reshape([BLOCK_N, HEAD_DIM]).T
        qk_next = tl.dot(q, k)
        v = desc_v.load([image, head, start_n - BLOCK_N, 0]).reshape([BLOCK_N, HEAD_DIM])
        m_i, l_i, acc = _softmax_pv(qk, v, m_i, l_i, acc, qk_scale)
        qk = qk_next
    v = desc_v.load([image, head, full - BLOCK_N, 0]).reshape([BLOCK_N, HEAD_DIM])
    m_i, l_i, acc = _softmax_pv(qk, v, m_i, l_i, acc, qk_scale)
    if full < tokens:
        offs_n = full + tl.arange(0, BLOCK_N)
        qk = tl.dot(q, desc_k.load([image, head, full, 0]).reshape([BLOCK_N, HEAD_DIM]).T)
        qk = tl.where(offs_n[None, :] < tokens, qk, float('-inf'))
        v = desc_v.load([image, head, full, 0]).reshape([BLOCK_N, HEAD_DIM])
        m_i, l_i, acc = _softmax_pv(qk, v, m_i, l_i, acc, qk_scale)
    acc = acc / l_i[:, None]
    desc_o.store([image, start_m * BLOCK_M, head, 0],
                 acc.to(desc_o.dtype).reshape([1, BLOCK_M, 1, HEAD_DIM]))


def run_pipe(variant, q, k, v, config):
    bm, bn, warps, stages = config
    images, heads, tokens, head_dim = q.shape
    out = torch.empty((images, tokens, heads, head_dim), device=q.device, dtype=q.dtype)
    grid = (triton.cdiv(tokens, bm), images * heads)
    scale = LOG2E / math.sqrt(head_dim)
    if variant == 'tpipe':
        def desc(t, block):
            return TensorDescriptor(t, list(t.shape), list(t.stride()), block)
        tpipe_kernel[grid](desc(q, [1, 1, bm, head_dim]), desc(k, [1, 1, bn, head_dim]),
                           desc(v, [1, 1, bn, head_dim]), desc(out, [1, bm, 1, head_dim]),
                           scale, heads, tokens, HEAD_DIM=head_dim, BLOCK_M=bm, BLOCK_N=bn,
                           num_warps=warps, num_stages=stages)
    else:
        pipe_kernel[grid](q, k, v, out, scale, q.stride(0), q.stride(1), q.stride(2),
                          k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1),
                          v.stride(2), out.stride(0), out.stride(2), out.stride(1), heads,
                          tokens, HEAD_DIM=head_dim, BLOCK_M=bm, BLOCK_N=bn,
                          num_warps=warps, num_stages=stages)
    return out
