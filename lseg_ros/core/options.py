# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Choices shared by the backends, the node's parameters and the command lines.

Plain constants with no heavy imports, so that ``--help`` and parameter declarations do
not load torch.
"""

#: Names accepted by the ``backend`` parameter, in the order ``auto`` prefers them.
BACKENDS = ('auto', 'tensorrt', 'torch', 'onnxruntime')
#: ``auto``: fp16 for torch on a GPU, the graph's or engine's precision otherwise.
PRECISIONS = ('fp32', 'fp16', 'auto')
#: Long side of the network input in pixels (node parameter ``input_size``, ``--size``).
DEFAULT_INPUT_SIZE = 480
#: The labels when none are given: the node's ``labels`` parameter, ``LsegPipeline``.
DEFAULT_LABELS = 'person, car, road, sidewalk, building, tree, grass, sky, other'
#: The label maps of the fidelity check (``fidelity --labels``): more classes than
#: :data:`DEFAULT_LABELS`, so that argmax agreement and mIoU see close decisions.
FIDELITY_LABELS = ('person, car, road, sidewalk, building, sky, tree, grass, dog, cat, chair, '
                   'table, floor, wall, window, door, water, mountain, bicycle, other')
