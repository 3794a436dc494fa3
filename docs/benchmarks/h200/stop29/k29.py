"""Session 29 call 1: the narrow last key step (new) against e59cdd2's kernel (old), per
block; and the ViT-L/16 blocks' matrix products at 4096 and 4097 rows.

python k29.py OUT.json
"""
import importlib.util
import json
import sys
import time

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench_cudagraph

from lseg_ros.core.model import flash_attention as fa

spec = importlib.util.spec_from_file_location('fa_old', '.device/fa_old.py')
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
out = sys.argv[1]
T0 = time.time()
res = {'torch': torch.__version__, 'triton': triton.__version__,
       'gpu': torch.cuda.get_device_name(), 'attention_us': {}, 'err': {}, 'gemm_us': {}}


def bench(fn):
    return 1e3 * do_bench_cudagraph(fn, rep=40, return_mode='median')


for b, n in ((1, 4097), (1, 577), (1, 1201), (4, 577), (4, 1201), (1, 4096)):
    key = '%dx%d' % (b, n)
    x = torch.randn(b, n, 3, 16, 64, device='cuda', dtype=torch.float16)
    q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2)
    fns = {'old': lambda: old.run_kernel(q, k, v), 'new': lambda: fa.run_kernel(q, k, v)}
    row = res['attention_us'].setdefault(key, {'tiling': str(fa.choose_tiling(q, k, v)),
                                              'tail': fa.tail_block(n, fa.choose_tiling(q, k, v).block_n)})
    for name, fn in fns.items():
        res['err'].setdefault(key, {})[name] = (fn().float() - ref).abs().max().item()
    for rnd in range(4):
        for name in (['old', 'new'] if rnd % 2 == 0 else ['new', 'old']):
            row.setdefault(name, []).append(bench(fns[name]))
    print('[%.0fs] %s %s old %s new %s err %s' % (
        time.time() - T0, key, row['tiling'], ['%.2f' % t for t in row['old']],
        ['%.2f' % t for t in row['new']], res['err'][key]), flush=True)
    json.dump(res, open(out, 'w'), indent=1)

# the blocks' matrix products at 4097 rows (1024x1024) and 4096
for name, nout, kin, act in (('qkv', 3072, 1024, False), ('proj', 1024, 1024, False),
                             ('fc1_gelu', 4096, 1024, True), ('fc2', 1024, 4096, False)):
    w = torch.randn(nout, kin, device='cuda', dtype=torch.float16) * 0.02
    bias = torch.randn(nout, device='cuda', dtype=torch.float16)
    for m in (4097, 4096, 4224):
        a = torch.randn(m, kin, device='cuda', dtype=torch.float16)
        c = torch.randn(m, nout, device='cuda', dtype=torch.float16)
        if act:
            fn = lambda: torch._addmm_activation(bias, a, w.t(), use_gelu=True)  # noqa
        else:
            fn = lambda: F.linear(a, w, bias)  # noqa
        t = [bench(fn) for _ in range(3)]
        res['gemm_us']['%s_%d' % (name, m)] = t
        line = '%s M=%d linear %.2f' % (name, m, min(t))
        if not act:
            t2 = [bench(lambda: torch.addmm(c, a, w.t())) for _ in range(3)]
            t3 = [bench(lambda: F.linear(a, w, bias) + c) for _ in range(3)]
            res['gemm_us']['%s_%d_addmm_C' % (name, m)] = t2
            res['gemm_us']['%s_%d_linear_plus_add' % (name, m)] = t3
            line += ' addmm(C) %.2f linear+add %.2f' % (min(t2), min(t3))
        print(line, flush=True)
json.dump(res, open(out, 'w'), indent=1)
