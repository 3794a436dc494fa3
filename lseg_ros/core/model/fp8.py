# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""FP8 (e4m3) matrix products with static, calibrated scales for the ViT blocks (Hopper+).

:class:`StaticFp8Linear` replaces an ``nn.Linear`` of a float16 network: the weight is
stored in float8 e4m3 with one scale per output row, the input is scaled by one static
per-tensor scale found by calibration (the largest absolute input seen on calibration
frames, with a margin), cast to float8 and multiplied with ``torch._scaled_mm`` (FP8
tensor cores, float32 accumulation, bias added in the epilogue, float16 out).  With static
scales a product costs one element-wise cast plus the FP8 GEMM; dynamic scaling (an amax
reduction per call) costs more than FP8 saves at these sizes (measured in issue 11).
LayerNorm, softmax and attention stay in higher precision.
"""

from typing import Dict, Iterable, List, Sequence

import torch
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
#: Which Linear layers of a timm ``Block`` are converted, by name under the block.
DEFAULT_LAYERS = ('attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2')


def fp8_supported(device) -> bool:
    """Return True on CUDA devices with FP8 tensor cores (compute capability 8.9+)."""
    device = torch.device(device)
    if device.type != 'cuda' or not hasattr(torch, '_scaled_mm'):
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


class StaticFp8Linear(nn.Module):
    """``y = x W^T + b`` with W in FP8 (per-row scales) and x cast with a static scale."""

    def __init__(self, linear: nn.Linear, input_amax: float, margin: float = 1.0,
                 rowwise: bool = True):
        super().__init__()
        weight = linear.weight.detach().float()
        if rowwise:        # one scale per output row; _scaled_mm then wants bfloat16 out
            w_scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
        else:
            w_scale = weight.abs().amax().clamp(min=1e-12).reshape(1, 1) / E4M3_MAX
        self.rowwise = rowwise
        self.out_dtype = torch.bfloat16 if rowwise else torch.float16
        self.register_buffer('weight', (weight / w_scale).to(E4M3))             # (N, K)
        self.register_buffer('weight_scale',
                             w_scale.t().contiguous() if rowwise else w_scale.reshape(()))
        bias = linear.bias.detach().to(self.out_dtype) if linear.bias is not None else None
        self.register_buffer('bias', bias)
        scale = max(float(input_amax) * margin, 1e-6) / E4M3_MAX
        self.register_buffer('input_scale', torch.tensor(scale, dtype=torch.float32,
                                                         device=weight.device))
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the FP8 product to (..., K) float16 input; returns float16."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        q = (flat / self.input_scale).clamp_(-E4M3_MAX, E4M3_MAX).to(E4M3)
        scale_a = (self.input_scale.expand(flat.shape[0], 1).contiguous() if self.rowwise
                   else self.input_scale)
        out = torch._scaled_mm(q, self.weight.t(), scale_a=scale_a, scale_b=self.weight_scale,
                               bias=self.bias, out_dtype=self.out_dtype)
        return out.to(x.dtype).reshape(*shape[:-1], self.out_features)


def _linears(model: nn.Module, layers: Sequence[str]) -> Dict[str, nn.Linear]:
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name.endswith('.' + layer) or name == layer
                                                 for layer in layers):
            if '.blocks.' in f'.{name}':
                found[name] = module
    return found


@torch.inference_mode()
def calibrate_amax(model: nn.Module, inputs: Iterable[torch.Tensor],
                   layers: Sequence[str] = DEFAULT_LAYERS) -> Dict[str, float]:
    """Run ``model`` on ``inputs`` and return the largest |input| of each targeted Linear."""
    amax: Dict[str, float] = {}
    hooks: List = []
    for name, module in _linears(model, layers).items():
        def hook(_module, args, _name=name):
            value = float(args[0].detach().abs().amax())
            amax[_name] = max(amax.get(_name, 0.0), value)
        hooks.append(module.register_forward_pre_hook(hook))
    try:
        for x in inputs:
            model(x)
    finally:
        for handle in hooks:
            handle.remove()
    return amax


def convert_to_fp8(model: nn.Module, amax: Dict[str, float], margin: float = 1.0,
                   rowwise: bool = True) -> int:
    """Replace the calibrated Linear layers by :class:`StaticFp8Linear`; returns the count."""
    count = 0
    for name, value in amax.items():
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name)
        setattr(parent, child, StaticFp8Linear(getattr(parent, child), value, margin, rowwise))
        count += 1
    return count
