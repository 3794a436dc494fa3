# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Comparison with the official reference outputs (test/data)."""

import numpy as np


def check_against_reference(raw, reference):
    assert raw['image_features'].shape == (1, 512, 48, 64)
    assert relative_l2(raw['image_features'], reference['image_features']) <= 1e-4
    assert pixel_cosine(raw['image_features'], reference['image_features'], 1).min() >= 0.99999
    assert pixel_cosine(raw['text_features'], reference['text_features'], 1).min() >= 0.9999
    assert raw['logits'].shape == (1, 3, 96, 128)
    assert np.abs(raw['logits'] - reference['logits']).max() <= 1e-2
    assert (raw['mask'] == reference['mask'][0]).mean() >= 0.995


def relative_l2(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def pixel_cosine(a, b, axis):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis) / np.linalg.norm(a, axis=axis) / np.linalg.norm(b, axis=axis)
