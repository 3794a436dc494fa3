"""Probe: attention kernels for ViT-L/16 token counts (session 26, call 1).

python attn_probe.py CHECKPOINT OUTDIR   (CHECKPOINT unused here)

Call 1 also timed three encoders interleaved after these kernels (the default, the
default with this kernel registered as a ``triton_op``, and Inductor's PDL option); that
part is not kept: Inductor failed to compile the ``triton_op`` (the encoder ran uncompiled)
and PDL changed nothing measurable (-1.1 / +0.9 / -0.2 % at 384x384 / 480x640 /
1024x1024). Its output is at the end of attention_kernels_log.txt. Session 26's A/B of
the kernel in the default is session 25's ab_probe.py with the default against
``attention='sdpa'``.
"""
import json
import os
import sys
import time

import torch
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F
import triton
from triton.testing import do_bench_cudagraph

sys.path.insert(0, os.path.dirname(__file__))
import attn_kernel as ak  # noqa

ckpt, outdir = sys.argv[1], sys.argv[2]
os.makedirs(outdir, exist_ok=True)
T0 = time.time()
res = {'torch': torch.__version__, 'triton': triton.__version__,
       'gpu': torch.cuda.get_device_name(), 'micro': [], 'best': {}}


def dump():
    json.dump(res, open(os.path.join(outdir, 'attn_probe.json'), 'w'), indent=1)


def log(*a):
    print('[%.0fs]' % (time.time() - T0), *a, flush=True)


def qkv_of(b, n):
    x = torch.randn(b, n, 3 * 1024, device='cuda', dtype=torch.float16)
    return x.reshape(b, n, 3, 16, 64).permute(2, 0, 3, 1, 4).unbind(0)


def bench(fn):
    fn()
    torch.cuda.synchronize()
    return do_bench_cudagraph(fn, rep=60, return_mode='median')


try:
    from torch.nn.attention.flex_attention import flex_attention
    flex = torch.compile(flex_attention, dynamic=False)
except Exception as e:  # noqa
    flex = None
    log('no flex', e)

SHAPES = [(1, 1201), (1, 577), (1, 4097), (4, 577), (4, 1201)]
for b, n in SHAPES:
    q, k, v = qkv_of(b, n)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2)
    flops = 4 * b * 16 * n * n * 64
    row = {'b': b, 'n': n, 'ms': {}, 'err': {}}

    def rec(name, fn, out_bnhd):
        try:
            t = bench(fn)
            o = fn()
            o = o.transpose(1, 2) if not out_bnhd else o
            row['ms'][name] = t
            row['err'][name] = (o.float() - ref).abs().max().item()
        except Exception as e:  # noqa
            row['ms'][name] = 'failed: %s' % str(e)[:200]

    for name, be in (('cudnn', SDPBackend.CUDNN_ATTENTION), ('flash2', SDPBackend.FLASH_ATTENTION),
                     ('efficient', SDPBackend.EFFICIENT_ATTENTION)):
        def fn(be=be):
            with sdpa_kernel(be):
                return F.scaled_dot_product_attention(q, k, v)
        rec(name, fn, False)
    if flex is not None:
        rec('flex', lambda: flex(q, k, v), False)
        if (b, n) == (1, 1201):
            for bm, bn, w, s in ((64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3),
                                 (64, 128, 4, 3)):
                opts = {'BLOCK_M': bm, 'BLOCK_N': bn, 'num_warps': w, 'num_stages': s}
                rec('flex_%d_%d_%d_%d' % (bm, bn, w, s),
                    lambda opts=opts: flex(q, k, v, kernel_options=opts), False)
    for cfg in ak.CONFIGS:
        c = (cfg.kwargs['BLOCK_M'], cfg.kwargs['BLOCK_N'], cfg.num_warps, cfg.num_stages)
        rec('triton_%d_%d_%d_%d' % c, lambda c=c: ak.attention(q, k, v, config=c), True)
    tri = {kk: vv for kk, vv in row['ms'].items()
           if kk.startswith('triton_') and isinstance(vv, float)}
    if tri:
        best = min(tri, key=tri.get)
        res['best'][n if b == 1 else '%dx%d' % (b, n)] = best
        row['best_triton'] = best
    row['tflops'] = {kk: flops / vv / 1e9 for kk, vv in row['ms'].items()
                     if isinstance(vv, float)}
    res['micro'].append(row)
    log(b, n, {kk: round(vv, 4) if isinstance(vv, float) else vv[:60]
               for kk, vv in row['ms'].items() if not kk.startswith('triton_')},
        'best triton', row.get('best_triton'), row['ms'].get(row.get('best_triton')),
        'err', {kk: '%.1e' % vv for kk, vv in row['err'].items() if not kk.startswith('triton_')})
    dump()

log('done')
