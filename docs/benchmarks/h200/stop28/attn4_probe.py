"""Session 28 call 2: float16-pair exponentials (ex2.approx.f16x2) and the row sums by the
tensor cores (a product with ones) in the package's kernel.

python attn4_probe.py OUT.json: per shape, the chosen tiling with the four combinations,
other tilings with the sums by the tensor cores, and cuDNN; two interleaved rounds.

Runs only with kernel_variants.diff applied to 785d193 (Tiling.exp16, Tiling.sum_mma).
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
import triton
from triton.testing import do_bench_cudagraph

from lseg_ros.core.model import flash_attention as fa

out = sys.argv[1]
T0 = time.time()
res = {'torch': torch.__version__, 'triton': triton.__version__,
       'gpu': torch.cuda.get_device_name(), 'us': {}, 'err': {}, 'tiling': {}}


def cudnn(q, k, v):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)


T = fa.Tiling
OTHERS = [T(64, 64, 4, 3, False), T(128, 64, 8, 3, False), T(64, 128, 4, 2, True),
          T(128, 64, 8, 3, True), T(128, 128, 8, 2, False)]
COMBOS = {'exp32_fadd': (False, False), 'exp32_mma': (False, True),
          'exp16_fadd': (True, False), 'exp16_mma': (True, True)}
for b, n in ((1, 4097), (1, 1201), (1, 577), (4, 577), (4, 1201)):
    key = '%dx%d' % (b, n)
    x = torch.randn(b, n, 3, 16, 64, device='cuda', dtype=torch.float16)
    q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2)
    chosen = fa.choose_tiling(q, k, v)._replace(exp16=False, sum_mma=False)
    res['tiling'][key] = chosen
    fns = {'cudnn': cudnn}
    for name, (e, m) in COMBOS.items():
        fns['chosen_' + name] = lambda q, k, v, t=chosen._replace(exp16=e, sum_mma=m): \
            fa.run_kernel(q, k, v, t)
    for t in OTHERS:
        if t == chosen:
            continue
        for name in ('exp32_mma', 'exp16_mma'):
            e, m = COMBOS[name]
            fns['%s_%d_%d_%d_%d_%s' % ((('tma' if t.tma else 'ptr'),) + tuple(t[:4]) + (name,))] \
                = lambda q, k, v, t=t._replace(exp16=e, sum_mma=m): fa.run_kernel(q, k, v, t)
    row = res['us'].setdefault(key, {})
    for rnd in range(2):
        for name, fn in (fns.items() if rnd == 0 else reversed(list(fns.items()))):
            if isinstance(row.get(name), str):
                continue
            try:
                o = fn(q, k, v)
                torch.cuda.synchronize()
                err = (o.float() - ref).abs().max().item()
                res['err'].setdefault(key, {})[name] = err
                if err > 5e-3:
                    raise RuntimeError('error %.2e' % err)
                t_us = 1e3 * do_bench_cudagraph(lambda: fn(q, k, v), rep=30,
                                                return_mode='median')
                row.setdefault(name, []).append(t_us)
            except Exception as e:  # noqa
                row[name] = 'failed: %s' % str(e).strip()[:300]
    best = {k: min(v) for k, v in row.items() if isinstance(v, list)}
    ok = sorted((v, k) for k, v in best.items())
    print('[%.0fs]' % (time.time() - T0), key, chosen,
          ' '.join('%s %s' % (k, ('%.1f' % best[k]) if k in best else row.get(k))
                   for k in ['chosen_' + c for c in COMBOS] + ['cudnn']),
          '| best:', ' '.join('%s=%.1f' % (k, v) for v, k in ok[:5]),
          '| err', ' '.join('%s %.2e' % (c, res['err'][key].get('chosen_' + c, -1))
                            for c in COMBOS), flush=True)
    json.dump(res, open(out, 'w'), indent=1)
