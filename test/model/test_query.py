# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The free-text query heat-map: cosine of the pixels' embeddings to the query's."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lseg_ros.core.errors import LabelError
from lseg_ros.core.model.decoder import upsample2x
from lseg_ros.core.pipeline import OutputRequest


@pytest.fixture
def query_pipeline(rn_pipeline):
    yield rn_pipeline
    rn_pipeline.install_query(None)


def test_similarity_is_the_cosine_to_the_query_upsampled_like_the_logits(query_pipeline):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)   # long side = input size
    query = query_pipeline.set_query('  a red car, parked  ')
    assert query.text == 'a red car, parked'
    result = query_pipeline.segment(image, OutputRequest(similarity=True, raw=True))
    assert result.query == 'a red car, parked'
    assert result.similarity.shape == (120, 160) and result.similarity.dtype == np.float32
    features = F.normalize(torch.from_numpy(result.image_features), dim=1)
    text = F.normalize(query_pipeline.text_encoder.encode(['a red car, parked'])[0].float(),
                       dim=0)
    expected = upsample2x(torch.einsum('bdhw,d->bhw', features, text)[:, None])[0, 0]
    np.testing.assert_allclose(result.similarity, expected[:120, :160].numpy(), atol=1e-5)
    assert -1.0 <= result.similarity.min() <= result.similarity.max() <= 1.0
    # the mask is still the argmax over the labels
    plain = query_pipeline.segment(image, OutputRequest())
    np.testing.assert_array_equal(result.mask, plain.mask)
    assert plain.similarity is None and plain.query is None


def test_similarity_at_another_source_size_and_in_a_batch(query_pipeline):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (90, 100, 3), dtype=np.uint8) for _ in range(2)]
    query_pipeline.set_query('dog')
    batched = query_pipeline.segment_batch(images, OutputRequest(similarity=True))
    for image, result in zip(images, batched):
        single = query_pipeline.segment(image, OutputRequest(similarity=True))
        assert result.similarity.shape == (90, 100)
        np.testing.assert_allclose(result.similarity, single.similarity, atol=1e-4)


def test_empty_query_is_off_and_a_flood_is_refused(query_pipeline):
    query_pipeline.set_query('dog')
    assert query_pipeline.set_query('   ') is None and query_pipeline.query is None
    image = np.zeros((32, 32, 3), np.uint8)
    assert query_pipeline.segment(image, OutputRequest(similarity=True)).similarity is None
    with pytest.raises(LabelError, match='characters'):
        query_pipeline.prepare_query('x' * 5000)


def test_union_and_keep_of_output_requests():
    a = OutputRequest(confidence=True)
    b = OutputRequest(overlay=True, overlay_alpha=0.3, features_stride=2, similarity=True)
    both = OutputRequest.union([a, b])
    assert both == OutputRequest(confidence=True, overlay=True, overlay_alpha=0.3,
                                 features_stride=2, similarity=True)
    assert OutputRequest.union([a]) == a
