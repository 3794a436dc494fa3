# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A test double of the few TensorRT Python API calls lseg_ros makes.

This is NOT TensorRT and verifies nothing about TensorRT itself: it lets the tests drive the
logic of :mod:`lseg_ros.deploy.engine_build` and the TensorRT backend (which flags are set, which
shapes and addresses are passed, how often, how errors are reported) on machines without
TensorRT.  Real TensorRT(-RTX) runs are described in docs/benchmarks.md.

``make_fake_trt(flavour)`` returns a module-like object: ``'trt10'`` (has
``BuilderFlag.FP16``), ``'trt11'`` (strongly typed only) or ``'rtx'`` (``tensorrt_rtx``:
compute-capability targets, engine validity, runtime config).  The "plan" it builds is JSON
describing the network; its execution context computes a simple known function of the
input with torch ops on the given stream, reading and writing the buffers registered in
``fake.buffers`` by address.
"""

import enum
import json
import types

import onnx
import torch
import torch.nn.functional as F


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT32 = 3
    INT64 = 5


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 5


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class EngineValidity(enum.IntEnum):
    VALID = 0
    SUBOPTIMAL = 1
    INVALID = 2


class EngineInvalidityDiagnostics(enum.IntEnum):
    VERSION_MISMATCH = 1
    UNSUPPORTED_CC = 2
    OLD_CUDA_DRIVER = 4


class CudaGraphStrategy(enum.IntEnum):
    DISABLED = 0
    WHOLE_GRAPH_CAPTURE = 1


class ComputeCapability(enum.IntEnum):
    NONE = 0
    CURRENT = 1
    SM80 = 80
    SM86 = 86
    SM89 = 89
    SM120 = 120


_ONNX_TYPES = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF,
               onnx.TensorProto.INT64: DataType.INT64, onnx.TensorProto.INT32: DataType.INT32}


class FakeTensor:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype


class FakeNetwork:
    def __init__(self, flags):
        self.flags = flags
        self.inputs, self.outputs = [], []

    @property
    def num_inputs(self):
        return len(self.inputs)

    @property
    def num_outputs(self):
        return len(self.outputs)

    def get_input(self, index):
        return self.inputs[index]

    def get_output(self, index):
        return self.outputs[index]


class FakeParserError:
    def __init__(self, index, node_name, op, desc):
        self._index, self._name, self._op, self._desc = index, node_name, op, desc

    def desc(self):
        return self._desc

    def node(self):
        return self._index

    def code(self):
        return 'ErrorCode.UNSUPPORTED_NODE'

    def node_name(self):
        return self._name

    def node_operator(self):
        return self._op


def _dims(value_info):
    return tuple(d.dim_value if d.HasField('dim_value') else -1
                 for d in value_info.type.tensor_type.shape.dim)


class FakeConfig:
    def __init__(self, fake):
        self.fake = fake
        self.flags = {'TF32'}
        self.pool_limits = {}
        self.builder_optimization_level = 3
        self.profiles = []
        self.timing_cache = None
        self.capabilities = {}
        if fake.flavour == 'rtx':
            self.num_compute_capabilities = 0

    def set_flag(self, flag):
        self.flags.add(flag.name)

    def clear_flag(self, flag):
        self.flags.discard(flag.name)

    def get_flag(self, flag):
        return flag.name in self.flags

    def set_memory_pool_limit(self, pool, size):
        self.pool_limits[pool.name] = size

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data):
        return FakeTimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        return self.timing_cache

    def set_compute_capability(self, capability, index):
        self.capabilities[index] = capability.name
        return True


class FakeTimingCache:
    def __init__(self, data):
        self.data = bytes(data)

    def serialize(self):
        return self.data + b'+entry'


class FakeProfile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, low, opt, high):
        self.shapes[name] = [list(low), list(opt), list(high)]


class FakeEngine:
    def __init__(self, fake, description):
        self.fake = fake
        self.description = description
        self.io = description['io']
        self.num_io_tensors = len(self.io)
        self.contexts = []

    def get_tensor_name(self, index):
        self.fake.calls['get_tensor_name'] += 1
        return self.io[index]['name']

    def get_tensor_mode(self, name):
        return TensorIOMode[self._tensor(name)['mode']]

    def get_tensor_dtype(self, name):
        return DataType[self._tensor(name)['dtype']]

    def get_tensor_profile_shape(self, name, profile):
        low, opt, high = self.description['profiles'][name]
        return tuple(low), tuple(opt), tuple(high)

    def _tensor(self, name):
        return next(t for t in self.io if t['name'] == name)

    def create_runtime_config(self):
        return types.SimpleNamespace(cuda_graph_strategy=CudaGraphStrategy.DISABLED)

    def create_execution_context(self, config=None):
        context = FakeContext(self.fake, self, config)
        self.contexts.append(context)
        return context


class FakeContext:
    """Computes ``features[0, c] = (c + 1) / 512 * avgpool2(sum_channels(image))``."""

    def __init__(self, fake, engine, config):
        self.fake, self.engine, self.config = fake, engine, config
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        self.fake.calls['set_input_shape'] += 1
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if self.engine.get_tensor_mode(name) == TensorIOMode.INPUT:
            return self.shapes[name]
        n, _, h, w = next(iter(self.shapes.values()))
        return (n, 512, h // 2, w // 2)

    def set_tensor_address(self, name, pointer):
        self.fake.calls['set_tensor_address'] += 1
        self.addresses[name] = pointer
        return True

    def execute_async_v3(self, stream_handle):
        self.fake.calls['execute_async_v3'] += 1
        if self.fake.fail_execute:
            return False
        inp = self.fake.buffers[self.addresses['image']]
        out = self.fake.buffers[self.addresses['features']]
        if inp.is_cuda:
            with torch.cuda.stream(torch.cuda.ExternalStream(stream_handle, inp.device)):
                _fake_compute(inp, out)
        else:
            _fake_compute(inp, out)
        return True


def _fake_compute(inp, out):
    pooled = F.avg_pool2d(inp.float().sum(1, keepdim=True), 2)
    scale = torch.arange(1, out.shape[1] + 1, device=inp.device, dtype=torch.float32) / 512
    out.copy_((pooled * scale.view(1, -1, 1, 1)).to(out.dtype))


def expected_features(x):
    """Return what the fake engine computes for ``x`` (for assertions)."""
    out = torch.empty(x.shape[0], 512, x.shape[2] // 2, x.shape[3] // 2, device=x.device)
    _fake_compute(x, out)
    return out


class FakeRuntime:
    def __init__(self, fake, logger):
        self.fake, self.logger = fake, logger

    def deserialize_cuda_engine(self, plan):
        self.fake.calls['deserialize'] += 1
        try:
            description = json.loads(bytes(plan).decode())
        except (UnicodeDecodeError, ValueError):
            return None
        if description.get('version') != self.fake.__version__:
            return None
        return FakeEngine(self.fake, description)

    def get_engine_validity(self, plan):
        if self.fake.validity_bits:
            return EngineValidity.INVALID, self.fake.validity_bits
        return EngineValidity.VALID, 0


class FakeBuilder:
    def __init__(self, fake, logger):
        self.fake, self.logger = fake, logger

    def create_network(self, flags):
        self.fake.network_flags = flags
        return FakeNetwork(flags)

    def create_builder_config(self):
        self.fake.config = FakeConfig(self.fake)
        return self.fake.config

    def create_optimization_profile(self):
        return FakeProfile()

    def build_serialized_network(self, network, config):
        self.fake.calls['build'] += 1
        if self.fake.fail_build:
            self.logger.log(Severity.ERROR, 'fake build failure')
            return None
        profiles = {}
        for profile in config.profiles:
            profiles.update(profile.shapes)
        io = [{'name': t.name, 'mode': 'INPUT', 'dtype': t.dtype.name} for t in network.inputs]
        io += [{'name': t.name, 'mode': 'OUTPUT', 'dtype': t.dtype.name}
               for t in network.outputs]
        for t in network.inputs:
            if t.name not in profiles:
                profiles[t.name] = [list(t.shape)] * 3
        return json.dumps({'version': self.fake.__version__, 'io': io,
                           'profiles': profiles}).encode()


class FakeParser:
    def __init__(self, fake, network, logger):
        self.fake, self.network, self.logger = fake, network, logger
        self.errors = []

    def parse_from_file(self, path):
        if self.fake.parser_errors:
            self.errors = [FakeParserError(*e) for e in self.fake.parser_errors]
            return False
        model = onnx.load(path, load_external_data=False)
        for value in model.graph.input:
            self.network.inputs.append(FakeTensor(value.name, _dims(value),
                                                  _ONNX_TYPES[value.type.tensor_type.elem_type]))
        for value in model.graph.output:
            self.network.outputs.append(FakeTensor(value.name, _dims(value),
                                                   _ONNX_TYPES[value.type.tensor_type.elem_type]))
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, index):
        return self.errors[index]


def make_fake_trt(flavour='trt10', version=None):
    """Return a fresh module-like fake of ``tensorrt`` (trt10, trt11) or ``tensorrt_rtx``."""
    fake = types.SimpleNamespace()
    fake.flavour = flavour
    fake.__name__ = 'tensorrt_rtx' if flavour == 'rtx' else 'tensorrt'
    fake.__version__ = version or {'trt10': '10.3.0.26', 'trt11': '11.4.0.1',
                                   'rtx': '1.7.1.116'}[flavour]
    flags = ['TF32'] + (['FP16'] if flavour == 'trt10' else [])
    fake.BuilderFlag = enum.Enum('BuilderFlag', flags)

    class ILogger:
        Severity = globals()['Severity']

        def __init__(self):
            pass

    fake.ILogger = ILogger
    fake.Logger = ILogger
    fake.DataType = DataType
    fake.TensorIOMode = TensorIOMode
    fake.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
    fake.MemoryPoolType = MemoryPoolType
    fake.calls = dict.fromkeys(('build', 'deserialize', 'set_input_shape', 'set_tensor_address',
                                'execute_async_v3', 'get_tensor_name'), 0)
    fake.buffers = {}
    fake.parser_errors = []
    fake.fail_build = False
    fake.fail_execute = False
    fake.validity_bits = 0
    fake.config = None
    fake.network_flags = None
    fake.Builder = lambda logger: FakeBuilder(fake, logger)
    fake.OnnxParser = lambda network, logger: FakeParser(fake, network, logger)
    fake.Runtime = lambda logger: FakeRuntime(fake, logger)
    if flavour == 'rtx':
        fake.ComputeCapability = ComputeCapability
        fake.EngineValidity = EngineValidity
        fake.EngineInvalidityDiagnostics = EngineInvalidityDiagnostics
        fake.CudaGraphStrategy = CudaGraphStrategy
    return fake


def register_allocator(fake):
    """Return an ``allocate(shape, dtype, device)`` that records buffers in ``fake.buffers``."""
    def allocate(shape, dtype, device='cpu'):
        tensor = torch.empty(shape, dtype=dtype, device=device)
        fake.buffers[tensor.data_ptr()] = tensor
        return tensor
    return allocate
