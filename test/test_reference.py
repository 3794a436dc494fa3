# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The official ViT-L/16 reference outputs are reproduced through the CLI and its API."""

import numpy as np

from lseg_ros.cli.segment import entry, write_image
from lseg_ros.core.pipeline import OutputRequest


def relative_l2(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def pixel_cosine(a, b, axis):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis) / np.linalg.norm(a, axis=axis) / np.linalg.norm(b, axis=axis)


def check_against_reference(raw, reference):
    assert raw['image_features'].shape == (1, 512, 48, 64)
    assert relative_l2(raw['image_features'], reference['image_features']) <= 1e-4
    assert pixel_cosine(raw['image_features'], reference['image_features'], 1).min() >= 0.99999
    assert pixel_cosine(raw['text_features'], reference['text_features'], 1).min() >= 0.9999
    assert raw['logits'].shape == (1, 3, 96, 128)
    assert np.abs(raw['logits'] - reference['logits']).max() <= 1e-2
    assert (raw['mask'] == reference['mask'][0]).mean() >= 0.995


def test_pipeline_reproduces_reference(vit_pipeline, reference):
    assert tuple(reference['labels']) == vit_pipeline.labels.labels
    tokens = vit_pipeline.text_encoder.tokenize(list(reference['labels']))
    np.testing.assert_array_equal(tokens.numpy(), reference['tokens'])
    result = vit_pipeline.segment(reference['image_rgb'], OutputRequest(raw=True))
    assert result.geometry.padded == (96, 128) == result.geometry.source
    check_against_reference({'image_features': result.image_features,
                             'text_features': result.label_set.text_features.numpy(),
                             'logits': result.logits, 'mask': result.mask}, reference)


def test_cli_reproduces_reference(vit_checkpoint, reference, tmp_path, capsys):
    image = tmp_path / 'ref.png'
    write_image(str(image), reference['image_rgb'])
    raw = tmp_path / 'raw.npz'
    code = entry(['--checkpoint', vit_checkpoint, '--image', str(image), '--labels',
                  'dog, grass, other', '--size', '128', '--device', 'cpu',
                  '--output', str(tmp_path / 'out.png'), '--save-raw', str(raw)])
    assert code == 0
    assert (tmp_path / 'out.png').exists() and (tmp_path / 'out_mask.png').exists()
    with np.load(raw) as data:
        check_against_reference(data, reference)
        assert list(data['labels']) == ['dog', 'grass', 'other']
    assert "'grass'" in capsys.readouterr().out
