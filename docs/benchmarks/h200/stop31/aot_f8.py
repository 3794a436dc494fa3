"""Compile f8k._fp8_kernel ahead of time for sm_90 on a machine without a GPU (Triton 3.6.0).

The static counts in docs/benchmarks.md came from the defaults (tail=32: an FP8 product
needs at least 32 keys, tail=16 does not compile) and the package's kernel compiled the
same way with its last step of 16 keys (aot_pkg.py); cuobjdump -sass gave the counts.
"""
import sys
sys.path.insert(0, '/work/main/.device')
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import f8k

def compile_one(block_m=128, block_n=64, warps=8, stages=3, tail=32, qkfp8=True, tag='f8', promote=0):
    names = ['Q', 'K', 'VT', 'Out', 'QK_SCALE', 'V_SCALE'] + [
        'stride_qb', 'stride_qh', 'stride_qn', 'stride_kb', 'stride_kh', 'stride_kn',
        'stride_vb', 'stride_vh', 'stride_vd', 'stride_ob', 'stride_oh', 'stride_on',
        'heads', 'tokens']
    qt = '*fp8e4nv' if qkfp8 else '*fp16'
    sig = dict(Q=qt, K=qt, VT='*fp8e4nv', Out='*fp16', QK_SCALE='*fp32', V_SCALE='*fp32')
    for n in names[6:]:
        sig[n] = 'i32'
    const = dict(HEAD_DIM=64, BLOCK_M=block_m, BLOCK_N=block_n, TAIL_N=tail, P_SHIFT=8, PROMOTE=promote)
    for c in const:
        sig[c] = 'constexpr'
    keys = list(sig)
    src = ASTSource(f8k._fp8_kernel, sig, constexprs={(keys.index(n),): v for n, v in const.items()}, attrs={})
    kern = triton.compile(src, target=GPUTarget('cuda', 90, 32), options={'num_warps': warps, 'num_stages': stages})
    open(f'/tmp/g/{tag}.ttgir', 'w').write(kern.asm['ttgir'])
    open(f'/tmp/g/{tag}.cubin', 'wb').write(kern.asm['cubin'])
    print(tag, 'regs', getattr(kern, 'n_regs', None), 'spills', getattr(kern, 'n_spills', None), 'shared', kern.metadata.shared)

if __name__ == '__main__':
    compile_one(**(eval(sys.argv[1]) if len(sys.argv) > 1 else {}))
