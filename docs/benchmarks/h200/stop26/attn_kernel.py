"""Session 26 probe: the tilings tried and a launcher for the Triton attention kernel.

Call 1 ran its own copy of the kernel; that kernel is now
``lseg_ros.core.model.flash_attention._attention_kernel`` (only names changed: ``O`` ->
``Out``, ``H`` -> ``heads``, ``N_CTX`` -> ``tokens``), which this file imports.
"""
import triton

from lseg_ros.core.model.flash_attention import _attention_kernel, LOG2E, run_kernel

CONFIGS = [
    triton.Config({'BLOCK_M': bm, 'BLOCK_N': bn}, num_warps=w, num_stages=s)
    for bm in (64, 128) for bn in (64, 128) for w in (4, 8) for s in (2, 3, 4)
    if not (bm == 64 and w == 8)
]


def attention(q, k, v, config=None):
    """q, k, v: (B, H, N, D) with unit last stride; returns (B, N, H, D); config: a tiling."""
    if config is None:
        return run_kernel(q, k, v)
    out = q.new_empty((q.shape[0], q.shape[2], q.shape[1], q.shape[3]))
    bm, bn, w, s = config
    _attention_kernel[(triton.cdiv(q.shape[2], bm), q.shape[0] * q.shape[1])](
        q, k, v, out, LOG2E / q.shape[3] ** 0.5, q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(2), out.stride(1), q.shape[1], q.shape[2],
        HEAD_DIM=q.shape[3], BLOCK_M=bm, BLOCK_N=bn, num_warps=w, num_stages=s)
    return out
