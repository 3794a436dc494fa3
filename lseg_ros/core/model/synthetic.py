# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoints with the official layout and deterministic random weights.

The weights follow the procedure of the official reference data (``test/data`` README):
for the i-th manifest key draw from ``numpy.random.RandomState(1000 + i)`` in float64 by
the rules below, then cast to the manifest dtype.  With these weights the official network
produced ``test/data/lseg_vitl16_96x128.npz``.  Used by the tests and by ``make demo`` when
no trained checkpoint is present (the masks are then meaningless, and the demo says so).
"""

import hashlib
import math
import os
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from lseg_ros.core.model.variants import LIGHTNING_PREFIX, Variant

_EMBEDDINGS = ('pos_embed', 'cls_token', 'positional_embedding', 'class_embedding')


def reference_tensor(index: int, key: str, shape, dtype: str) -> torch.Tensor:
    """Return the tensor of the ``index``-th manifest entry under the reference procedure."""
    rs = np.random.RandomState(1000 + index)
    name = key.rsplit('.', 1)[-1]
    shape = tuple(shape)
    if name == 'num_batches_tracked':
        value = np.zeros(shape, np.int64)
    elif name == 'running_var':
        value = 0.75 + 0.5 * rs.random_sample(shape)
    elif name == 'running_mean':
        value = 0.1 * rs.standard_normal(shape)
    elif shape == ():
        value = np.array(math.log(1 / 0.07))
    elif name in _EMBEDDINGS or key.endswith('token_embedding.weight'):
        value = 0.02 * rs.standard_normal(shape)
    elif len(shape) == 1 and name == 'weight':
        value = 1 + 0.1 * rs.standard_normal(shape)
    elif len(shape) == 1:
        value = 0.02 * rs.standard_normal(shape)
    else:
        value = rs.standard_normal(shape) / math.sqrt(int(np.prod(shape[1:])))
    return torch.from_numpy(np.asarray(value).astype(dtype))


def reference_state_dict(variant: Variant) -> Dict[str, torch.Tensor]:
    """Return the official-layout state dict of ``variant`` (``net.`` keys, manifest order)."""
    return {LIGHTNING_PREFIX + k['key']: reference_tensor(i, k['key'], k['shape'], k['dtype'])
            for i, k in enumerate(variant.manifest())}


def cached_reference_checkpoint(variant: Variant) -> str:
    """Return a cached reference checkpoint of ``variant`` (generated once, ~20 s for ViT).

    Kept in ``$LSEG_ROS_CACHE/reference`` (default ``~/.cache/lseg_ros``), named by a hash of
    the manifest and of this module, so a change of either makes a new one.
    """
    from lseg_ros.core.model.variants import MANIFEST_DIR
    from lseg_ros.core.cache import cache_dir
    digest = hashlib.sha256((MANIFEST_DIR / variant.manifest_file).read_bytes()
                            + Path(__file__).read_bytes()).hexdigest()[:12]
    path = cache_dir() / 'reference' / f'{variant.name}_reference_{digest}.ckpt'
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f'{variant.name}_reference_*.ckpt'):
            old.unlink()
        write_reference_checkpoint(str(path), variant)
    return str(path)


def write_reference_checkpoint(path: str, variant: Variant) -> str:
    """Write a Lightning-style checkpoint of ``variant`` with the reference weights."""
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save({'epoch': 0, 'global_step': 0, 'pytorch-lightning_version': '1.4.9',
                'state_dict': reference_state_dict(variant)}, tmp)
    os.replace(tmp, path)
    return path
