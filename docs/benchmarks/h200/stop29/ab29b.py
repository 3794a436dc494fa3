"""Session 29 call 2: interleaved A/B of the ViT-L/16 default: the attention kernel without
programmatic dependent launch (base), with it (pdl_attn), and with Inductor's kernels
launched that way too (pdl_all, torch._inductor.config.triton.enable_pdl); then every
variant against base on 40 other inputs per shape (bitwise).

python ab29b.py CHECKPOINT OUT.json
"""
import json
import statistics
import sys
import time

import torch

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.model import flash_attention as fa
from lseg_ros.core.model.checkpoint import load_weights

ckpt, out = sys.argv[1], sys.argv[2]
weights = load_weights(ckpt)
SHAPES = [(1, 1024, 1024), (1, 384, 384), (1, 480, 640), (4, 384, 384)]
ROUNDS, ITERS = 6, 40


import torch._inductor.config as inductor_config  # noqa: E402

print('inductor enable_pdl option:', hasattr(inductor_config.triton, 'enable_pdl'), flush=True)


def make(name):
    backend = TorchBackend(weights, 'cuda:0', 'auto')
    fa.PDL = name != 'base'
    patch = {'triton.enable_pdl': True} if name == 'pdl_all' else {}
    first = {}
    try:
        with inductor_config.patch(patch):
            for s in SHAPES:
                x = torch.randn(*s[:1], 3, *s[1:], device='cuda')
                t = time.perf_counter()
                backend(x)
                torch.cuda.synchronize()
                first['%dx%dx%d' % s] = time.perf_counter() - t
    finally:
        fa.PDL = True
    return backend, first


backends, firsts = {}, {}
for name in ('base', 'pdl_attn', 'pdl_all'):
    try:
        backends[name], firsts[name] = make(name)
        print(name, backends[name].describe().get('levers'), firsts[name], flush=True)
    except Exception as e:  # noqa
        firsts[name] = 'failed: %s' % str(e)[:500]
        print(name, firsts[name], flush=True)
result = {'first_s': firsts, 'p50_ms': {}, 'rounds': {}, 'max_diff_vs_base': {}}
for s in SHAPES:
    x = torch.randn(*s[:1], 3, *s[1:], device='cuda')
    ref = backends['base'](x).float().clone()
    for n, b in backends.items():
        result['max_diff_vs_base'].setdefault('%dx%dx%d' % s, {})[n] = \
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
                for n, v in per.items()}, result['max_diff_vs_base'][key], flush=True)
result['bitwise_40_inputs'] = {}
for s in SHAPES:
    diffs = {n: 0.0 for n in backends if n != 'base'}
    for i in range(40):
        x = torch.randn(*s[:1], 3, *s[1:], device='cuda')
        ref = backends['base'](x).float().clone()
        for n in diffs:
            diffs[n] = max(diffs[n], (backends[n](x).float() - ref).abs().max().item())
    result['bitwise_40_inputs']['%dx%dx%d' % s] = diffs
    print('max diff over 40 inputs', s, diffs, flush=True)
result['torch'] = torch.__version__
result['gpu'] = torch.cuda.get_device_name()
json.dump(result, open(out, 'w'), indent=1)
