# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Word-free segmentation picks vocabulary words that win pixels and segments with them."""

import numpy as np
import torch.nn.functional as F

from lseg_ros.core.wordfree import vocabulary_embeddings, wordfree_labels


def test_wordfree_words_are_pixel_winners(vit_pipeline, reference, tmp_path, monkeypatch):
    monkeypatch.setenv('LSEG_ROS_CACHE', str(tmp_path))
    rgb = reference['image_rgb']
    label_set = wordfree_labels(vit_pipeline, rgb, max_words=8, limit=600)
    words, vocab = vocabulary_embeddings(vit_pipeline.text_encoder, limit=600)
    assert list(tmp_path.glob('vocab_*_600.pt'))          # cached on disk
    assert 1 <= len(label_set.labels) <= 8
    features = F.normalize(
        __import__('torch').from_numpy(reference['image_features'][0]).flatten(1).t(), dim=1)
    winners = (features @ F.normalize(vocab, dim=1).t()).argmax(1)
    top = np.bincount(winners.numpy()).argmax()
    assert label_set.labels[0] == words[top].strip()      # most frequent winner first
    result = vit_pipeline.segment(rgb, label_set=label_set)
    assert result.mask.shape == rgb.shape[:2]
    assert result.label_set.labels == label_set.labels
