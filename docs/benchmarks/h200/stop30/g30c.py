"""Session 30 call 3: what bounds attention at 4097 tokens (diagnostic variants, clocks).

GFA_EXP_MODE=m python g30c.py  -> JSON lines: per-block times of the Gluon kernel in mode m
(0 as written, 1 without exponentials, 2 without the value product; 1 and 2 give wrong
results, timing only) and, in mode 0, of the package's kernel; SM clock and power sampled by
nvidia-smi while each kernel replays for 2 s.
"""
import json
import os
import subprocess
import sys
import time

import torch
from triton.testing import do_bench_cudagraph

sys.path.insert(0, '.device')
import gfa  # noqa: E402
from lseg_ros.core.model import flash_attention as fa  # noqa: E402

mode = int(os.environ.get('GFA_EXP_MODE', '0'))
KW = dict(block_n=128, stages=3, consumers=3)


def sustained(fn, seconds=2.0):
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        fn()
        torch.cuda.synchronize()
        with torch.cuda.graph(g):
            for _ in range(50):
                fn()
    smi = subprocess.Popen(['nvidia-smi', '--query-gpu=clocks.sm,power.draw',
                            '--format=csv,noheader,nounits', '-lms', '100'],
                           stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    n = 0
    while time.time() - t0 < seconds:
        g.replay()
        n += 1
        if n % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    dt = time.time() - t0
    smi.terminate()
    out = smi.communicate()[0]
    samples = [[float(x) for x in line.split(',')] for line in out.splitlines()
               if line.strip() and ',' in line][3:]
    return {'us_per_call': round(1e6 * dt / (n * 50), 2),
            'sm_mhz': [s[0] for s in samples], 'watts': [s[1] for s in samples]}


for b, n in ((1, 4097), (1, 1201)):
    x = torch.randn(b, n, 3, 16, 64, device='cuda', dtype=torch.float16)
    q, k, v = x.permute(2, 0, 3, 1, 4).unbind(0)
    fns = {'gfa_mode%d' % mode: lambda: gfa.run(q, k, v, **KW)}
    if mode == 0:
        fns['pkg'] = lambda: fa.run_kernel(q, k, v)
    for name, fn in fns.items():
        row = {'shape': [b, n], 'kernel': name,
               'us': [round(1e3 * do_bench_cudagraph(fn, rep=40, return_mode='median'), 2)
                      for _ in range(3)]}
        if n == 4097:
            row['sustained'] = sustained(fn)
        print(json.dumps(row), flush=True)
