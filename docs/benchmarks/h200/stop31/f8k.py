"""Session 31 probe: the package's attention kernel with FP8 (e4m3) matrix products.

QK_FP8: q kᵀ from e4m3 q and k (per image-and-head scales folded into the score scale);
else float16 q and k as the package's kernel.  The value product always takes e4m3
probabilities (scaled by 2**P_SHIFT before rounding) and e4m3 values, read transposed
(B, H, D, N), the layout Hopper's FP8 wgmma needs for its second operand; the values'
scale and 2**-P_SHIFT are applied with the final division.
"""
import math
import os

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
E4M3_MAX = 448.0


@triton.jit
def _step(qk, vt, m_i, l_i, acc, scale_row, P_SHIFT: tl.constexpr, PROMOTE: tl.constexpr):
    m_ij = tl.maximum(m_i, tl.max(qk, 1) * scale_row)
    p = tl.math.exp2(qk * scale_row - m_ij[:, None])
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    p8 = (p * (2.0 ** P_SHIFT)).to(tl.float8e4nv)
    if PROMOTE > 0:   # the tensor cores' sums added to the float32 sums every PROMOTE terms
        acc = tl.dot(p8, vt, acc * alpha[:, None], max_num_imprecise_acc=PROMOTE)
    else:
        acc = tl.dot(p8, vt, acc * alpha[:, None])
    return m_ij, l_i, acc


@triton.jit
def _fp8_kernel(Q, K, VT, Out, QK_SCALE, V_SCALE, stride_qb, stride_qh, stride_qn,
                stride_kb, stride_kh, stride_kn, stride_vb, stride_vh, stride_vd,
                stride_ob, stride_oh, stride_on, heads, tokens,
                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                TAIL_N: tl.constexpr, P_SHIFT: tl.constexpr,
                PROMOTE: tl.constexpr = 0):
    start_m = tl.program_id(0)
    image_head = tl.program_id(1)
    image = image_head // heads
    head = image_head % heads
    qk_scale = tl.load(QK_SCALE + image_head)
    v_scale = tl.load(V_SCALE + image_head)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n0 = tl.arange(0, BLOCK_N)
    q = tl.load(Q + image * stride_qb + head * stride_qh + offs_m[:, None] * stride_qn
                + offs_d[None, :], mask=offs_m[:, None] < tokens, other=0.0)
    k_base = K + image * stride_kb + head * stride_kh
    v_base = VT + image * stride_vb + head * stride_vh
    m_i = tl.full([BLOCK_M], float('-inf'), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    full = (tokens // BLOCK_N) * BLOCK_N
    for start_n in range(0, full, BLOCK_N):
        offs_n = start_n + offs_n0
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None])
        vt = tl.load(v_base + offs_n[:, None] + offs_d[None, :] * stride_vd)
        m_i, l_i, acc = _step(tl.dot(q, k), vt, m_i, l_i, acc, qk_scale, P_SHIFT, PROMOTE)
    if full < tokens:
        offs_n = full + tl.arange(0, TAIL_N)
        k = tl.load(k_base + offs_n[None, :] * stride_kn + offs_d[:, None],
                    mask=offs_n[None, :] < tokens, other=0.0)
        vt = tl.load(v_base + offs_n[:, None] + offs_d[None, :] * stride_vd,
                     mask=offs_n[:, None] < tokens, other=0.0)
        qk = tl.where(offs_n[None, :] < tokens, tl.dot(q, k), float('-inf'))
        m_i, l_i, acc = _step(qk, vt, m_i, l_i, acc, qk_scale, P_SHIFT, PROMOTE)
    acc = acc * (v_scale * (2.0 ** -P_SHIFT)) / l_i[:, None]
    tl.store(Out + image * stride_ob + head * stride_oh + offs_m[:, None] * stride_on
             + offs_d[None, :], acc.to(Out.dtype.element_ty), mask=offs_m[:, None] < tokens)


def _amax_scale(t):
    """Per image-and-head scale (amax / 448), float32 (B, H)."""
    return (t.abs().amax(dim=(2, 3)).float() / E4M3_MAX).clamp_min(1e-12)


