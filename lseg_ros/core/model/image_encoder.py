# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LSeg image encoders (ViT-L/16 and ResNet101) with the official module names.

The state_dict keys of :class:`LsegImageEncoder` are exactly the official checkpoint keys
(without ``net.``) of the groups the image encoder uses.  The code is export-friendly
(lseg_spec.md §7): the four ViT block outputs are returned explicitly (no forward hooks),
the token grid is reshaped with ``reshape`` (no run-time ``nn.Unflatten``) and nothing
depends on global state.
"""

from functools import partial
from typing import Callable

from timm.models.vision_transformer import Block
import torch
from torch import nn
import torch.nn.functional as F
import torchvision

from lseg_ros.core.model.decoder import Scratch
from lseg_ros.core.model.variants import Variant

VIT_DIM = 1024
VIT_DEPTH = 24
VIT_HEADS = 16
VIT_PATCH = 16
VIT_GRID = 24          # pos_embed grid of the 384x384 timm model
VIT_TAPS = (5, 11, 17, 23)


class PatchEmbed(nn.Module):
    """Holds ``patch_embed.proj`` (16x16/16 conv); maps an image to its patch tokens.

    With ``matmul_weight`` set (:func:`lseg_ros.core.model.fusion.patch_embedding_as_matmul`)
    it computes the same function as one matrix product of the unfolded 16x16 patches (in
    height, width, channel order: the channels-last layout) with the convolution's weight in
    that order, instead of a convolution of a 3-channel input, which cuDNN runs as one slow
    kernel.
    """

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, VIT_DIM, VIT_PATCH, stride=VIT_PATCH)
        self.register_buffer('matmul_weight', None, persistent=False)

    def use_matmul(self) -> None:
        """Compute the embedding as a matrix product from now on (weight copied once)."""
        weight = self.proj.weight.detach().permute(0, 2, 3, 1).reshape(VIT_DIM, -1)
        self.matmul_weight = weight.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (B, 3, H, W) image to (B, (H//16)*(W//16), C) tokens (row-major grid)."""
        if self.matmul_weight is None:
            return self.proj(x).flatten(2).transpose(1, 2)
        b, c, h, w = x.shape
        gh, gw = h // VIT_PATCH, w // VIT_PATCH
        patches = x[:, :, :gh * VIT_PATCH, :gw * VIT_PATCH].permute(0, 2, 3, 1)
        patches = patches.reshape(b, gh, VIT_PATCH, gw, VIT_PATCH, c).transpose(2, 3)
        patches = patches.reshape(b, gh * gw, VIT_PATCH * VIT_PATCH * c)
        return F.linear(patches, self.matmul_weight, self.proj.bias)


def replace_modules(model: nn.Module, wanted: Callable[[nn.Module], bool],
                    make: Callable[[nn.Module], nn.Module]) -> int:
    """Replace every submodule ``m`` of ``model`` with ``wanted(m)`` by ``make(m)``.

    Returns the count; the replacements are not searched further.
    """
    count = 0
    for name, child in list(model.named_children()):
        if wanted(child):
            setattr(model, name, make(child))
            count += 1
        else:
            count += replace_modules(child, wanted, make)
    return count


def is_timm_attention(module: nn.Module) -> bool:
    """Whether ``module`` is a timm ViT ``Attention`` (``qkv``, ``proj``, ``num_heads``)."""
    return type(module).__name__ == 'Attention' and hasattr(module, 'qkv') \
        and hasattr(module, 'proj') and hasattr(module, 'num_heads')


