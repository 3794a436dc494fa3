# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The /lseg node's parameters: one table for declarations, config/lseg.yaml and README.

ROS-free on purpose: the node turns each :class:`Param` into a ``ParameterDescriptor``, a
test checks that ``config/lseg.yaml`` and the README's Parameters table match this table.
"""

from dataclasses import dataclass
import re
from typing import Any, Optional, Tuple

from lseg_ros.core.errors import LsegError
from lseg_ros.core.options import BACKENDS, DEFAULT_LABELS
from lseg_ros.formats.image_codec import DEFAULT_MAX_INPUT_PIXELS

QOS_CHOICES = ('sensor_data', 'reliable', 'system_default')
#: A camera name is one ROS name token: it becomes a topic namespace.
CAMERA_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*\Z')
#: Default batch window of several cameras (ms).
DEFAULT_BATCH_WINDOW_MS = 5.0


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's type) and constraints."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: Optional[Tuple[str, ...]] = None
    int_range: Optional[Tuple[int, int]] = None
    float_range: Optional[Tuple[float, float]] = None

    @property
    def type_name(self) -> str:
        """Return the ROS parameter type as the README shows it."""
        return {bool: 'bool', int: 'int', float: 'double', str: 'string'}[type(self.default)]

    @property
    def constraint(self) -> str:
        """Return the allowed values or range as text ('' when free)."""
        if self.choices:
            return ' \\| '.join(self.choices)
        if self.int_range:
            return f'{self.int_range[0]} to {self.int_range[1]}'
        if self.float_range:
            return f'{self.float_range[0]:g} to {self.float_range[1]:g}'
        return ''


PARAMS = (
    Param('labels', DEFAULT_LABELS,
          'Comma-separated labels; whitespace trimmed; empty or duplicate entries are refused. '
          'Changes apply to the next frame.'),
    Param('query', '', 'Free-text query of ~/query/similarity (cosine of each pixel to its CLIP '
          'embedding, computed while subscribed); empty: off. Changes apply to the next frame.'),
    Param('checkpoint', '', 'Official lang-seg checkpoint (.ckpt); variant detected from its '
          'keys.', read_only=True),
    Param('engine', '', 'TensorRT engine file (backend tensorrt or auto); checked against its '
          '.json metadata sidecar.', read_only=True),
    Param('onnx', '', 'ONNX image encoder file for backend onnxruntime.', read_only=True),
    Param('backend', 'auto', 'Image encoder backend; auto picks TensorRT when an engine is set '
          'and runs here, ONNX Runtime when only an ONNX file is set, else torch.',
          read_only=True, choices=BACKENDS),
    Param('device', 'auto', 'auto (GPU when available), cpu, cuda or cuda:N.', read_only=True),
    Param('precision', 'auto', 'Encoder precision: auto (torch fp16 on a GPU, fp32 on the CPU; '
          'ONNX/engine: their own), fp32 or fp16.', read_only=True,
          choices=('auto', 'fp32', 'fp16')),
    Param('compile', 'auto', 'torch on a GPU: compile the encoder with Inductor inside its '
          'CUDA graph. auto: the variants whose compiled model passes the fidelity gate, '
          'today both (H200, 480x640: ViT-L/16 ~2.8 vs ~3.6 ms, ResNet101 ~2.0 vs ~2.8 ms, '
          'docs/benchmarks.md); on: every variant; off: none. Compiling costs about 25 s per '
          'input size and batch shape at the first start, about 6 s from the cache in '
          '~/.cache/lseg_ros/inductor.',
          read_only=True, choices=('auto', 'on', 'off')),
    Param('input_size', 480, 'Long side of the network input in pixels; the image is resized '
          'keeping its aspect and padded to multiples of 32.', read_only=True,
          int_range=(32, 4096)),
    Param('cpu_threads', 0, 'Threads for inference on the CPU (0: all cores but one, which is '
          'left to ROS message handling).', read_only=True, int_range=(0, 256)),
    Param('input_qos', 'sensor_data', 'Input QoS: sensor_data (best effort, keep last 1), '
          'reliable (for reliable publishers such as ros2 bag play) or system_default.',
          read_only=True, choices=QOS_CHOICES),
    Param('max_input_pixels', DEFAULT_MAX_INPUT_PIXELS, 'Largest input image in pixels (width '
          'x height) that is decoded; larger ones, raw or compressed (checked from the header '
          'before decoding), are skipped as bad frames. 0: no limit.', read_only=True,
          int_range=(0, 2**31 - 1)),
    Param('compressed_input', False, 'Subscribe to image/compressed (CompressedImage) instead '
          'of image.', read_only=True),
    Param('cameras', '', 'Comma-separated camera names for several cameras in one node: '
          'camera n reads <n>/image_raw and <n>/camera_info and publishes under ~/<n>/; '
          'empty: one camera on image and camera_info with outputs under ~/.', read_only=True),
    Param('batch_window_ms', DEFAULT_BATCH_WINDOW_MS, 'Several cameras: wait at most this long '
          "after the first waiting frame for the other cameras' frames, then segment "
          'frames of one size in one batched call; 0: no batching (one frame per call).',
          float_range=(0.0, 100.0)),
    Param('publish_overlay', True, 'Compute ~/overlay when it has subscribers.'),
    Param('overlay_alpha', 0.5, 'Opacity of the label colours in ~/overlay.',
          float_range=(0.0, 1.0)),
    Param('publish_confidence', True, 'Compute ~/confidence when it has subscribers.'),
    Param('confidence_encoding', 'mono8', 'Encoding of ~/confidence: mono8 (0-255) or 32FC1 '
          '(0-1).', choices=('mono8', '32FC1')),
    Param('publish_features', False, 'Compute ~/features (32FC512, L2-normalised embeddings) '
          'when it has subscribers.'),
    Param('feature_stride', 4, 'Keep every n-th cell of the H/2 feature grid in ~/features.',
          int_range=(1, 64)),
    Param('max_rate_hz', 0.0, 'Most frames segmented per second (0: as fast as frames come).',
          float_range=(0.0, 1000.0)),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages (steady clock).',
          read_only=True, float_range=(0.1, 60.0)),
    Param('warmup', True, 'Run one 4:3 frame at input_size at start-up (kernels, CUDA graph), so '
          'the first frame of a 4:3 camera is not slow; other aspect ratios warm up on their '
          'first frame.', read_only=True),
)

BY_NAME = {p.name: p for p in PARAMS}


def parse_cameras(value: str) -> Tuple[str, ...]:
    """Return the camera names of the ``cameras`` parameter (() for one unnamed camera).

    Names are trimmed; each must be a ROS name token (a letter, then letters, digits or
    underscores) and appear once; anything else raises :class:`LsegError` with the reason.
    """
    if not value.strip():
        return ()
    names = tuple(name.strip() for name in value.split(','))
    for index, name in enumerate(names, start=1):
        if not CAMERA_NAME.match(name):
            raise LsegError(f'parameter cameras: camera {index} {name!r} is not a valid name '
                            '(a letter, then letters, digits or underscores; comma-separated, '
                            'e.g. "front, rear")')
        if names.index(name) != index - 1:
            raise LsegError(f'parameter cameras: camera {name!r} is listed twice')
    return names
