"""Session 27 call 2: where the 1024x1024 graph replay's time goes (kernels vs span vs wall)."""
import json
import statistics
import subprocess
import sys
import time

import torch
from torch.autograd import DeviceType
from torch.profiler import profile, ProfilerActivity

from lseg_ros.core.backends.torch_backend import TorchBackend
from lseg_ros.core.model.checkpoint import load_weights

ckpt, out = sys.argv[1], sys.argv[2]
backend = TorchBackend(load_weights(ckpt), 'cuda:0', 'auto')
res = {}
for h, w in ((1024, 1024), (480, 640)):
    key = '%dx%d' % (h, w)
    x = torch.randn(1, 3, h, w, device='cuda')
    backend(x)
    torch.cuda.synchronize()
    for _ in range(20):
        backend(x)
    torch.cuda.synchronize()
    wall = []
    for _ in range(60):
        t = time.perf_counter()
        backend(x)
        torch.cuda.synchronize()
        wall.append((time.perf_counter() - t) * 1e3)
    entry = backend._graphs[tuple(x.shape)]
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    graph_ms = []
    for _ in range(60):
        ev[0].record()
        entry.graph.replay()
        ev[1].record()
        torch.cuda.synchronize()
        graph_ms.append(ev[0].elapsed_time(ev[1]))
    # sustained replay with the clocks sampled
    smi = subprocess.Popen(['nvidia-smi', '--query-gpu=clocks.sm,clocks.mem,power.draw,'
                            'temperature.gpu,clocks_event_reasons.active',
                            '--format=csv,noheader', '-lms', '100'], stdout=subprocess.PIPE,
                           text=True)
    t_end = time.time() + 4
    n = 0
    while time.time() < t_end:
        entry.graph.replay()
        n += 1
        if n % 20 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    smi.terminate()
    samples = smi.communicate()[0].strip().splitlines()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            entry.graph.replay()
            torch.cuda.synchronize()
    kern = sorted((e for e in prof.events() if e.device_type == DeviceType.CUDA),
                  key=lambda e: e.time_range.start)
    total = sum(e.time_range.elapsed_us() for e in kern) / 10
    # spans: split at gaps > 200 us (between replays)
    spans, start, last = [], None, None
    gaps = []
    for e in kern:
        if start is None:
            start, last = e.time_range.start, e.time_range.end
            continue
        if e.time_range.start - last > 200:
            spans.append(last - start)
            start = e.time_range.start
        else:
            gaps.append(max(0, e.time_range.start - last))
        last = max(last, e.time_range.end)
    spans.append(last - start)
    big = sorted(gaps, reverse=True)[:10]
    res[key] = {'wall_p50_ms': statistics.median(wall), 'graph_event_p50_ms':
                statistics.median(graph_ms), 'kernels_per_replay': len(kern) / 10,
                'kernel_sum_ms': total / 1e3, 'span_ms': [s / 1e3 for s in spans],
                'gap_sum_ms': sum(gaps) / 10 / 1e3, 'largest_gaps_us': big,
                'sustained_replays': n, 'smi': samples[:3] + samples[-5:]}
    print(key, json.dumps(res[key], indent=1), flush=True)
json.dump(res, open(out, 'w'), indent=1)
