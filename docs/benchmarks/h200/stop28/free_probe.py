"""Session 28 call 3 (diagnostic): where the attention kernel's time goes, by leaving one
part out (the results are wrong on purpose; timing only).

A copy of the package's pointer-load kernel (785d193) with MODE: 0 as the package
(validated against it), 1 no exponentials (p = the scaled, shifted score), 2 no value
product (the probabilities summed only), 3 no running maximum (scores are small here),
4 no score product (q kᵀ replaced by a zero tile, loads kept).  Then register caps.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.testing import do_bench_cudagraph

from lseg_ros.core.model import flash_attention as fa


@triton.jit
def _step(qk, v, m_i, l_i, acc, qk_scale, MODE: tl.constexpr):
    if MODE == 3:
        m_ij = m_i
    else:
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
    if MODE == 1:
        p = qk * qk_scale - m_ij[:, None]
    else:
        p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    if MODE == 2:
        acc = acc * alpha[:, None]
    else:
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
    return m_ij, l_i, acc


@triton.jit
def _kernel(Q, K, V, Out, qk_scale, stride_qb, stride_qh, stride_qn,
            stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vn,
            stride_ob, stride_oh, stride_on, heads, tokens,
            HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
            MODE: tl.constexpr):
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
    if MODE == 3:
        m_i = tl.zeros([BLOCK_M], tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    for start_n in range(0, full, BLOCK_N):
        offs_n = start_n + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None])
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :])
        if MODE == 4:
            qk = tl.zeros([BLOCK_M, BLOCK_N], tl.float32) + tl.sum(k.to(tl.float32), 0)[None, :]
        else:
            qk = tl.dot(q, k)
        m_i, l_i, acc = _step(qk, v, m_i, l_i, acc, qk_scale, MODE)
    if full < tokens:
        offs_n = full + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None],
                    mask=offs_n[None, :] < tokens, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :],
                    mask=offs_n[:, None] < tokens, other=0.0)
        qk = tl.where(offs_n[None, :] < tokens, tl.dot(q, k), float('-inf'))
        if MODE == 3:
            qk = tl.where(offs_n[None, :] < tokens, qk, -1e4)
        m_i, l_i, acc = _step(qk, v, m_i, l_i, acc, qk_scale, MODE)
    acc = acc / l_i[:, None]
    tl.store(Out + image * stride_ob + head * stride_oh + offs_m[:, None] * stride_on
             + offs_d[None, :], acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < tokens)


res = {'gpu': torch.cuda.get_device_name(), 'triton': triton.__version__, 'us': {}}
for b, n, t in ((1, 4097, fa.Tiling(128, 64, 8, 3, False)), (4, 1201, fa.Tiling(128, 64, 8, 3, False)),
                (1, 1201, fa.Tiling(64, 64, 4, 3, False)), (4, 577, fa.Tiling(64, 64, 4, 3, False))):
    key = '%dx%d' % (b, n)
    x = torch.randn(b, n, 3, 16, 64, device='cuda', dtype=torch.float16)
    q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2)
    out = torch.empty((b, n, 16, 64), device='cuda', dtype=torch.float16)
    row = res['us'].setdefault(key, {})

    def launch(mode, cap=None):
        opts = {'HEAD_DIM': 64, 'BLOCK_M': t.block_m, 'BLOCK_N': t.block_n, 'MODE': mode,
                'num_warps': t.warps, 'num_stages': t.stages}
        if cap:
            opts['maxnreg'] = cap
        return _kernel[(triton.cdiv(n, t.block_m), b * 16)](
            q, k, v, out, fa.LOG2E / math.sqrt(64), q.stride(0), q.stride(1), q.stride(2),
            k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
            out.stride(0), out.stride(2), out.stride(1), 16, n, **opts)

    cases = [('package', None, None)] + [('mode%d' % m, m, None) for m in range(5)] + \
        [('mode0_maxnreg%d' % c, 0, c) for c in (168, 128)]
    for rnd in range(2):
        for name, mode, cap in (cases if rnd == 0 else cases[::-1]):
            if isinstance(row.get(name), str):
                continue
            try:
                if mode is None:
                    fn = lambda: fa.run_kernel(q, k, v, t)  # noqa
                    o = fn()
                    info = ''
                else:
                    fn = lambda mode=mode, cap=cap: launch(mode, cap)  # noqa
                    ck = fn()
                    o = out
                    info = 'regs %s spills %s' % (getattr(ck, 'n_regs', '?'), getattr(ck, 'n_spills', '?'))
                torch.cuda.synchronize()
                err = (o.float() - ref).abs().max().item()
                us = 1e3 * do_bench_cudagraph(fn, rep=30, return_mode='median')
                row.setdefault(name, []).append(us)
                if rnd == 0:
                    res.setdefault('info', {})['%s %s' % (key, name)] = '%s err %.1e' % (info, err)
            except Exception as e:  # noqa
                row[name] = 'failed: %s' % str(e).strip()[:300]
    best = {k: min(v) for k, v in row.items() if isinstance(v, list)}
    print(key, t[:4], ' '.join('%s=%.1f' % kv for kv in best.items()),
          [v for k, v in row.items() if isinstance(v, str)], flush=True)
for k, v in res.get('info', {}).items():
    print('  ', k, v)
json.dump(res, open(sys.argv[1], 'w'), indent=1)
