# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Inference-time graph simplifications that do not change the function computed.

``fold_batchnorm`` folds every eval-mode ``BatchNorm2d`` that directly follows a
``Conv2d`` into that convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and
replaces it by ``nn.Identity``: the decoder's residual units (``convN`` / ``bnN``), and in
the ResNet101 backbone every bottleneck, its downsample and the stem.  Done in float32,
before any conversion to float16.
"""

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
