# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start and stop ``lseg_node`` as a separate process, the way the launch file does.

Used by ``bench --spawn``, ``make demo`` and the tests: the executable with ``--ros-args``,
the package's ``config/lseg.yaml`` as parameters file, then ``-p`` overrides and remaps, and
the package's Fast DDS profile in its environment (like the launch file's ``dds_profile``).
"""

import os
import shutil
import signal
import subprocess
import sys
from typing import Dict, List, Optional

from lseg_ros.ros.dds_profile import DEFAULT, profile_environment
from lseg_ros.ros.share import installed_config


def default_params_file() -> str:
    """Return the installed config/lseg.yaml (the source tree's when not installed)."""
    return installed_config('lseg.yaml')


#: Executables of the node and their modules (run with ``python -m`` when not installed).
EXECUTABLES = {'lseg_node': 'lseg_ros.ros.node',
               'lseg_lifecycle_node': 'lseg_ros.ros.lifecycle_node'}


def node_command(params: Dict[str, object], remaps: Optional[Dict[str, str]] = None,
                 name: str = 'lseg', namespace: str = '',
                 params_file: Optional[str] = None,
                 executable: str = 'lseg_node') -> List[str]:
    """Return the command line: ``lseg_node --ros-args --params-file … -p … -r …``.

    ``executable``: lseg_node or lseg_lifecycle_node (the managed node).
    """
    exe = shutil.which(executable)
    cmd = [exe] if exe else [sys.executable, '-m', EXECUTABLES[executable]]
    cmd += ['--ros-args', '-r', f'__node:={name}', '--params-file',
            params_file or default_params_file()]
    if namespace:
        cmd += ['-r', f'__ns:={namespace}']
    for key, value in params.items():
        if value == '':
            continue            # '-p name:=' is not valid on a command line; the YAML has ''
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ['-p', f'{key}:={text}']
    for key, value in (remaps or {}).items():
        cmd += ['-r', f'{key}:={value}']
    return cmd


def start_process(command: List[str], log_path: Optional[str] = None,
                  dds_profile: Optional[str] = DEFAULT) -> subprocess.Popen:
    """Start ``command`` in its own process group with the Fast DDS profile ``dds_profile``.

    Its output goes to ``log_path`` (discarded without one).
    """
    env = dict(os.environ, **profile_environment(dds_profile))
    log = open(log_path, 'w') if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    finally:
        if log_path:
            log.close()


def start_node(params: Dict[str, object], remaps: Optional[Dict[str, str]] = None,
               log_path: Optional[str] = None, dds_profile: Optional[str] = DEFAULT,
               **kwargs) -> subprocess.Popen:
    """Start lseg_node (see :func:`node_command`) in its own process group."""
    return start_process(node_command(params, remaps, **kwargs), log_path, dds_profile)


def stop_node(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT the node's process group (like Ctrl-C), SIGKILL after ``timeout``; exit code."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode
