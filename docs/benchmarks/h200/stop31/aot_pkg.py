import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from lseg_ros.core.model import flash_attention as fa
names = ['Q', 'K', 'V', 'Out', 'qk_scale'] + ['stride_qb', 'stride_qh', 'stride_qn', 'stride_kb', 'stride_kh', 'stride_kn', 'stride_vb', 'stride_vh', 'stride_vn', 'stride_ob', 'stride_oh', 'stride_on', 'heads', 'tokens']
sig = dict(Q='*fp16', K='*fp16', V='*fp16', Out='*fp16', qk_scale='fp32')
for n in names[5:]: sig[n] = 'i32'
const = dict(HEAD_DIM=64, BLOCK_M=128, BLOCK_N=64, TAIL_N=16)
for c in const: sig[c] = 'constexpr'
keys = list(sig)
src = ASTSource(fa._attention_kernel, sig, constexprs={(keys.index(n),): v for n, v in const.items()}, attrs={})
k = triton.compile(src, target=GPUTarget('cuda', 90, 32), options={'num_warps': 8, 'num_stages': 3})
open('/tmp/g/pkg.cubin', 'wb').write(k.asm['cubin'])