def quantise(q, k, v, qk_fp8=True):
    """Return q8, k8, vt8 (V transposed), qk scale (log2 units) and v scale, per (B*H)."""
    b, h, n, d = q.shape
    sv = _amax_scale(v)
    vt8 = (v / sv[:, :, None, None]).to(torch.float8_e4m3fn).transpose(2, 3).contiguous()
    base = LOG2E / math.sqrt(d)
    if qk_fp8:
        sq, sk = _amax_scale(q), _amax_scale(k)
        q8 = (q / sq[:, :, None, None]).to(torch.float8_e4m3fn)
        k8 = (k / sk[:, :, None, None]).to(torch.float8_e4m3fn)
        qk_scale = (sq * sk * base).reshape(-1)
    else:
        q8, k8 = q, k
        qk_scale = torch.full((b * h,), base, device=q.device, dtype=torch.float32)
    return q8, k8, vt8, qk_scale.contiguous(), sv.reshape(-1).contiguous()


def tail_block(tokens, block_n):
    rest = tokens % block_n
    return min(block_n, max(32, 1 << max(0, rest - 1).bit_length()))


def run_quantised(q8, k8, vt8, qk_scale, v_scale, out_dtype=torch.float16,
                  block_m=128, block_n=64, warps=8, stages=3, p_shift=8, promote=0):
    images, heads, tokens, head_dim = q8.shape
    out = torch.empty((images, tokens, heads, head_dim), device=q8.device, dtype=out_dtype)
    grid = (triton.cdiv(tokens, block_m), images * heads)
    _fp8_kernel[grid](q8, k8, vt8, out, qk_scale, v_scale, q8.stride(0), q8.stride(1),
                      q8.stride(2), k8.stride(0), k8.stride(1), k8.stride(2),
                      vt8.stride(0), vt8.stride(1), vt8.stride(2),
                      out.stride(0), out.stride(2), out.stride(1), heads, tokens,
                      HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
                      TAIL_N=tail_block(tokens, block_n), P_SHIFT=p_shift, PROMOTE=promote,
                      num_warps=warps, num_stages=stages)
    return out


def fp8_attention(q, k, v, qk_fp8=True, **tiling):
    """(B, H, N, D) float16 q, k, v -> (B, N, H, D), FP8 products."""
    return run_quantised(*quantise(q, k, v, qk_fp8), out_dtype=q.dtype, **tiling)


#: (images, tokens) -> tiling kwargs for the model's calls (set by the probe from its timings)
TILINGS = {}
DEFAULT_TILING = dict(block_m=128, block_n=64, warps=8, stages=3,
                      promote=int(os.environ.get('F8_PROMOTE', '0')))


@torch.library.custom_op('lsegprobe::fp8_attention', mutates_args=())
def fp8_op(q8: torch.Tensor, k8: torch.Tensor, vt8: torch.Tensor, qk_scale: torch.Tensor,
           v_scale: torch.Tensor) -> torch.Tensor:
    tiling = TILINGS.get((q8.shape[0], q8.shape[2]), DEFAULT_TILING)
    return run_quantised(q8, k8, vt8, qk_scale, v_scale, torch.float16, **tiling)


@fp8_op.register_fake
def _fp8_op_shape(q8, k8, vt8, qk_scale, v_scale):
    b, h, n, d = q8.shape
    return q8.new_empty((b, n, h, d), dtype=torch.float16)


def fp8_attention_class(qk_fp8=True):
    from lseg_ros.core.model.flash_attention import TritonAttention

    class Fp8Attention(TritonAttention):
        def forward(self, x, attn_mask=None, is_causal=False):
            b, n, c = x.shape
            q, k, v = self.heads(x)
            return self.proj(fp8_op(*quantise(q, k, v, qk_fp8)).reshape(b, n, c))

    return Fp8Attention


def swap_attention(model, qk_fp8=True):
    """Make the model's TritonAttention modules compute with FP8 products; returns the count."""
    from lseg_ros.core.model.flash_attention import TritonAttention
    cls = fp8_attention_class(qk_fp8)
    count = 0
    for m in model.modules():
        if type(m) is TritonAttention:
            m.__class__ = cls
            count += 1
    return count
