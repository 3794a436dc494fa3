# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Inference-time graph simplifications (exact in real arithmetic unless said otherwise).

``fold_batchnorm`` folds every eval-mode ``BatchNorm2d`` that directly follows a
``Conv2d`` into that convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and
replaces it by ``nn.Identity``: the decoder's residual units (``convN`` / ``bnN``), and in
the ResNet101 backbone every bottleneck, its downsample and the stem.  Done in float32,
before any conversion to float16.

``fold_projections`` moves each fusion block's 1x1 ``out_conv`` in front of its x2 bilinear
upsampling and merges ``head1`` (the 1x1 projection to the 512-d embedding) into the
last block's: the decoder's final stage then projects 256 -> 512 channels at a quarter
of the resolution and upsamples the result, instead of upsampling, projecting 256 -> 256
and projecting 256 -> 512 at half resolution (30 GFLOP fewer at 480x640, and no
256-channel half-resolution maps in memory).

``patch_embedding_as_matmul`` computes the ViT's patch embedding (a 16x16, stride-16
convolution of the 3-channel image) as one matrix product of the unfolded patches
(:class:`lseg_ros.core.model.image_encoder.PatchEmbed`): on an H200 cuDNN ran that
convolution as one sm80 kernel of 75-92 us at 384x384 / 480x640 (docs/benchmarks.md).

``gelu_into_matmul`` computes each ViT block's ``fc1`` and GELU as one matrix product with
the bias and the GELU in its epilogue (``torch._addmm_activation``, cuBLASLt's
``GELU_BIAS`` epilogue on CUDA) instead of a matrix product and a separate memory-bound
GELU kernel over the 4096-wide hidden tokens.  Not exact on CUDA: that epilogue is the
tanh approximation of GELU (at most 4.7e-4 from the exact GELU, near x = +-2.7); on the
CPU it is the exact GELU.

``reassemble_as_matmul`` computes the ViT's four reassemble stages on the tokens: the
readout projection without concatenating the cls token to every patch token (half the
matrix product's depth, no concatenated copy), the 1x1 convolutions as matrix products,
and the two transposed convolutions whose stride equals their kernel (4x4/4 and 2x2/2) as
matrix products to ``k*k`` outputs per token rearranged into the larger grid, instead of
cuDNN's transposed-convolution (dgrad) kernels and the layout copies around them.
"""

from typing import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _fold_pair(parent: nn.Module, conv_name: str, bn_name: str) -> bool:
    conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
        return False
    if bn.training or not bn.track_running_stats or bn.running_mean is None:
        return False
    setattr(parent, conv_name, fuse_conv_bn_eval(conv.eval(), bn))
    setattr(parent, bn_name, nn.Identity())
    return True


def fold_batchnorm(model: nn.Module) -> int:
    """Fold conv -> BatchNorm pairs of ``model`` (in eval mode) in place; returns the count."""
    count = 0
    for module in list(model.modules()):
        names = [name for name, _ in module.named_children()]
        if isinstance(module, nn.Sequential):
            for first, second in zip(names, names[1:]):
                count += _fold_pair(module, first, second)
            continue
        for name in names:
            if name.startswith('conv') and name[4:].isdigit():
                count += _fold_pair(module, name, 'bn' + name[4:])
    return count


def fold_projections(model: nn.Module) -> int:
    """Project before upsampling in every fusion block; merge ``scratch.head1`` into the last.

    ``model``: an image encoder (``scratch`` with ``refinenet1..4`` and ``head1``), folded
    in place in float32; returns the number of blocks changed.  Exact in real arithmetic:
    a 1x1 convolution with bias commutes with bilinear upsampling (its weights sum to
    one), and two 1x1 convolutions in a row are one.
    """
    scratch = model.scratch
    count = 0
    for index in range(1, 5):
        block = getattr(scratch, f'refinenet{index}')
        if not block.project_first:
            block.project_first = True
            count += 1
    head = scratch.head1
    if isinstance(head, nn.Conv2d):
        last = scratch.refinenet1.out_conv
        w_head = head.weight.detach().double().flatten(1)       # (512, 256)
        w_out = last.weight.detach().double().flatten(1)        # (256, 256)
        merged = nn.Conv2d(last.in_channels, head.out_channels, 1, bias=True)
        merged = merged.to(device=last.weight.device, dtype=last.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_((w_head @ w_out).reshape(merged.weight.shape))
            merged.bias.copy_(w_head @ last.bias.detach().double() + head.bias.detach().double())
        scratch.refinenet1.out_conv = merged
        scratch.head1 = nn.Identity()
    return count


def patch_embedding_as_matmul(model: nn.Module) -> int:
    """Compute every ViT patch embedding of ``model`` as a matrix product; returns the count.

    Exact in real arithmetic (the convolution's stride equals its kernel, so it is a matrix
    product of non-overlapping patches).  The reordered weight is a copy (a buffer outside
    the state_dict: it follows ``.to()`` and ``.half()``, not later changes of the
    convolution's values).
    """
    from lseg_ros.core.model.image_encoder import PatchEmbed
    return _use_matmul(model, PatchEmbed, lambda module: module.matmul_weight is not None)


def reassemble_as_matmul(model: nn.Module) -> int:
    """Compute every ViT reassemble stage of ``model`` on its tokens; returns the count.

    Exact in real arithmetic (see :class:`lseg_ros.core.model.image_encoder.Reassemble`).
    The rearranged transposed-convolution weights are copies (buffers outside the
    state_dict), like :func:`patch_embedding_as_matmul`'s.
    """
    from lseg_ros.core.model.image_encoder import Reassemble
    return _use_matmul(model, Reassemble, lambda module: module.matmul)


def _use_matmul(model: nn.Module, kind: type, done: Callable[[nn.Module], bool]) -> int:
    """Call ``use_matmul()`` on every module of ``kind`` that is not ``done``; the count."""
    modules = [module for module in model.modules()
               if isinstance(module, kind) and not done(module)]
    for module in modules:
        module.use_matmul()
    return len(modules)


class LinearGelu(nn.Module):
    """``gelu(linear(x))`` as one matrix product with bias and GELU in its epilogue."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to (..., in_features) tokens."""
        flat = x.reshape(-1, x.shape[-1])
        out = torch._addmm_activation(self.bias, flat, self.weight.t(), use_gelu=True)
        return out.reshape(x.shape[:-1] + (self.weight.shape[0],))


def gelu_into_matmul(model: nn.Module) -> int:
    """Merge every timm ``Mlp``'s ``fc1`` and exact GELU into :class:`LinearGelu`; the count."""
    count = 0
    for module in list(model.modules()):
        fc1, act = getattr(module, 'fc1', None), getattr(module, 'act', None)
        if isinstance(fc1, nn.Linear) and fc1.bias is not None and isinstance(act, nn.GELU) \
                and act.approximate == 'none':
            module.fc1, module.act = LinearGelu(fc1), nn.Identity()
            count += 1
    return count
