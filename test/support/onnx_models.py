# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tiny ONNX graphs for the engine and backend tests."""

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def tiny_onnx(path, dtype=TensorProto.FLOAT, dynamic=True, external=False):
    """Write a 1x1-conv 'image encoder' (3 -> 512 channels, stride 2) with the real I/O names."""
    dims = [1, 3, 'height', 'width'] if dynamic else [1, 3, 64, 64]
    out_dims = [1, 512, 'fh', 'fw'] if dynamic else [1, 512, 32, 32]
    np_dtype = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    weight = numpy_helper.from_array(np.full((512, 3, 1, 1), 0.5, np_dtype), 'w')
    nodes = [helper.make_node('Cast', ['image'], ['x'], to=dtype),
             helper.make_node('Conv', ['x', 'w'], ['y'], strides=[2, 2]),
             helper.make_node('Cast', ['y'], ['features'], to=TensorProto.FLOAT)]
    graph = helper.make_graph(
        nodes, 'tiny', [helper.make_tensor_value_info('image', TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info('features', TensorProto.FLOAT, out_dims)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True,
                        location=Path(path).name + '.data', size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return str(path)
