# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The two official LSeg image-encoder variants and what identifies them in a checkpoint."""

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Dict, List, Tuple

from lseg_ros.core.errors import CheckpointError

MANIFEST_DIR = Path(__file__).resolve().parent / 'manifests'

#: LSeg's logit scale: ``exp(log(1 / 0.07))``, a constant in the official code (not a weight).
LOGIT_SCALE = 1.0 / 0.07

#: Key prefix of every tensor in an official Lightning checkpoint's ``state_dict``.
LIGHTNING_PREFIX = 'net.'


@dataclass(frozen=True)
class Variant:
    """An official LSeg image encoder: how to recognise, normalise and build it."""

    name: str
    description: str
    checkpoints: str
    marker_key: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    manifest_file: str
    #: Bare-key prefixes present in the checkpoints but unused by the image and text encoders.
    ignored_prefixes: Tuple[str, ...]

    def manifest(self) -> List[Dict]:
        """Return the official key list: ``[{'key', 'shape', 'dtype'}, ...]`` (bare keys)."""
        return _load_manifest(self.manifest_file)


_IGNORED_CLIP = ('clip_pretrained.visual.', 'clip_pretrained.logit_scale')

VIT_L16 = Variant(
    name='vit_l16',
    description='LSeg ViT-L/16 (clip_vitl16_384)',
    checkpoints='demo_e200.ckpt, fss_l16.ckpt',
    marker_key='pretrained.model.pos_embed',
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    manifest_file='lseg_vit_l16_manifest.json',
    ignored_prefixes=_IGNORED_CLIP + ('pretrained.model.norm.', 'pretrained.model.head.'),
)

RN101 = Variant(
    name='rn101',
    description='LSeg ResNet101 zero-shot (clip_resnet101)',
    checkpoints='fss_rn101.ckpt, coco_fold*.ckpt, pascal_fold*.ckpt',
    marker_key='pretrained.layer1.0.weight',
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    manifest_file='lseg_rn101_zs_manifest.json',
    ignored_prefixes=_IGNORED_CLIP,
)

VARIANTS = {v.name: v for v in (VIT_L16, RN101)}

_MANIFESTS: Dict[str, List[Dict]] = {}


def _load_manifest(file_name: str) -> List[Dict]:
    if file_name not in _MANIFESTS:
        data = json.loads((MANIFEST_DIR / file_name).read_text())
        _MANIFESTS[file_name] = [
            {'key': k['key'][len(LIGHTNING_PREFIX):], 'shape': tuple(k['shape']),
             'dtype': k['dtype']}
            for k in data['keys']]
    return _MANIFESTS[file_name]


def detect_variant(keys) -> Variant:
    """Return the variant whose marker key is among ``keys`` (bare, without ``net.``)."""
    keys = set(keys)
    for variant in VARIANTS.values():
        if variant.marker_key in keys:
            return variant
    raise CheckpointError(
        'not an LSeg checkpoint: it has neither '
        + ' nor '.join(repr(v.marker_key) for v in VARIANTS.values())
        + f' ({len(keys)} tensors; expected an official lang-seg .ckpt such as '
        'demo_e200.ckpt or fss_rn101.ckpt)')
