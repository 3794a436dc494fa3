"""Interleaved A/B timing of encoder variants in one process (session 25 probe; session 28:
the attention kernel's exponentials in float32 or float16 pairs, its row sums by the arithmetic
units or the tensor cores).

python ab_probe.py CHECKPOINT OUT.json

Runs only with kernel_variants.diff applied to 785d193 (Tiling.exp16, Tiling.sum_mma).
"""
import json
import statistics
import sys
import time

import torch

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.model.checkpoint import load_weights

ckpt, out = sys.argv[1], sys.argv[2]
weights = load_weights(ckpt)
SIZES = [(480, 640), (384, 384), (1024, 1024)]
ROUNDS, ITERS = 6, 60


from lseg_ros.core.model import flash_attention as fa  # noqa


# fa.choose_tiling is called when the operator runs: at each size's warm-up and capture
CHOOSE = fa.choose_tiling
variants = {'exp32_fadd': (False, False), 'exp32_mma': (False, True),
            'exp16_mma': (True, True)}


def use(name):
    e, m = variants[name]
    fa.choose_tiling = lambda q, k, v: CHOOSE(q, k, v)._replace(exp16=e, sum_mma=m)


backends = {}
first = {}
for name in variants:
    use(name)
    b = TorchBackend(weights, 'cuda:0', 'auto')
    backends[name] = b
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w, device='cuda')
        t = time.perf_counter()
        try:
            b(x)
            torch.cuda.synchronize()
            first[f'{name} {h}x{w}'] = time.perf_counter() - t
        except Exception as e:  # noqa
            first[f'{name} {h}x{w}'] = f'failed: {e}'
    print(name, b.describe().get('levers'), b.describe().get('attention'),
          b.describe().get('compile_fallback'), flush=True)
print('first calls', json.dumps(first, indent=1), flush=True)
result = {'first_s': first, 'p50_ms': {}, 'rounds': {}}
for h, w in SIZES:
    x = torch.randn(1, 3, h, w, device='cuda')
    per = {n: [] for n in backends}
    for r in range(ROUNDS):
        order = list(backends) if r % 2 == 0 else list(reversed(list(backends)))
        for n in order:
            b = backends[n]
            use(n)
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
    key = f'{h}x{w}'
    result['rounds'][key] = per
    result['p50_ms'][key] = {n: statistics.median(v) for n, v in per.items()}
    print(key, {n: '%.3f (rounds %.3f-%.3f)' % (statistics.median(v), min(v), max(v))
                for n, v in per.items()}, flush=True)
result['torch'] = torch.__version__
result['gpu'] = torch.cuda.get_device_name()
json.dump(result, open(out, 'w'), indent=1)
