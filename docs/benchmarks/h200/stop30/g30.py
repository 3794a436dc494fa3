"""Session 30 calls 1 and 2: the Gluon FA3-style kernel (gfa.py) variants against the package's kernel.

python g30.py VARIANT_JSON  -> one JSON line per shape on stdout (run by g30_run.py)
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench_cudagraph

sys.path.insert(0, '.device')
import gfa  # noqa: E402
from lseg_ros.core.model import flash_attention as fa  # noqa: E402

kw = json.loads(sys.argv[1])
T0 = time.time()


def bench(fn):
    return 1e3 * do_bench_cudagraph(fn, rep=40, return_mode='median')


for b, n, timed in ((2, 161, False), (1, 1024, False), (2, 200, False), (1, 577, True),
                    (1, 1201, True), (1, 4097, True), (4, 577, True), (4, 1201, True)):
    torch.manual_seed(0)
    x = torch.randn(b, n, 3, 16, 64, device='cuda', dtype=torch.float16)
    q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).transpose(1, 2)
    got = gfa.run(q, k, v, **kw)
    torch.cuda.synchronize()
    err = (got.float() - ref).abs().max().item()
    err_pkg = (fa.run_kernel(q, k, v).float() - ref).abs().max().item()
    row = {'shape': [b, n], 'err': err, 'err_pkg': err_pkg, 'nan': bool(got.isnan().any())}
    if timed and err < 5e-3:
        for rnd in range(3):
            for name in (['pkg', 'gfa'] if rnd % 2 == 0 else ['gfa', 'pkg']):
                fn = (lambda: fa.run_kernel(q, k, v)) if name == 'pkg' \
                    else (lambda: gfa.run(q, k, v, **kw))
                row.setdefault(name, []).append(round(bench(fn), 2))
    row['t'] = round(time.time() - T0, 1)
    print(json.dumps(row), flush=True)
