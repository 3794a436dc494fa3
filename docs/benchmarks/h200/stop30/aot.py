"""Session 30: compile gfa.attention_kernel ahead of time for sm_90 (Triton 3.6, no GPU).

python aot.py "dict(stages=3, tag='c3')" -> /tmp/g/c3.cubin, .ptx, .ttgir
"""
import sys, itertools
sys.path.insert(0, '/work/main/.device')
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.experimental.gluon._runtime import GluonASTSource
from triton.runtime.jit import mangle_type
from triton.experimental.gluon import language as gl
import gfa

def compile_one(block_n=128, stages=2, consumers=3, pingpong=False, creg=160, lreg=24, maxnreg=None, tag='k', flag='PINGPONG'):
    B, H, N, D = 1, 16, 1201, 64
    qkv = torch.empty(B, N, 3, H, D, dtype=torch.float16)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = torch.empty(B, N, H, D, dtype=torch.float16)
    descs = gfa.descriptors(q, k, v, out, block_n)
    names = ['desc_q', 'desc_k', 'desc_v', 'desc_o', 'qk_scale', 'heads', 'tokens']
    sig = {n: mangle_type(d) for n, d in zip(names, descs)}
    sig.update(qk_scale='fp32', heads='i32', tokens='i32')
    const = dict(HEAD_DIM=D, BLOCK_N=block_n, STAGES=stages, CONSUMERS=consumers, **{flag: pingpong},
                 CONSUMER_REGS=creg, LOADER_REGS=lreg)
    for c in const: sig[c] = 'constexpr'
    keys = list(sig)
    src = GluonASTSource(gfa.attention_kernel, sig, constexprs={(keys.index(n),): v for n, v in const.items()}, attrs={})
    opts = {'num_warps': 4}
    if maxnreg: opts['maxnreg'] = maxnreg
    kern = triton.compile(src, target=GPUTarget('cuda', 90, 32), options=opts)
    open(f'/tmp/g/{tag}.cubin', 'wb').write(kern.asm['cubin'])
    open(f'/tmp/g/{tag}.ptx', 'w').write(kern.asm['ptx'])
    open(f'/tmp/g/{tag}.ttgir', 'w').write(kern.asm['ttgir'])
    md = kern.metadata
    print(tag, 'regs', kern.n_regs if hasattr(kern,'n_regs') else None, 'spills', getattr(kern, 'n_spills', None), 'shared', md.shared, 'warps', md.num_warps)
    return kern

if __name__ == '__main__':
    import ast
    kw = eval(sys.argv[1]) if len(sys.argv) > 1 else {}
    compile_one(**kw)