class AttentionLayers(nn.Module):
    """The ``qkv`` and ``proj`` layers of a timm ``Attention``, for the modules replacing it.

    Subclasses compute softmax(q kᵀ / sqrt(d)) v their own way; the state_dict keys stay
    timm's (``qkv.*``, ``proj.*``).
    """

    def __init__(self, attention: nn.Module):
        super().__init__()
        self.qkv = attention.qkv
        self.proj = attention.proj
        self.num_heads = attention.num_heads
        self.head_dim = attention.qkv.out_features // (3 * attention.num_heads)

    def heads(self, x: torch.Tensor):
        """Return q, k and v, (B, heads, N, head_dim) strided views of ``qkv(x)``."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)


class VitTrunk(nn.Module):
    """timm ``vit_large_patch16_384`` without its final norm and classifier (unused by LSeg)."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, VIT_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, VIT_GRID * VIT_GRID + 1, VIT_DIM))
        self.patch_embed = PatchEmbed()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(VIT_DIM, VIT_HEADS, mlp_ratio=4.0, qkv_bias=True, norm_layer=norm)
            for _ in range(VIT_DEPTH))

    def resized_pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        """Position embedding for a gh x gw token grid (official ``_resize_pos_embed``)."""
        cls_pos = self.pos_embed[:, :1]
        grid = self.pos_embed[:, 1:].reshape(1, VIT_GRID, VIT_GRID, VIT_DIM).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode='bilinear', align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, VIT_DIM)
        return torch.cat([cls_pos, grid], dim=1)

    def forward(self, x: torch.Tensor):
        """Return the tokens after blocks 5, 11, 17 and 23 (cls token included)."""
        b, _, h, w = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + self.resized_pos_embed(h // VIT_PATCH, w // VIT_PATCH)
        taps = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in VIT_TAPS:
                taps.append(tokens)
        return taps


class ProjectReadout(nn.Module):
    """DPT ``readout='project'``: concatenate the cls token to every patch token, project.

    With ``split`` set (:meth:`use_split`) it computes the same function without the
    concatenation: the projection of the concatenated token is the patch token's product
    with the first half of the weight plus the cls token's product with the second half,
    and that second product (with the bias) is one row per image.
    """

    def __init__(self):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * VIT_DIM, VIT_DIM), nn.GELU())
        self.split = False

    def use_split(self) -> None:
        """Project patch and cls tokens separately from now on (no copy of the weight)."""
        self.split = True

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map (B, 1+N, C) tokens to (B, N, C)."""
        patches = tokens[:, 1:]
        linear, act = self.project[0], self.project[1]
        if self.split:
            readout = F.linear(tokens[:, :1], linear.weight[:, VIT_DIM:], linear.bias)
            return act(F.linear(patches, linear.weight[:, :VIT_DIM]) + readout)
        readout = tokens[:, :1].expand_as(patches)
        return self.project(torch.cat([patches, readout], dim=-1))


def unpatchify(tokens: torch.Tensor, gh: int, gw: int, k: int) -> torch.Tensor:
    """(B, gh*gw, k*k*C) tokens in (row, column, channel) order -> (B, C, k*gh, k*gw).

    The result is in the channels-last layout (a view of one copy of the tokens).
    """
    b = tokens.shape[0]
    c = tokens.shape[2] // (k * k)
    grid = tokens.reshape(b, gh, gw, k, k, c).transpose(2, 3).reshape(b, k * gh, k * gw, c)
    return grid.permute(0, 3, 1, 2)


class Reassemble(nn.Module):
    """``act_postprocessN``: readout, tokens to a grid, 1x1 conv, then a resampling layer.

    Children are named ``0``, ``3`` and ``4`` like the official ``nn.Sequential`` (whose
    parameter-free ``1`` Transpose and ``2`` Unflatten are done inline here).

    With :meth:`use_matmul` (:func:`lseg_ros.core.model.fusion.reassemble_as_matmul`) it
    computes the same function on the tokens: the readout without its concatenation, the
    1x1 convolution as a matrix product, and a transposed convolution whose stride equals
    its kernel (``k``, non-overlapping outputs) as a matrix product to ``k*k`` outputs per
    token and a rearrangement of them into the ``k``-times larger grid.
    """

    def __init__(self, out_channels: int, resample: nn.Module = None):
        super().__init__()
        self.add_module('0', ProjectReadout())
        self.add_module('3', nn.Conv2d(VIT_DIM, out_channels, 1))
        if resample is not None:
            self.add_module('4', resample)
        self.register_buffer('resample_weight', None, persistent=False)
        self.register_buffer('resample_bias', None, persistent=False)
        self.matmul = False

    def use_matmul(self) -> None:
        """Compute on the tokens from now on (a transposed convolution's weight copied once)."""
        getattr(self, '0').use_split()
        self.matmul = True
        resample = getattr(self, '4', None)
        if is_patch_transpose(resample):
            k = resample.stride[0]
            weight = resample.weight.detach()                 # (C_in, C_out, k, k)
            self.resample_weight = weight.permute(2, 3, 1, 0).reshape(
                -1, weight.shape[0]).contiguous()
            self.resample_bias = resample.bias.detach().repeat(k * k)

    def forward(self, tokens: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """Turn (B, 1+gh*gw, C) tokens into a feature map."""
        x = getattr(self, '0')(tokens)
        conv = getattr(self, '3')
        resample = getattr(self, '4', None)
        if self.matmul:
            x = F.linear(x, conv.weight.flatten(1), conv.bias)
            if self.resample_weight is not None:
                x = F.linear(x, self.resample_weight, self.resample_bias)
                return unpatchify(x, gh, gw, resample.stride[0])
            x = unpatchify(x, gh, gw, 1)
            return x if resample is None else resample(x)
        x = x.transpose(1, 2).reshape(x.shape[0], VIT_DIM, gh, gw)
        x = conv(x)
        return x if resample is None else resample(x)


def is_patch_transpose(module: nn.Module) -> bool:
    """Whether ``module`` is a transposed convolution with stride = kernel and no overlap."""
    return isinstance(module, nn.ConvTranspose2d) and module.stride == module.kernel_size \
        and module.padding == (0, 0) and module.output_padding == (0, 0) \
        and module.dilation == (1, 1) and module.groups == 1 \
        and module.kernel_size[0] == module.kernel_size[1] and module.bias is not None


class VitBackbone(nn.Module):
    """``pretrained`` of the ViT-L/16 LSeg: trunk + four reassemble stages."""

    in_channels = (256, 512, 1024, 1024)

    def __init__(self):
        super().__init__()
        self.model = VitTrunk()
        self.act_postprocess1 = Reassemble(256, nn.ConvTranspose2d(256, 256, 4, stride=4))
        self.act_postprocess2 = Reassemble(512, nn.ConvTranspose2d(512, 512, 2, stride=2))
        self.act_postprocess3 = Reassemble(1024)
        self.act_postprocess4 = Reassemble(1024, nn.Conv2d(1024, 1024, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor):
        """Return the four levels at H/4, H/8, H/16 and H/32."""
        gh, gw = x.shape[2] // VIT_PATCH, x.shape[3] // VIT_PATCH
        t1, t2, t3, t4 = self.model(x)
        return (self.act_postprocess1(t1, gh, gw), self.act_postprocess2(t2, gh, gw),
                self.act_postprocess3(t3, gh, gw), self.act_postprocess4(t4, gh, gw))


class ResnetBackbone(nn.Module):
    """``pretrained`` of the ResNet101 LSeg: torchvision resnet101 without avgpool/fc."""

    in_channels = (256, 512, 1024, 2048)

    def __init__(self):
        super().__init__()
        net = torchvision.models.resnet101(weights=None)
        self.layer1 = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = net.layer4

    def forward(self, x: torch.Tensor):
        """Return the four levels at H/4, H/8, H/16 and H/32."""
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        return l1, l2, l3, self.layer4(l3)


class LsegImageEncoder(nn.Module):
    """Normalised (B, 3, H, W) image, H and W multiples of 32 -> (B, 512, H/2, W/2) features."""

    def __init__(self, variant: Variant):
        super().__init__()
        self.variant = variant
        backbone = VitBackbone if variant.name == 'vit_l16' else ResnetBackbone
        self.pretrained = backbone()
        self.scratch = Scratch(backbone.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode an image into per-pixel (not normalised) embeddings at half resolution."""
        return self.scratch(*self.pretrained(x))

    def encode_coarse(self, x: torch.Tensor):
        """Run the backbone and the coarser fusion stages: (path, skip), both at H/4."""
        return self.scratch.coarse(*self.pretrained(x))

    def decode_fine(self, path: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Run the last fusion stage: :meth:`encode_coarse`'s outputs to the features."""
        return self.scratch.fine(path, skip)
