# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Hardware and software versions for the JSON reports (latency, fidelity and the node bench).

:func:`host` gives what every report records (Python, OS, CPU model), :func:`environment` the
versions of the model-only reports (GPU, CUDA, cuDNN, libraries, commit), and
:func:`nvml_device` / :func:`nvml_identity` read the GPU through NVML (``nvidia-ml-py``),
``None`` where there is no NVIDIA GPU, driver or ``pynvml``.  torch and pynvml are imported
only when asked for.
"""

import os
import platform
from typing import Dict, Optional, Tuple


def host() -> Dict:
    """Python version, platform and CPU model."""
    return {'python': platform.python_version(), 'platform': platform.platform(),
            'cpu': cpu_model()}


def environment(device=None) -> Dict:
    """GPU, driver, CPU and library versions for reports (the GPU of a CUDA ``device``)."""
    import torch

    from lseg_ros.core.backends.artifacts import gpu_identity, tensorrt_modules_installed

    env = dict(host(), cpu_count=os.cpu_count(), torch=torch.__version__,
               torch_cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
               else None)
    if device is not None and torch.device(device).type == 'cuda':
        env['gpu'] = gpu_identity(torch.device(device).index or 0)
    for name in ('timm', 'open_clip', 'onnx', 'onnxruntime', 'numpy'):
        env[name] = module_version(name)
    for name in tensorrt_modules_installed():
        env[name] = module_version(name)
    env['lseg_ros_commit'] = git_commit()
    return env


def module_version(module: str) -> Optional[str]:
    """Return the ``__version__`` of an importable module, or None."""
    try:
        imported = __import__(module)
    except Exception:  # noqa: B902 - any import failure means "not available"
        return None
    return str(getattr(imported, '__version__', 'unknown'))


def cpu_model() -> str:
    """Return the CPU model name (``/proc/cpuinfo``, else what ``platform`` knows)."""
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> Optional[str]:
    """Return the short commit of the lseg_ros checkout, or None outside a git checkout."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        out = subprocess.run(['git', '-C', root, 'rev-parse', '--short', 'HEAD'],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def nvml_device(index: int = 0) -> Optional[Tuple[object, object]]:
    """Initialise NVML and return ``(pynvml, handle of GPU index)``, or None without one.

    The caller ends with ``pynvml.nvmlShutdown()``.
    """
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:           # no driver / libnvidia-ml (a machine without a GPU)
        return None
    try:
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError:
        pynvml.nvmlShutdown()
        return None


def nvml_identity(index: int = 0) -> Optional[str]:
    """Return ``'<GPU name>, <driver version>'`` of a GPU (as nvidia-smi prints), or None."""
    device = nvml_device(index)
    if device is None:
        return None
    pynvml, handle = device
    try:
        name = _text(pynvml.nvmlDeviceGetName(handle))
        return f'{name}, {_text(pynvml.nvmlSystemGetDriverVersion())}'
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
