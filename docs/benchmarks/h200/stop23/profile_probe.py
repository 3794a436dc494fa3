"""Kernel profile of the compiled ViT-L/16 default (Inductor, no CUDA graph: same kernels).

The device-only probe run on the H200 for docs/benchmarks.md (session 23; since then
reformatted for flake8 and its kernel grouping corrected, see below):
    python profile_probe.py CHECKPOINT OUT.txt 480 640 [BATCH]
"""
import collections
import json
import sys
import time

import torch
from torch.profiler import profile, ProfilerActivity

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.model.checkpoint import load_weights

ckpt, out, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = int(sys.argv[5]) if len(sys.argv) > 5 else 1
backend = TorchBackend(load_weights(ckpt), 'cuda:0', 'fp16', cuda_graph=False,
                       compile_mode='default')
x = torch.randn(b, 3, h, w, device='cuda')
t = time.perf_counter()
backend(x)
torch.cuda.synchronize()
print('first call (compile) %.1f s' % (time.perf_counter() - t))
for _ in range(5):
    backend(x)
torch.cuda.synchronize()
N = 10
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(N):
        backend(x)
    torch.cuda.synchronize()
cats = collections.Counter()
counts = collections.Counter()
rows = []
for e in prof.key_averages():
    t_us = getattr(e, 'self_device_time_total', None) or getattr(e, 'self_cuda_time_total', 0)
    if not t_us or e.count == 0:
        continue
    n = e.key.lower()
    # grouping corrected after the session-23 runs (their .txt files used the old order):
    # Inductor's kernels first (their names may contain "convolution"), and transposed
    # convolutions (dgrad) with the convolutions
    if n.startswith('triton'):
        c = 'triton (fused pointwise/reduction)'
    elif any(k in n for k in ('fmha', 'flash', 'attention', 'sdpa', 'mha')):
        c = 'attention'
    elif 'dgrad' in n:
        c = 'conv'
    elif (any(k in n for k in ('gemm', 'nvjet', 'cutlass', 'sm90_xmma', 'cublas'))
          and 'fprop' not in n and 'conv' not in n):
        c = 'gemm'
    elif any(k in n for k in ('conv', 'fprop', 'implicit', 'winograd', 'cudnn')):
        c = 'conv'
    elif 'memcpy' in n or 'memset' in n:
        c = 'memcpy/memset'
    else:
        c = 'other aten'
    cats[c] += t_us / N
    counts[c] += e.count / N
    rows.append((t_us / N, e.count / N, c, e.key[:110]))
rows.sort(reverse=True)
total = sum(cats.values())
lines = ['ViT-L/16 fp16 compiled (Inductor default, no graph), %dx%d batch %d, %s, torch %s'
         % (h, w, b, torch.cuda.get_device_name(0), torch.__version__),
         'GPU kernel time per forward %.3f ms in %d kernels'
         % (total / 1e3, sum(counts.values()))]
for c, v in cats.most_common():
    lines.append('  %-38s %.3f ms  %5.1f %%  %4d kernels'
                 % (c, v / 1e3, 100 * v / total, counts[c]))
lines.append('top kernels (us per forward, calls per forward, category, name):')
for r in rows[:45]:
    lines.append('  %8.1f %5.1f  %-12s %s' % (r[0], r[1], r[2][:12], r[3]))
text = '\n'.join(lines)
open(out, 'w').write(text + '\n')
json.dump({'h': h, 'w': w, 'total_us': total, 'categories': dict(cats),
           'kernels': dict(counts), 'top': rows[:80]}, open(out + '.json', 'w'), indent=1)
print(text)
