"""Probe: FlashAttention-3-style attention in Gluon for Hopper (warp-specialised).

One program per (tile of CONSUMERS x 64 queries, image x head). A one-warp loader
partition issues TMA loads of q (once) and of k / v blocks of BLOCK_N keys into a ring of
STAGES buffers; CONSUMERS warpgroups (the default partition and CONSUMERS-1 workers) each
own 64 queries: scores by an asynchronous wgmma, online softmax in float32, and the value
product by a wgmma with the probabilities in registers.  The scores of block j are issued
before the value product of block j-1, and the softmax of j runs under that product
(FlashAttention-3's intra-warpgroup overlap); PINGPONG: the consumers issue their products
in turn.  (Session 30, calls 2 and 3; call 1's version: gfa_call1.diff.  This docstring
was rewritten after the calls; the code is as it ran.)
"""

import math
import os

import torch
import triton
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import fence_async_shared, mbarrier, \
    tma, warpgroup_mma, warpgroup_mma_wait
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

LOG2E = 1.4426950408889634
#: Diagnostics only (session 30 call 3): 0 exponentials; 1 none (p = the scaled score minus
#: the maximum, wrong results: the time without the exponentials); 2 no value product.
EXP_MODE = gl.constexpr(int(os.environ.get('GFA_EXP_MODE', '0')))


