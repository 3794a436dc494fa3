"""Session 29 call 1: interleaved A/B of the ViT-L/16 default: e59cdd2's attention kernel
(old), the narrow last key step (new), and new with the residual adds in the matrix
products (resid: addmm with the residual stream as C; the bias added to it beforehand).

python ab29.py CHECKPOINT OUT.json
"""
import importlib.util
import json
import statistics
import sys
import time
import types

import torch

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.model import flash_attention as fa
from lseg_ros.core.model.checkpoint import load_weights

spec = importlib.util.spec_from_file_location('fa_old', '.device/fa_old.py')
old = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
ckpt, out = sys.argv[1], sys.argv[2]
weights = load_weights(ckpt)
SHAPES = [(1, 1024, 1024), (1, 384, 384), (1, 480, 640), (4, 384, 384)]
ROUNDS, ITERS = 6, 40


def resid_forward(self, x):
    b, n, c = x.shape
    a = self.attn
    h = fa.flash_attention(*a.heads(self.norm1(x))).reshape(b * n, c)
    x = torch.addmm((x + a.proj.bias).reshape(b * n, c), h, a.proj.weight.t()).reshape(b, n, c)
    m = self.mlp
    h = m.fc1(self.norm2(x)).reshape(b * n, -1)
    return torch.addmm((x + m.fc2.bias).reshape(b * n, c), h, m.fc2.weight.t()).reshape(b, n, c)


def make(name):
    backend = TorchBackend(weights, 'cuda:0', 'auto')
    if name == 'resid':
        for block in backend.model.pretrained.model.blocks:
            block.forward = types.MethodType(resid_forward, block)
    saved = fa.run_kernel
    if name == 'old':
        fa.run_kernel = old.run_kernel
    first = {}
    try:
        for s in SHAPES:
            x = torch.randn(*s[:1], 3, *s[1:], device='cuda')
            t = time.perf_counter()
            backend(x)
            torch.cuda.synchronize()
            first['%dx%dx%d' % s] = time.perf_counter() - t
    finally:
        fa.run_kernel = saved
    return backend, first


backends, firsts = {}, {}
for name in ('new', 'old', 'resid'):
    try:
        backends[name], firsts[name] = make(name)
        print(name, backends[name].describe().get('levers'), firsts[name], flush=True)
    except Exception as e:  # noqa
        firsts[name] = 'failed: %s' % str(e)[:500]
        print(name, firsts[name], flush=True)
result = {'first_s': firsts, 'p50_ms': {}, 'rounds': {}, 'max_diff_vs_new': {}}
for s in SHAPES:
    x = torch.randn(*s[:1], 3, *s[1:], device='cuda')
    ref = backends['new'](x).float().clone()
    for n, b in backends.items():
        result['max_diff_vs_new'].setdefault('%dx%dx%d' % s, {})[n] = \
            (b(x).float() - ref).abs().max().item()
    per = {n: [] for n in backends}
    for r in range(ROUNDS):
        order = list(backends) if r % 2 == 0 else list(reversed(list(backends)))
        for n in order:
            b = backends[n]
            for _ in range(5):
                b(x)
            torch.cuda.synchronize()
            ts = []
            for _ in range(ITERS):
                t = time.perf_counter()
                b(x)
                torch.cuda.synchronize()
                ts.append((time.perf_counter() - t) * 1e3)
            per[n].append(statistics.median(ts))
    key = '%dx%dx%d' % s
    result['rounds'][key] = per
    result['p50_ms'][key] = {n: statistics.median(v) for n, v in per.items()}
    print(key, {n: '%.3f (rounds %.3f-%.3f)' % (statistics.median(v), min(v), max(v))
                for n, v in per.items()}, result['max_diff_vs_new'][key], flush=True)
result['torch'] = torch.__version__
result['gpu'] = torch.cuda.get_device_name()
json.dump(result, open(out, 'w'), indent=1)
