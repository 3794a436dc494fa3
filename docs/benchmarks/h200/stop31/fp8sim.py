"""Fidelity of FP8 attention, simulated (e4m3 rounding of q, k, p, v; math in float32).

MODE: qk, pv, all (which products take FP8 inputs).  SCALE: head (per image and head
amax of q, k, v) or tensor (per layer amax).  P_SHIFT: p scaled by 2**P_SHIFT before its
rounding (the exponent range of e4m3).
"""
import argparse
import json
import math
import os
import sys

import torch

from lseg_ros.core.model.image_encoder import AttentionLayers
from lseg_ros.deploy import fidelity

E4M3_MAX = 448.0


def q8(t, dims):
    amax = t.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12)
    scale = amax / E4M3_MAX
    return (t / scale).to(torch.float8_e4m3fn).float() * scale


class Fp8SimAttention(AttentionLayers):
    mode = 'all'
    scale = 'head'
    p_shift = 8
    block = 128

    def forward(self, x, attn_mask=None, is_causal=False):
        b, n, c = x.shape
        q, k, v = (t.float() for t in self.heads(x))      # (B, H, N, D)
        dims = (2, 3) if self.scale == 'head' else (1, 2, 3)
        if self.mode in ('qk', 'all'):
            q, k = q8(q, dims), q8(k, dims)
        s = (q @ k.transpose(-1, -2)) * (self.head_dim ** -0.5)
        if self.mode in ('pv', 'all', 'p', 'v'):
            if self.mode != 'p':
                v = q8(v, dims)
            # online softmax by key blocks: p relative to the running maximum of the blocks
            out = torch.zeros_like(q)
            m = torch.full(s.shape[:-1] + (1,), float('-inf'), device=s.device)
            l = torch.zeros_like(m)
            for j in range(0, n, self.block):
                sj = s[..., j:j + self.block]
                m_new = torch.maximum(m, sj.amax(-1, keepdim=True))
                p = torch.exp(sj - m_new)
                alpha = torch.exp(m - m_new)
                l = l * alpha + p.sum(-1, keepdim=True)      # sum of the float32 p (as kernels)
                p8 = p if self.mode == 'v' else \
                    (p * 2.0 ** self.p_shift).to(torch.float8_e4m3fn).float() \
                    * 2.0 ** -self.p_shift
                out = out * alpha + p8 @ v[..., j:j + self.block, :]
                m = m_new
            out = out / l
        else:
            out = torch.softmax(s, -1) @ v
        out = out.to(x.dtype).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', default='fp32')
    parser.add_argument('--sizes', default='384x384')
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--mode', default='all')
    parser.add_argument('--scale', default='head')
    parser.add_argument('--p-shift', type=int, default=8)
    parser.add_argument('--block', type=int, default=128)
    parser.add_argument('--output')
    args = parser.parse_args()
    from lseg_ros.core.model.checkpoint import load_weights
    from lseg_ros.core.model.image_encoder import replace_modules, is_timm_attention
    Fp8SimAttention.mode, Fp8SimAttention.scale = args.mode, args.scale
    Fp8SimAttention.p_shift, Fp8SimAttention.block = args.p_shift, args.block
    original = fidelity.create_backend
    made = []

    def create(name, weights, device, precision, **kw):
        backend = original(name, weights, device, precision, **kw)
        if not made:
            count = replace_modules(backend.model, is_timm_attention, Fp8SimAttention)
            print('replaced', count, 'attention modules', file=sys.stderr)
        made.append(backend)
        return backend

    fidelity.create_backend = create
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',')]
    kw = {}
    if args.precision == 'fp16':
        kw = dict(attention='sdpa', compile_mode=None, cuda_graph=False)
    report = fidelity.run_fidelity(load_weights(args.checkpoint), 'torch', args.precision,
                                   sizes, args.device, frames=args.frames,
                                   thresholds=fidelity.default_thresholds('fp16'), **kw)
    report.pop('heatmaps')
    for s in report['sets']:
        cases = [c for c in report['cases'] if c['size'] == s['size']]
        print(args.mode, args.scale, args.p_shift, s['size'],
              'passed' if s['passed'] else 'FAILED',
              'mean_cos %.6f' % min(c['metrics']['mean_cosine'] for c in cases),
              'agree %.4f' % min(c['metrics']['agreement'] for c in cases),
              'miou %s' % s.get('miou'), flush=True)
    if args.output:
        with open(args.output, 'w') as f:
            json.dump(fidelity.json_report(report) if hasattr(fidelity, 'json_report')
                      else report, f, default=str)


if __name__ == '__main__':
    main()
