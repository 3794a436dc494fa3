# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The bundled sample stream: small generated camera frames (no image files in git).

A deterministic outdoor-like scene (sky, a road, grass with texture and a brown animal-like
blob that moves across it) rendered at any size.  The frames are made by this code, so they
are free of rights; they exercise the whole pipeline but, being synthetic, only give
meaningful masks with a trained checkpoint (see README).
"""

import cv2
import numpy as np

SAMPLE_LABELS = 'dog, grass, road, sky, other'


#: Frames of the sample stream that differ (the dog walks through 14 places, then repeats).
DISTINCT_FRAMES = 14


def sample_frame(index: int, height: int = 480, width: int = 640) -> np.ndarray:
    """Return frame ``index`` of the sample stream as an (H, W, 3) uint8 RGB image."""
    rng = np.random.default_rng(1234)
    frame = np.zeros((height, width, 3), np.uint8)
    horizon = int(0.42 * height)
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    sky = (1 - t) * np.array([70, 130, 220]) + t * np.array([185, 215, 245])
    frame[:horizon] = sky[:, None, :].astype(np.uint8)
    grass = rng.normal(0, 18, (height - horizon, width, 1)) + np.array([60, 140, 45])
    frame[horizon:] = np.clip(grass, 0, 255).astype(np.uint8)
    road = np.array([[int(0.40 * width), horizon], [int(0.55 * width), horizon],
                     [int(0.95 * width), height], [int(0.15 * width), height]], np.int32)
    cv2.fillConvexPoly(frame, road, (105, 105, 110))
    x = int((0.1 + 0.06 * (index % DISTINCT_FRAMES)) * width)
    y = int(0.72 * height)
    rx, ry = max(2, width // 12), max(2, height // 14)
    cv2.ellipse(frame, (x, y), (rx, ry), 0, 0, 360, (120, 80, 40), -1)
    cv2.circle(frame, (x + rx, y - ry), max(2, ry), (110, 72, 35), -1)
    cv2.circle(frame, (int(0.8 * width), int(0.12 * height)), max(2, height // 16),
               (255, 240, 190), -1)
    return frame


def sample_frames(count: int = 12, height: int = 480, width: int = 640):
    """Yield ``count`` consecutive sample frames."""
    for index in range(count):
        yield sample_frame(index, height, width)
