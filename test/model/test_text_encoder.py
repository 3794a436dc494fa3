# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The CLIP text encoder: the shortened causal forward equals the full one; caching."""

import pytest
import torch

from lseg_ros.core.errors import LabelError


def test_short_forward_equals_full_context(vit_pipeline):
    text = vit_pipeline.text_encoder
    tokens = text.tokenize(['dog', 'a photo of a grassy field', 'other'])
    full = text.model(tokens)                      # open_clip's own 77-token forward
    torch.testing.assert_close(text.encode_tokens(tokens), full, rtol=1e-5, atol=1e-5)


def test_cache_and_order(vit_pipeline):
    text = vit_pipeline.text_encoder
    a = text.encode(['grass', 'dog'])
    b = text.encode(['dog', 'grass', 'dog'])
    torch.testing.assert_close(a[0], b[1])
    torch.testing.assert_close(a[1], b[0])
    torch.testing.assert_close(b[0], b[2])


def test_too_long_label_is_rejected(vit_pipeline):
    with pytest.raises(LabelError, match='tokens long'):
        vit_pipeline.text_encoder.tokenize(['dog ' * 80])


def test_label_versions_and_atomic_snapshot(rn_pipeline):
    before = rn_pipeline.labels
    new = rn_pipeline.set_labels('dog, grass')
    assert new.version == before.version + 1 and new.labels == ('dog', 'grass')
    with pytest.raises(LabelError):
        rn_pipeline.set_labels('dog, dog')
    assert rn_pipeline.labels is new
    rn_pipeline.install_labels(before)
