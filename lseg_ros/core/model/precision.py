# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Float16 versions of the image encoder with the numerically sensitive parts in float32.

Used by the torch backend (fp16 + CUDA graph) and by the fp16 ONNX export.
"""

import torch
from torch import nn
import torch.nn.functional as F

from lseg_ros.core.model.image_encoder import AttentionLayers, is_timm_attention, replace_modules


class Fp32LayerNorm(nn.Module):
    """LayerNorm computed in float32 for a float16 network (explicit casts in the graph)."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.normalized_shape = tuple(norm.normalized_shape)
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.detach().float(), requires_grad=False)
        self.bias = nn.Parameter(norm.bias.detach().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise in float32 and return the input's dtype."""
        return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias,
                            self.eps).to(x.dtype)

    def _apply(self, fn, recurse=True):
        # Keep the parameters float32 when the network is converted with .half()/.to().
        super()._apply(fn, recurse)
        self.weight.data = self.weight.data.float()
        self.bias.data = self.bias.data.float()
        return self


class Fp32SoftmaxAttention(AttentionLayers):
    """timm ViT attention with an explicit float32 softmax (q·kᵀ and ·v stay in float16).

    Reuses the ``qkv`` and ``proj`` layers of a timm ``Attention``; used only for the fp16
    ONNX export (the fp16 torch backend keeps fused attention kernels, which already
    accumulate the softmax in float32).
    """

    def __init__(self, attention: nn.Module):
        super().__init__(attention)
        self.scale = self.head_dim ** -0.5

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Self-attention of (B, N, C) tokens."""
        b, n, c = x.shape
        q, k, v = self.heads(x)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.float().softmax(dim=-1).to(v.dtype)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


def keep_layernorm_fp32(model: nn.Module) -> int:
    """Replace every ``nn.LayerNorm`` of ``model`` by :class:`Fp32LayerNorm`; returns the count."""
    return replace_modules(model, lambda module: isinstance(module, nn.LayerNorm),
                           Fp32LayerNorm)


def keep_softmax_fp32(model: nn.Module) -> int:
    """Replace timm ViT attention modules by :class:`Fp32SoftmaxAttention`; returns the count."""
    return replace_modules(model, is_timm_attention, Fp32SoftmaxAttention)


def half_encoder(weights, device='cpu', softmax_fp32: bool = False,
                 layernorm_fp32: bool = True, fold_bn: bool = False,
                 fold_projections: bool = False) -> nn.Module:
    """Return the image encoder in float16.

    ``layernorm_fp32``: LayerNorm with explicit float32 casts (:class:`Fp32LayerNorm`);
    otherwise PyTorch's float16 LayerNorm, whose kernel accumulates its statistics in
    float32 but keeps float16 weights and output.  ``softmax_fp32``: explicit float32
    softmax in attention (ONNX export).  ``fold_bn``: BatchNorm folded into the
    convolutions in float32 first (:func:`lseg_ros.core.model.fusion.fold_batchnorm`).
    ``fold_projections``: the decoder's 1x1 projections before its upsampling, merged in
    float32 first (:func:`lseg_ros.core.model.fusion.fold_projections`).
    """
    from lseg_ros.core.model.checkpoint import build_image_encoder

    model = build_image_encoder(weights, 'cpu', dtype=torch.float32)
    if fold_bn:
        from lseg_ros.core.model.fusion import fold_batchnorm
        fold_batchnorm(model)
    if fold_projections:
        from lseg_ros.core.model.fusion import fold_projections as fold
        fold(model)
    if layernorm_fp32:
        keep_layernorm_fp32(model)
    if softmax_fp32:
        keep_softmax_fp32(model)
    return model.half().to(device).eval().requires_grad_(False)
