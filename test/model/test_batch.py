# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Batched inference: ``segment_batch`` equals ``segment`` frame by frame."""

import time

import numpy as np
import pytest

from lseg_ros.core.pipeline import OutputRequest

REQUEST = OutputRequest(confidence=True, overlay=True, features_stride=2, raw=True)


def frames(count, height=120, width=150, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def test_segment_batch_equals_segment_frame_by_frame(rn_pipeline):
    images = frames(3)
    batched = rn_pipeline.segment_batch(images, REQUEST)
    assert len(batched) == 3
    for image, result in zip(images, batched):
        single = rn_pipeline.segment(image, REQUEST)
        assert result.mask.shape == image.shape[:2]
        assert result.timings['batch'] == 3.0
        np.testing.assert_allclose(result.image_features, single.image_features, atol=2e-4)
        assert np.mean(result.mask == single.mask) > 0.999
        np.testing.assert_allclose(result.confidence, single.confidence, atol=1e-4)
        np.testing.assert_allclose(result.features, single.features, atol=1e-4)
        assert np.mean(np.abs(result.overlay.astype(int) - single.overlay) <= 1) > 0.999
    # the frames differ, so a batch that mixed them up would fail above
    assert not np.array_equal(batched[0].image_features, batched[1].image_features)


def test_iter_segment_batch_gives_each_result_when_it_is_ready(rn_pipeline, encoder_batches,
                                                               monkeypatch):
    """On a CPU each frame's head and outputs are made at its turn, after the shared encoder."""
    import lseg_ros.core.pipeline as pipeline_module
    overlays, heads = [], []
    real_blend, real_reduce = pipeline_module.blend, pipeline_module.reduce_logits
    monkeypatch.setattr(pipeline_module, 'blend',
                        lambda *args: overlays.append(1) or real_blend(*args))
    monkeypatch.setattr(pipeline_module, 'reduce_logits',
                        lambda *args: heads.append(1) or real_reduce(*args))
    images = frames(3, 64, 64)
    results = rn_pipeline.iter_segment_batch(images, OutputRequest(overlay=True))
    first = next(results)
    assert encoder_batches == [3]                # one encoder call for the three
    assert len(overlays) == 1 and len(heads) == 1   # the other frames' are not made yet
    time.sleep(0.5)                              # the consumer's turn: not in their timings
    rest = list(results)
    assert encoder_batches == [3] and len(overlays) == 3 and len(heads) == 3
    every = [first] + rest
    for image, result in zip(images, every):
        assert np.array_equal(result.mask, rn_pipeline.segment(image).mask)
    # the shared stages are the batch's; head and postprocess are each frame's own
    for name in ('preprocess', 'encoder', 'batch'):
        assert len({r.timings[name] for r in every}) == 1
    assert len({r.timings['head'] for r in every}) == 3
    for result in every:
        own = result.timings
        assert own['postprocess'] < 400 and own['head'] < 400
        assert own['total'] == pytest.approx(own['preprocess'] + own['encoder'] + own['head']
                                             + own['postprocess'])


def test_on_a_gpu_every_head_is_queued_before_the_first_frame_is_given(rn_pipeline,
                                                                       monkeypatch):
    """The device path queues all heads and copies up front (run here with CPU tensors)."""
    import lseg_ros.core.pipeline as pipeline_module
    heads = []
    real_reduce = pipeline_module.reduce_logits
    monkeypatch.setattr(pipeline_module, 'reduce_logits',
                        lambda *args: heads.append(1) or real_reduce(*args))
    monkeypatch.setattr(pipeline_module, 'queues_all_heads', lambda device: True)
    images = frames(3, 64, 64)
    request = OutputRequest(confidence=True, overlay=True, features_stride=2)
    results = rn_pipeline.iter_segment_batch(images, request)
    first = next(results)
    assert len(heads) == 3
    every = [first] + list(results)
    monkeypatch.setattr(pipeline_module, 'queues_all_heads', lambda device: False)
    for image, result in zip(images, every):
        single = rn_pipeline.segment(image, request)
        assert np.array_equal(result.mask, single.mask)
        np.testing.assert_allclose(result.confidence, single.confidence, atol=1e-5)
        assert np.array_equal(result.overlay, single.overlay)
        np.testing.assert_allclose(result.features, single.features, atol=1e-5)
        assert result.timings['batch'] == 3.0


@pytest.mark.parametrize('queue_all', [False, True])
def test_a_failing_head_leaves_the_frames_before_it(rn_pipeline, monkeypatch, queue_all):
    """A head's error is raised at its own frame's turn: the frames before it are given."""
    import lseg_ros.core.pipeline as pipeline_module
    real_reduce, calls = pipeline_module.reduce_logits, []

    def reduce_failing_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError('CUDA out of memory (simulated)')
        return real_reduce(*args)

    monkeypatch.setattr(pipeline_module, 'reduce_logits', reduce_failing_second)
    monkeypatch.setattr(pipeline_module, 'queues_all_heads', lambda device: queue_all)
    images = frames(3, 64, 64)
    results = rn_pipeline.iter_segment_batch(images, OutputRequest())
    first = next(results)
    assert first.mask.shape == (64, 64)
    with pytest.raises(RuntimeError, match='simulated'):
        next(results)


def test_read_only_frames_are_copied_not_aliased(rn_pipeline):
    """A frame viewing a received message's bytes (read-only) is copied before torch sees it."""
    rgb = frames(1, 64, 64)[0]
    frozen = np.frombuffer(rgb.tobytes(), np.uint8).reshape(rgb.shape)
    assert not frozen.flags.writeable
    batch = rn_pipeline._upload([frozen])
    assert not np.shares_memory(batch.numpy(), frozen)
    assert np.array_equal(batch[0].numpy(), rgb)
    assert np.array_equal(rn_pipeline.segment(frozen).mask, rn_pipeline.segment(rgb).mask)


@pytest.fixture
def encoder_batches(rn_pipeline, monkeypatch):
    """Record the batch size of every encoder call of ``rn_pipeline``."""
    sizes = []
    original = type(rn_pipeline.backend).__call__

    def recording(self, x):
        sizes.append(x.shape[0])
        return original(self, x)

    monkeypatch.setattr(type(rn_pipeline.backend), '__call__', recording)
    return sizes


def test_segment_batch_splits_at_the_backends_max_batch(rn_pipeline, encoder_batches,
                                                        monkeypatch):
    calls = encoder_batches
    monkeypatch.setattr(rn_pipeline.backend, 'max_batch', 2)
    results = rn_pipeline.segment_batch(frames(5, 64, 64), OutputRequest())
    assert calls == [2, 2, 1]
    assert [r.timings['batch'] for r in results] == [2.0, 2.0, 2.0, 2.0, 1.0]


def test_segment_batch_rejects_mixed_sizes_and_accepts_none(rn_pipeline):
    assert rn_pipeline.segment_batch([]) == []
    with pytest.raises(ValueError, match='one size'):
        rn_pipeline.segment_batch(frames(1, 64, 64) + frames(1, 96, 64))


def test_fixed_shape_backends_get_padded_batches(rn_pipeline, encoder_batches, monkeypatch):
    shapes = encoder_batches
    backend = rn_pipeline.backend
    monkeypatch.setattr(backend, 'pad_batches', True, raising=False)
    assert [rn_pipeline.batch_shape(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 4, 8]
    assert rn_pipeline.batch_shape(3, pad_to=6) == 6
    images = frames(3, 64, 64)
    padded = rn_pipeline.segment_batch(images, OutputRequest(raw=True))
    assert shapes == [4] and len(padded) == 3
    for image, result in zip(images, padded):
        single = rn_pipeline.segment(image, OutputRequest(raw=True))
        np.testing.assert_allclose(result.image_features, single.image_features, atol=2e-4)
    shapes.clear()
    rn_pipeline.segment_batch(images, pad_to=6)
    assert shapes == [6]
    shapes.clear()
    rn_pipeline.warmup(64, 64, batch=3)
    assert shapes == [4, 2, 1]       # the largest first: the others share its output buffer
    monkeypatch.setattr(backend, 'max_batch', 2)
    assert rn_pipeline.batch_shape(3) == 2
