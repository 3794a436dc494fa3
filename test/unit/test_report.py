# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Report environment and the bench's GPU sampler (NVML faked: no GPU here)."""

import sys
import time
import types

from lseg_ros.deploy import report
from lseg_ros.ros.bench import environment as bench_environment, GpuSampler


class FakeNvml(types.ModuleType):
    """The part of pynvml the bench uses, with one GPU at 40 then 60 % and 1-2 GiB used."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail_init=False):
        super().__init__('pynvml')
        self.fail_init = fail_init
        self.live = 0
        self.reads = 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError('NVML Shared Library Not Found')
        self.live += 1

    def nvmlShutdown(self):
        self.live -= 1

    def nvmlDeviceGetHandleByIndex(self, index):
        if index:
            raise self.NVMLError('Invalid Argument')
        return 'gpu0'

    def nvmlDeviceGetName(self, handle):
        return b'NVIDIA H200'

    def nvmlSystemGetDriverVersion(self):
        return '570.86'

    def nvmlDeviceGetUtilizationRates(self, handle):
        self.reads += 1
        return types.SimpleNamespace(gpu=40 if self.reads == 1 else 60)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=(1 + (self.reads > 1)) * 2**30)


def test_gpu_sampler_reads_nvml_and_reports_the_same_fields(monkeypatch):
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, 'pynvml', nvml)
    sampler = GpuSampler(interval=0.01)
    deadline = time.monotonic() + 10
    while len(sampler.samples) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    result = sampler.stop()
    assert set(result) == {'utilization_percent_mean', 'memory_used_mb_max'}
    assert 40 < result['utilization_percent_mean'] <= 60
    assert result['memory_used_mb_max'] == 2048.0
    assert nvml.live == 0                               # NVML shut down again
    assert report.nvml_identity(0) == 'NVIDIA H200, 570.86'
    assert report.nvml_identity(1) is None and nvml.live == 0
    assert bench_environment()['nvidia_smi'] == 'NVIDIA H200, 570.86'


def test_no_gpu_no_nvml_gives_none(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pynvml', FakeNvml(fail_init=True))
    assert GpuSampler().stop() is None
    assert report.nvml_identity() is None
    assert 'nvidia_smi' not in bench_environment()
    monkeypatch.setitem(sys.modules, 'pynvml', None)    # not installed: import fails
    assert GpuSampler().stop() is None
    assert report.nvml_device() is None


def test_environment_keys_of_each_report():
    bench = bench_environment()
    for key in ('python', 'platform', 'cpu', 'cpu_cores', 'memory_gb', 'ros_distro', 'rmw',
                'torch', 'lseg_ros'):
        assert bench[key], key
    model = report.environment('cpu')
    for key in ('python', 'platform', 'cpu', 'cpu_count', 'torch', 'torch_cuda', 'cudnn',
                'timm', 'open_clip', 'onnx', 'onnxruntime', 'numpy', 'lseg_ros_commit'):
        assert key in model, key
    assert model['cpu'] == bench['cpu'] == report.cpu_model()
    assert report.module_version('no_such_module_here') is None
