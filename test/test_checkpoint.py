# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoint loading: official layouts load strictly, anything else fails by name."""

import os
import pickle

import pytest
import torch

from lseg_ros.core.checkpoint import build_image_encoder, load_weights, read_state_dict, \
    split_state_dict
from lseg_ros.core.errors import CheckpointError
from lseg_ros.core.text_encoder import ClipTextEncoder
from lseg_ros.core.variants import RN101, VIT_L16


@pytest.mark.parametrize('variant, fixture', [(VIT_L16, 'vit_checkpoint'),
                                              (RN101, 'rn_checkpoint')])
def test_official_layout_loads_strictly(variant, fixture, request):
    weights = load_weights(request.getfixturevalue(fixture))
    assert weights.variant is variant
    manifest = variant.manifest()
    assert len(weights.image) + len(weights.text) + len(weights.dropped) == len(manifest)
    assert all(k.startswith(variant.ignored_prefixes) for k in weights.dropped)
    assert len(weights.text) == 149
    encoder = build_image_encoder(weights)            # load_state_dict(strict=True)
    assert set(encoder.state_dict()) == set(weights.image)
    assert sum(p.numel() for p in encoder.parameters()) == (
        342_832_128 if variant is VIT_L16 else 61_187_648)
    text = ClipTextEncoder(weights.text)              # strict as well
    assert sum(p.numel() for p in text.model.parameters()) == 63_428_096


@pytest.fixture(scope='module')
def rn_state(rn_checkpoint):
    return read_state_dict(rn_checkpoint)


def test_missing_key_is_named(rn_state):
    state = dict(rn_state)
    del state['scratch.refinenet2.out_conv.bias']
    with pytest.raises(CheckpointError, match=r'1 missing: scratch\.refinenet2\.out_conv\.bias'):
        split_state_dict(state)


def test_unexpected_key_is_named(rn_state):
    state = dict(rn_state, **{'scratch.head_block.depthwise.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r'1 unexpected: scratch\.head_block'):
        split_state_dict(state)


def test_wrong_shape_is_named(rn_state):
    state = dict(rn_state)
    state['scratch.layer4_rn.weight'] = torch.zeros(256, 1024, 3, 3)
    with pytest.raises(CheckpointError, match=r'scratch\.layer4_rn\.weight: expected '
                                              r'\[256, 2048, 3, 3\], found \[256, 1024, 3, 3\]'):
        split_state_dict(state)


def test_all_problems_reported_together(rn_state):
    state = dict(rn_state, extra=torch.zeros(1))
    del state['pretrained.layer2.0.conv1.weight']
    state['scratch.head1.bias'] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        split_state_dict(state)
    message = str(info.value)
    assert 'missing: pretrained.layer2.0.conv1.weight' in message
    assert 'unexpected: extra' in message
    assert 'scratch.head1.bias' in message


def test_missing_key_in_a_file_fails_at_load(rn_state, tmp_path):
    state = {'net.' + k: v for k, v in rn_state.items() if k != 'clip_pretrained.ln_final.bias'}
    path = tmp_path / 'broken.ckpt'
    torch.save({'state_dict': state}, path)
    with pytest.raises(CheckpointError, match=r'missing: clip_pretrained\.ln_final\.bias'):
        load_weights(str(path))


def test_not_lseg_and_unreadable_files(tmp_path, rn_checkpoint):
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        read_state_dict(str(tmp_path / 'nope.ckpt'))
    other = tmp_path / 'other.ckpt'
    torch.save({'state_dict': {'net.fc.weight': torch.zeros(2, 2)}}, other)
    with pytest.raises(CheckpointError, match='not an LSeg checkpoint'):
        load_weights(str(other))
    truncated = tmp_path / 'truncated.ckpt'
    with open(rn_checkpoint, 'rb') as source:
        truncated.write_bytes(source.read(1 << 20))
    with pytest.raises(CheckpointError, match='cannot read checkpoint'):
        read_state_dict(str(truncated))
    text = tmp_path / 'text.ckpt'
    text.write_text('hello')
    with pytest.raises(CheckpointError, match='cannot read checkpoint'):
        read_state_dict(str(text))


class LightningCallbackLike:
    """Stands for a Lightning class pickled by reference inside a 1.4 checkpoint."""


class Exploit:
    """An object whose unpickling would run a shell command."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}',)


def test_pickled_code_is_never_executed(rn_state, tmp_path):
    marker = tmp_path / 'pwned'
    state = {'net.' + k: v for k, v in rn_state.items()}
    path = tmp_path / 'lightning.ckpt'
    torch.save({'state_dict': state, 'epoch': 3,
                'callbacks': {LightningCallbackLike: {'best_model_score': torch.tensor(0.5)}},
                'hyper_parameters': Exploit(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)   # what plain safe loading says about this file
    weights = load_weights(str(path))
    assert weights.variant is RN101
    assert not marker.exists()
