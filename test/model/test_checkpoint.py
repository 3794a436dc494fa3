# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoint loading: official layouts load strictly, anything else fails by name."""

import os
import pickle

import pytest
import torch

from lseg_ros.core.errors import CheckpointError
from lseg_ros.core.model.checkpoint import (build_image_encoder, check_tensors, load_weights,
                                            read_state_dict, split_state_dict)
from lseg_ros.core.model.text_encoder import ClipTextEncoder
from lseg_ros.core.model.variants import RN101, VIT_L16


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


# ----------------------------------------------------------------------- broken weights
IMAGE_KEY = 'scratch.layer4_rn.weight'                   # image encoder (float32)
TEXT_KEY = 'clip_pretrained.transformer.resblocks.3.mlp.c_fc.weight'    # text encoder (fp16)


def mutated(tensor, how):
    if how == 'int64':
        return tensor.to(torch.int64)
    tensor = tensor.clone()
    if how == 'all NaN':
        tensor.fill_(float('nan'))
    elif how == 'one NaN':
        tensor.view(-1)[7] = float('nan')
    else:
        tensor.view(-1)[-1] = float('inf')
    return tensor


@pytest.mark.parametrize('key', [IMAGE_KEY, TEXT_KEY])
@pytest.mark.parametrize('how, message', [
    ('int64', r'has dtype int64, the official layout has float(32|16)'),
    ('all NaN', 'is not finite: all its values are NaN'),
    ('one NaN', r'is not finite: 1 NaN of [\d,]+ values'),
    ('+inf', r'is not finite: 1 infinite of [\d,]+ values'),
])
def test_broken_tensors_are_refused_by_name(rn_state, key, how, message):
    state = dict(rn_state)
    state[key] = mutated(state[key], how)
    with pytest.raises(CheckpointError, match=f'tensor {key} .*{message}') as info:
        split_state_dict(state, 'x.ckpt')
    assert len(str(info.value).splitlines()) == 1


def test_unused_tensors_are_not_checked_and_integer_buffers_may_be_integers(rn_state):
    state = dict(rn_state)
    state['clip_pretrained.visual.proj'] = mutated(state['clip_pretrained.visual.proj'], '+inf')
    counters = [k for k in state if k.endswith('num_batches_tracked')]
    assert counters and all(state[k].dtype == torch.int64 for k in counters)
    split_state_dict(state)                     # the CLIP image tower is never used
    check_tensors({'bn.num_batches_tracked': torch.zeros((), dtype=torch.int64)}, {})
    with pytest.raises(CheckpointError, match='has dtype int64, the official layout has a '
                                              'floating-point dtype'):
        check_tensors({'bn.weight': torch.zeros(3, dtype=torch.int64)}, {})


@pytest.mark.parametrize('key, how', [(TEXT_KEY, 'one NaN'), (IMAGE_KEY, 'int64')])
def test_broken_tensor_in_a_file_fails_at_load(rn_state, tmp_path, key, how):
    state = {'net.' + k: (mutated(v, how) if k == key else v) for k, v in rn_state.items()}
    path = tmp_path / 'nan.ckpt'
    torch.save({'state_dict': state}, path)
    try:
        with pytest.raises(CheckpointError, match=f'{path}: tensor {key}'):
            load_weights(str(path))
    finally:
        path.unlink()


def test_state_dict_of_the_wrong_type_is_named(tmp_path):
    path = tmp_path / 'list.ckpt'
    torch.save({'state_dict': [torch.zeros(1)]}, path)
    with pytest.raises(CheckpointError, match='its state_dict is a list, not a dict'):
        read_state_dict(str(path))
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match='holds no state_dict .found list'):
        read_state_dict(str(path))
    torch.save({'state_dict': {}}, path)
    with pytest.raises(CheckpointError, match='empty state_dict'):
        read_state_dict(str(path))


class NonFiniteBackend:
    """A backend whose features are NaN (weights that produce garbage)."""

    name = 'fake'
    max_batch = None          # the EncoderBackend interface: any batch size

    def __init__(self, device):
        self.device = device

    def __call__(self, x):
        return torch.full((x.shape[0], 512, x.shape[2] // 2, x.shape[3] // 2), float('nan'))

    def describe(self):
        return {'backend': self.name, 'device': str(self.device), 'precision': 'fp32'}


def test_warmup_refuses_non_finite_network_output(rn_pipeline):
    from lseg_ros.core.errors import NonFiniteOutputError
    from lseg_ros.core.pipeline import LsegPipeline
    rn_pipeline.warmup(96, 128)                            # good weights: no complaint
    broken = LsegPipeline(NonFiniteBackend(rn_pipeline.device), rn_pipeline.text_encoder,
                          rn_pipeline.variant, 128)
    broken.set_labels('dog, grass')
    with pytest.raises(NonFiniteOutputError, match='weights produce non-finite output'):
        broken.warmup(96, 128)


def test_huge_finite_values_are_not_mistaken_for_infinities():
    check_tensors({'w': torch.full((4,), 3e38)}, {'w': 'float32'})
    check_tensors({'w': torch.full((4,), 6e4, dtype=torch.float16)}, {'w': 'float16'})