@gluon.jit
def _loader(desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty,
            image, column, m0, blocks):
    CONSUMERS: gl.constexpr = q_bufs.type.shape[0]
    STAGES: gl.constexpr = k_bufs.type.shape[0]
    BLOCK_N: gl.constexpr = k_bufs.type.shape[2]
    mbarrier.expect(q_bar, CONSUMERS * desc_q.block_type.nbytes)
    for c in gl.static_range(CONSUMERS):
        tma.async_copy_global_to_shared(desc_q, [image, m0 + c * 64, column], q_bar,
                                        q_bufs.index(c))
    for j in range(blocks):
        s = j % STAGES
        phase = (j // STAGES) & 1
        mbarrier.wait(kv_empty.index(s), phase ^ 1)
        mbarrier.expect(k_ready.index(s), desc_k.block_type.nbytes)
        tma.async_copy_global_to_shared(desc_k, [image, j * BLOCK_N, column], k_ready.index(s),
                                        k_bufs.index(s))
        mbarrier.expect(v_ready.index(s), desc_v.block_type.nbytes)
        tma.async_copy_global_to_shared(desc_v, [image, j * BLOCK_N, column], v_ready.index(s),
                                        v_bufs.index(s))


@gluon.jit
def _row_max(qk, m_i, qk_scale, limit, MASK: gl.constexpr, BLOCK_N: gl.constexpr,
             s_layout: gl.constexpr):
    if MASK:
        cols = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
        qk = gl.where(cols[None, :] < limit, qk, float('-inf'))
    m_ij = gl.maximum(m_i, gl.max(qk, 1) * qk_scale)
    return qk, m_ij


@gluon.jit
def _step(j, blocks, q, k_bufs, v_bufs, k_ready, v_ready, kv_empty, turn, c, p16, acc, m_i,
          l_i, qk_scale, limit, zero, MASK: gl.constexpr, PINGPONG: gl.constexpr):
    """Scores of block j under the value product of block j-1, then the softmax of j.

    Block j's keys were waited for by the step before.
    """
    STAGES: gl.constexpr = k_bufs.type.shape[0]
    BLOCK_N: gl.constexpr = k_bufs.type.shape[2]
    HEAD_DIM: gl.constexpr = k_bufs.type.shape[3]
    CONSUMERS: gl.constexpr = turn.type.shape[0]
    s_layout: gl.constexpr = zero.type.layout
    o_layout: gl.constexpr = acc.type.layout
    p_layout: gl.constexpr = p16.type.layout
    s = j % STAGES
    sp = (j - 1) % STAGES
    if PINGPONG:
        # the consumers issue their products in turn (FlashAttention-3's ping-pong)
        mbarrier.wait(turn.index(c), (j & 1) ^ (0 if c == 0 else 1))
    qk = warpgroup_mma(q, k_bufs.index(s).reshape([BLOCK_N, HEAD_DIM]).permute((1, 0)), zero,
                       use_acc=False, is_async=True)
    mbarrier.wait(v_ready.index(sp), ((j - 1) // STAGES) & 1)
    if EXP_MODE != 2:
        acc = warpgroup_mma(p16, v_bufs.index(sp).reshape([BLOCK_N, HEAD_DIM]), acc,
                            is_async=True)
    if PINGPONG:
        mbarrier.arrive(turn.index((c + 1) % CONSUMERS))
    qk = warpgroup_mma_wait(1, deps=(qk,))
    qk, m_ij = _row_max(qk, m_i, qk_scale, limit, MASK, BLOCK_N, s_layout)
    if EXP_MODE == 1:
        p = qk * qk_scale - m_ij[:, None]
    else:
        p = gl.exp2(qk * qk_scale - m_ij[:, None])
    alpha = gl.exp2(m_i - m_ij)
    # the next block's keys: waiting here (a branch) keeps the exponentials above the wait
    # for the value product below (else ptxas hoists that wait over them)
    mbarrier.wait(k_ready.index((j + 1) % STAGES), ((j + 1) // STAGES) & 1, pred=j + 1 < blocks)
    acc, p16, p = warpgroup_mma_wait(0, deps=(acc, p16, p))
    mbarrier.arrive(kv_empty.index(sp))
    l_i = l_i * alpha + gl.sum(p, 1)
    acc = acc * gl.convert_layout(alpha, gl.SliceLayout(1, o_layout))[:, None]
    p16 = gl.convert_layout(p.to(gl.float16), p_layout)
    return p16, acc, m_ij, l_i


@gluon.jit
def _consumer_body(c, desc_o, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty, turn,
                   image, column, m0, tokens, qk_scale, PINGPONG: gl.constexpr):
    STAGES: gl.constexpr = k_bufs.type.shape[0]
    BLOCK_N: gl.constexpr = k_bufs.type.shape[2]
    HEAD_DIM: gl.constexpr = k_bufs.type.shape[3]
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)
    full = tokens // BLOCK_N
    rest = tokens - full * BLOCK_N
    q_buf = q_bufs.index(c)
    q = q_buf.reshape([64, HEAD_DIM])
    zero = gl.zeros([64, BLOCK_N], gl.float32, s_layout)
    acc = gl.zeros([64, HEAD_DIM], gl.float32, o_layout)
    m_i = gl.full([64], float('-inf'), gl.float32, gl.SliceLayout(1, s_layout))
    mbarrier.wait(q_bar, 0)
    # block 0: scores and softmax only (tokens >= BLOCK_N)
    mbarrier.wait(k_ready.index(0), 0)
    qk = warpgroup_mma(q, k_bufs.index(0).reshape([BLOCK_N, HEAD_DIM]).permute((1, 0)), zero,
                       use_acc=False, is_async=True)
    qk = warpgroup_mma_wait(0, deps=(qk,))
    qk, m_i = _row_max(qk, m_i, qk_scale, tokens, False, BLOCK_N, s_layout)
    p = gl.exp2(qk * qk_scale - m_i[:, None])
    l_i = gl.sum(p, 1)
    p16 = gl.convert_layout(p.to(gl.float16), p_layout)
    blocks = full + (rest > 0).to(gl.int32)
    mbarrier.wait(k_ready.index(1 % STAGES), (1 // STAGES) & 1, pred=blocks > 1)
    for j in range(1, full):
        p16, acc, m_i, l_i = _step(j, blocks, q, k_bufs, v_bufs, k_ready, v_ready, kv_empty, turn, c,
                                   p16, acc, m_i, l_i, qk_scale, tokens, zero, False, PINGPONG)
    last = full - 1
    if rest > 0:
        p16, acc, m_i, l_i = _step(full, blocks, q, k_bufs, v_bufs, k_ready, v_ready, kv_empty, turn, c,
                                   p16, acc, m_i, l_i, qk_scale, rest, zero, True, PINGPONG)
        last = full
    s = last % STAGES
    mbarrier.wait(v_ready.index(s), (last // STAGES) & 1)
    acc = warpgroup_mma(p16, v_bufs.index(s).reshape([BLOCK_N, HEAD_DIM]), acc, is_async=True)
    acc = warpgroup_mma_wait(0, deps=(acc,))
    mbarrier.arrive(kv_empty.index(s))
    acc = acc / gl.convert_layout(l_i, row_o)[:, None]
    q_buf.reshape([64, HEAD_DIM]).store(acc.to(gl.float16))
    fence_async_shared()
    tma.async_copy_shared_to_global(desc_o, [image, m0 + c * 64, column], q_buf)
    tma.store_wait(0)


@gluon.jit
def _consumer_pingpong(c, desc_o, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty,
                       turn, image, column, m0, tokens, qk_scale):
    _consumer_body(c, desc_o, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty, turn,
                   image, column, m0, tokens, qk_scale, True)


@gluon.jit
def _consumer_free(c, desc_o, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty, turn,
                   image, column, m0, tokens, qk_scale):
    _consumer_body(c, desc_o, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty, turn,
                   image, column, m0, tokens, qk_scale, False)


@gluon.jit
def attention_kernel(desc_q, desc_k, desc_v, desc_o, qk_scale, heads, tokens,
                     HEAD_DIM: gl.constexpr, BLOCK_N: gl.constexpr, STAGES: gl.constexpr,
                     CONSUMERS: gl.constexpr, PINGPONG: gl.constexpr, CONSUMER_REGS: gl.constexpr,
                     LOADER_REGS: gl.constexpr):
    m0 = gl.program_id(0) * (CONSUMERS * 64)
    image_head = gl.program_id(1)
    image = image_head // heads
    column = (image_head % heads) * HEAD_DIM
    blocks = gl.cdiv(tokens, BLOCK_N)
    q_bufs = gl.allocate_shared_memory(gl.float16, [CONSUMERS] + desc_q.block_type.shape,
                                       desc_q.layout)
    k_bufs = gl.allocate_shared_memory(gl.float16, [STAGES] + desc_k.block_type.shape,
                                       desc_k.layout)
    v_bufs = gl.allocate_shared_memory(gl.float16, [STAGES] + desc_v.block_type.shape,
                                       desc_v.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [CONSUMERS, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(CONSUMERS):
        mbarrier.init(turn.index(i), count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(kv_empty.index(i), count=CONSUMERS)
    consumer_args = (desc_o, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready, kv_empty, turn,
                     image, column, m0, tokens, qk_scale)
    loader_args = (desc_q, desc_k, desc_v, q_bufs, k_bufs, v_bufs, q_bar, k_ready, v_ready,
                   kv_empty, image, column, m0, blocks)
    if PINGPONG:
        if CONSUMERS == 1:
            gl.warp_specialize([(_consumer_pingpong, (0,) + consumer_args), (_loader, loader_args)],
                               [1], [LOADER_REGS])
        elif CONSUMERS == 2:
            gl.warp_specialize([(_consumer_pingpong, (0,) + consumer_args),
                                (_consumer_pingpong, (1,) + consumer_args),
                                (_loader, loader_args)], [4, 1], [CONSUMER_REGS, LOADER_REGS])
        else:
            gl.warp_specialize([(_consumer_pingpong, (0,) + consumer_args),
                                (_consumer_pingpong, (1,) + consumer_args),
                                (_consumer_pingpong, (2,) + consumer_args),
                                (_loader, loader_args)], [4, 4, 1],
                               [CONSUMER_REGS, CONSUMER_REGS, LOADER_REGS])
    else:
        if CONSUMERS == 1:
            gl.warp_specialize([(_consumer_free, (0,) + consumer_args), (_loader, loader_args)],
                               [1], [LOADER_REGS])
        elif CONSUMERS == 2:
            gl.warp_specialize([(_consumer_free, (0,) + consumer_args),
                                (_consumer_free, (1,) + consumer_args),
                                (_loader, loader_args)], [4, 1], [CONSUMER_REGS, LOADER_REGS])
        else:
            gl.warp_specialize([(_consumer_free, (0,) + consumer_args),
                                (_consumer_free, (1,) + consumer_args),
                                (_consumer_free, (2,) + consumer_args),
                                (_loader, loader_args)], [4, 4, 1],
                               [CONSUMER_REGS, CONSUMER_REGS, LOADER_REGS])

def descriptors(q, k, v, out, block_n, consumers=None):
    """3-D descriptors (images, tokens, heads x dim) over the (B, H, N, D) views."""
    images, heads, tokens, head_dim = q.shape
    layout = gl.NVMMASharedLayout.get_default_for([1, 64, head_dim], gl.float16)
    kv_layout = gl.NVMMASharedLayout.get_default_for([1, block_n, head_dim], gl.float16)

    def view(t, block, lay):
        assert t.stride(1) == head_dim and t.stride(3) == 1, t.stride()
        return TensorDescriptor(t, [images, tokens, heads * head_dim],
                                [t.stride(0), t.stride(2), 1], block, lay)
    return (view(q, [1, 64, head_dim], layout), view(k, [1, block_n, head_dim], kv_layout),
            view(v, [1, block_n, head_dim], kv_layout),
            TensorDescriptor(out, [images, tokens, heads * head_dim],
                             [tokens * heads * head_dim, heads * head_dim, 1],
                             [1, 64, head_dim], layout))


def run(q, k, v, block_n=128, stages=2, consumers=3, pingpong=False, consumer_regs=160,
        loader_regs=24, maxnreg=None):
    """(B, H, N, D) q, k, v views of a qkv output -> (B, N, H, D)."""
    images, heads, tokens, head_dim = q.shape
    assert stages >= 3 and tokens >= block_n, (stages, tokens, block_n)
    out = torch.empty((images, tokens, heads, head_dim), device=q.device, dtype=q.dtype)
    descs = descriptors(q, k, v, out, block_n)
    grid = (triton.cdiv(tokens, 64 * consumers), images * heads)
    kwargs = {'num_warps': 4}
    if maxnreg:
        kwargs['maxnreg'] = maxnreg
    attention_kernel[grid](*descs, LOG2E / math.sqrt(head_dim), heads, tokens, head_dim,
                           block_n, stages, consumers, pingpong, consumer_regs, loader_regs,
                           **kwargs)
    return out
