# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Camera models of the node's outputs: CameraInfo matched by stamp, output intrinsics.

The outputs at the input image's resolution (mask, confidence, overlay) get the camera's
model with the frame's header; the feature grid gets intrinsics mapped onto its cells.
"""

import threading
from typing import Dict, Optional

from sensor_msgs.msg import CameraInfo

from lseg_ros.ros.conversions import scaled_camera_info

#: CameraInfo messages kept for matching frames by stamp.
KEPT_CAMERA_INFOS = 16


class CameraInfoCache:
    """The newest CameraInfo messages by stamp (thread-safe: filled and read concurrently)."""

    def __init__(self, size: int = KEPT_CAMERA_INFOS):
        self.size = size
        self._infos: Dict[tuple, CameraInfo] = {}
        self._lock = threading.Lock()

    def add(self, msg: CameraInfo) -> None:
        """Keep ``msg`` (the subscription callback); the oldest one goes beyond ``size``."""
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            self._infos[stamp] = msg
            while len(self._infos) > self.size:
                self._infos.pop(next(iter(self._infos)))

    def match(self, header) -> Optional[CameraInfo]:
        """Return the CameraInfo with the frame's stamp, else the newest one (or None)."""
        with self._lock:
            infos = self._infos
            if not infos:
                return None
            exact = infos.get((header.stamp.sec, header.stamp.nanosec))
            return exact if exact is not None else infos[next(reversed(infos))]


def in_info_pixels(info: CameraInfo, shape, ax, bx, ay, by):
    """Map ``u = a * j + b`` (image pixels) into the pixels of ``info``'s resolution.

    A camera_info of another resolution than the image (e.g. full-size calibration with
    a binned stream) is scaled like image_proc's resize: pixel centres stay aligned.
    """
    sx = info.width / shape[1] if info.width else 1.0
    sy = info.height / shape[0] if info.height else 1.0
    return sx * ax, sx * (bx + 0.5) - 0.5, sy * ay, sy * (by + 0.5) - 0.5


def image_camera_info(info: CameraInfo, header, shape) -> CameraInfo:
    """Return the camera model of the outputs at the input image's resolution."""
    return scaled_camera_info(info, header, shape[1], shape[0],
                              *in_info_pixels(info, shape, 1.0, 0.0, 1.0, 0.0))


def features_camera_info(info: CameraInfo, header, result, stride: int,
                         shape) -> CameraInfo:
    """Return the camera model of the feature grid: cell j <-> image pixel a * j + b."""
    g = result.geometry
    grid_h, grid_w = result.features.shape[:2]
    ph, pw = g.padded
    rx, ry = g.resized[1] / g.source[1], g.resized[0] / g.source[0]
    # H/2 cell i sits at network pixel i * (W - 1) / (W/2 - 1) (align_corners upsampling)
    ax = stride * (pw - 1) / (pw / 2 - 1) / rx
    ay = stride * (ph - 1) / (ph / 2 - 1) / ry
    mapping = in_info_pixels(info, shape, ax, 0.5 / rx - 0.5, ay, 0.5 / ry - 0.5)
    return scaled_camera_info(info, header, grid_w, grid_h, *mapping)
