# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: official-layout checkpoints with the reference weights, the reference data.

Checkpoints are generated once (about 20 s for ViT-L/16) and cached (see
``lseg_ros.core.model.synthetic.cached_reference_checkpoint``; ``make demo`` uses the same file).
"""

from pathlib import Path
import sys

import numpy as np
import pytest

from lseg_ros.core.model.synthetic import cached_reference_checkpoint
from lseg_ros.core.model.variants import RN101, VIT_L16
from lseg_ros.ros.dds_profile import apply_profile

# Like the launch file, bench and demo: the package's Fast DDS profile for every ROS 2
# participant of the tests (this process before rclpy.init; the nodes they start inherit it).
apply_profile()

DATA = Path(__file__).resolve().parent / 'data'
sys.path.insert(0, str(DATA.parent))          # test/support: helpers shared by the tests


@pytest.fixture(scope='session')
def vit_checkpoint() -> str:
    """Return an official-layout ViT-L/16 checkpoint with the reference weights."""
    return cached_reference_checkpoint(VIT_L16)


@pytest.fixture(scope='session')
def rn_checkpoint() -> str:
    """Return an official-layout ResNet101-zs checkpoint with the reference weights."""
    return cached_reference_checkpoint(RN101)


@pytest.fixture(scope='session')
def reference():
    """Return the official ViT-L/16 outputs for one 96x128 image (test/data/README.md)."""
    with np.load(DATA / 'lseg_vitl16_96x128.npz') as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope='session')
def vit_weights(vit_checkpoint):
    """Return checked and split ViT-L/16 weights (memory-mapped)."""
    from lseg_ros.core.model.checkpoint import load_weights
    return load_weights(vit_checkpoint)


@pytest.fixture(scope='session')
def vit_pipeline(vit_weights):
    """Return a CPU fp32 ViT-L/16 pipeline at input size 128 with the reference labels."""
    from lseg_ros.core.pipeline import LsegPipeline
    return LsegPipeline.from_checkpoint(vit_weights, backend='torch', device='cpu',
                                        input_size=128, labels='dog, grass, other')


@pytest.fixture(scope='session')
def rn_pipeline(rn_checkpoint):
    """Return a CPU fp32 ResNet101 pipeline at input size 160."""
    from lseg_ros.core.pipeline import LsegPipeline
    return LsegPipeline.from_checkpoint(rn_checkpoint, backend='torch', device='cpu',
                                        input_size=160, labels='others, dog')


#: Fixtures that build the full-size ViT-L/16 (342 M parameters): their tests are ``slow``.
VIT_FIXTURES = {'vit_checkpoint', 'vit_weights', 'vit_pipeline', 'vit_onnx'}


def pytest_collection_modifyitems(config, items):
    """Mark the tests that run the full-size ViT-L/16 as ``slow`` (``-m 'not slow'``)."""
    for item in items:
        if VIT_FIXTURES & set(getattr(item, 'fixturenames', ())):
            item.add_marker(pytest.mark.slow)
