# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The official ViT-L/16 reference outputs are reproduced through the CLI and its API."""

import numpy as np

from lseg_ros.cli.segment import entry, write_image
from lseg_ros.core.pipeline import OutputRequest
from support.reference import check_against_reference


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
