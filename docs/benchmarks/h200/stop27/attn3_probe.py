"""Session 27 call 2: the package's kernel per shape, cuDNN, and the pipelined variants."""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
import triton
from triton.testing import do_bench_cudagraph

sys.path.insert(0, os.path.dirname(__file__))
import attn2_kernels as ak  # noqa
from lseg_ros.core.model import flash_attention as fa  # noqa

out = sys.argv[1]
T0 = time.time()
res = {'torch': torch.__version__, 'triton': triton.__version__,
       'gpu': torch.cuda.get_device_name(), 'us': {}, 'err': {}, 'tiling': {}}


def cudnn(q, k, v):
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)


for b, n in ((1, 577), (1, 1201), (1, 4097), (4, 577), (4, 1201)):
    key = '%dx%d' % (b, n)
    x = torch.randn(b, n, 3, 16, 64, device='cuda', dtype=torch.float16)
    q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2)
    res['tiling'][key] = fa.tile_config(b * 16, n, 132, fa.tma_available(q, k, v))
    fns = {'package': fa.run_kernel, 'cudnn': cudnn}
    if n != 577:
        for var in ('pipe', 'tpipe'):
            for c in ((128, 64, 8, 3), (128, 64, 8, 4), (128, 64, 4, 3), (64, 128, 4, 2),
                      (64, 64, 4, 3), (128, 128, 8, 2)):
                fns['%s_%d_%d_%d_%d' % ((var,) + c)] = \
                    lambda q, k, v, var=var, c=c: ak.run_pipe(var, q, k, v, c)
    row = res['us'].setdefault(key, {})
    for name, fn in fns.items():
        try:
            o = fn(q, k, v)
            torch.cuda.synchronize()
            err = (o.float() - ref).abs().max().item()
            res['err'].setdefault(key, {})[name] = err
            if err > 5e-3:
                raise RuntimeError('error %.2e' % err)
            row[name] = 1e3 * do_bench_cudagraph(lambda: fn(q, k, v), rep=50,
                                                 return_mode='median')
        except Exception as e:  # noqa
            row[name] = 'failed: %s' % str(e).strip()[:160]
    ok = sorted((v, k) for k, v in row.items() if isinstance(v, float))
    print('[%.0fs]' % (time.time() - T0), key, res['tiling'][key], 'package %.1f' %
          row['package'] if isinstance(row['package'], float) else row['package'],
          ' '.join('%s=%.1f' % (k, v) for v, k in ok[:6]), flush=True)
    json.dump(res, open(out, 'w'), indent=1)
