# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Input-size policy and the way back to the source size."""

import numpy as np
import pytest
import torch

from lseg_ros.core.errors import ImageError
from lseg_ros.core.model import head
from lseg_ros.core.pipeline import OutputRequest
from lseg_ros.core.preprocess import check_rgb, Normalizer, plan_geometry


@pytest.mark.parametrize('h, w, size, resized, padded', [
    (96, 128, 128, (96, 128), (96, 128)),      # multiples of 32 at the long side: unchanged
    (480, 640, 480, (360, 480), (384, 480)),
    (97, 131, 128, (95, 128), (96, 128)),
    (640, 480, 500, (500, 375), (512, 384)),
    (10, 1000, 256, (3, 256), (32, 256)),
])
def test_plan_geometry(h, w, size, resized, padded):
    geometry = plan_geometry(h, w, size)
    assert geometry.resized == resized and geometry.padded == padded
    assert all(p % 32 == 0 for p in geometry.padded)


def test_plan_geometry_rejects_bad_sizes():
    with pytest.raises(ValueError):
        plan_geometry(10, 10, 16)
    with pytest.raises(ImageError):
        plan_geometry(0, 10, 64)


def test_unchanged_input_is_only_normalised():
    rgb = torch.randint(0, 256, (64, 96, 3), dtype=torch.uint8)
    x = Normalizer((0.5,) * 3, (0.5,) * 3)(rgb, plan_geometry(64, 96, 96))
    expected = (rgb.permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x[0], expected)


def test_padding_is_black():
    rgb = torch.full((40, 64, 3), 255, dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = Normalizer(mean, std)(rgb, plan_geometry(40, 64, 64))
    assert x.shape == (1, 3, 64, 64)
    black = -torch.tensor(mean) / torch.tensor(std)
    torch.testing.assert_close(x[0, :, 50, 10], black)


@pytest.mark.parametrize('fixture', ['vit_pipeline', 'rn_pipeline'])
@pytest.mark.parametrize('h, w', [(97, 131), (480, 640), (33, 200)])
def test_masks_at_source_size(fixture, h, w, request):
    pipeline = request.getfixturevalue(fixture)
    rgb = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    result = pipeline.segment(rgb, OutputRequest(confidence=True, overlay=True,
                                                 features_stride=2))
    k = len(pipeline.labels.labels)
    assert result.mask.shape == (h, w) and result.mask.dtype == np.uint8
    assert result.mask.max() < k
    assert result.confidence.shape == (h, w)
    assert np.all(result.confidence >= 1 / k - 1e-6) and np.all(result.confidence <= 1 + 1e-6)
    assert result.overlay.shape == (h, w, 3) and result.overlay.dtype == np.uint8
    fh, fw = result.geometry.feature_valid
    assert result.features.shape == ((fh + 1) // 2, (fw + 1) // 2, 512)
    np.testing.assert_allclose(np.linalg.norm(result.features, axis=-1), 1.0, rtol=1e-5)


def test_check_rgb_rejects_other_arrays():
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                np.zeros((0, 4, 3), np.uint8), 'image'):
        with pytest.raises(ImageError):
            check_rgb(bad)


def test_chunked_reduction_equals_full_resize(monkeypatch):
    torch.manual_seed(0)
    logits = torch.randn(1, 7, 64, 96) * 3
    geometry = plan_geometry(100, 150, 96)
    full = torch.nn.functional.interpolate(logits[:, :, :64, :96], size=(100, 150),
                                           mode='bilinear', align_corners=False)[0]
    expected_index = full.argmax(0)
    expected_conf = full.softmax(0).max(0).values
    monkeypatch.setattr(head, 'CHUNK_ELEMENTS', 2 * 100 * 150)   # chunks of 2 labels
    index, confidence = head.reduce_logits(logits, geometry, confidence=True)
    assert torch.equal(index, expected_index)
    torch.testing.assert_close(confidence, expected_conf)
    index_only, none = head.reduce_logits(logits, geometry)
    assert torch.equal(index_only, expected_index) and none is None


def test_many_labels_give_mono16_masks(rn_pipeline):
    labels = [f'thing {i}' for i in range(300)]
    label_set = rn_pipeline.prepare_labels(labels)
    result = rn_pipeline.segment(np.zeros((40, 50, 3), np.uint8), label_set=label_set)
    assert result.mask.dtype == np.uint16 and result.mask.shape == (40, 50)
