# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""GPU memory of the managed node before configure, after configure and after cleanup.

    python scripts/lifecycle_memory.py --checkpoint models/demo_e200.ckpt \\
        [--output docs/lifecycle_memory.json] [-p name:=value ...]

Runs ``LsegLifecycleNode`` in this process and drives it with its own transition calls
(the code behind ``ros2 lifecycle set``): configure, activate, deactivate, cleanup; after
each step prints torch's allocated/reserved MiB and NVML's used MiB of the node's GPU, and
writes them as JSON.  ``cleanup`` is expected to bring torch's numbers back to those
before configure (the CUDA context, ~500 MiB in NVML, stays until the process exits).
"""

import argparse
import json
import sys


def measure(device_index: int):
    """Return torch allocated/reserved and NVML used memory in MiB."""
    import torch
    from lseg_ros.deploy.report import nvml_device
    out = {'torch_allocated_mb': torch.cuda.memory_allocated(device_index) / 2**20,
           'torch_reserved_mb': torch.cuda.memory_reserved(device_index) / 2**20}
    nvml = nvml_device(device_index)
    if nvml is not None:
        pynvml, handle = nvml
        out['nvml_used_mb'] = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
        pynvml.nvmlShutdown()
    return out


def main(argv=None) -> int:
    """Configure, activate, deactivate and clean up the node; report memory after each."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--device', default='cuda:0')
    parser.add_argument('--output', default='lifecycle_memory.json')
    parser.add_argument('-p', dest='params', action='append', default=[],
                        help='extra node parameter name:=value (e.g. input_size:=480)')
    args = parser.parse_args(argv)
    import rclpy
    import torch
    from lseg_ros.ros.lifecycle_node import LsegLifecycleNode
    index = torch.device(args.device).index or 0
    torch.cuda.init()
    ros_args = ['--ros-args', '-p', f'checkpoint:={args.checkpoint}', '-p',
                f'device:={args.device}'] + [a for p in args.params for a in ('-p', p)]
    rclpy.init(args=ros_args)
    node = LsegLifecycleNode()
    report = {'device': torch.cuda.get_device_name(index), 'steps': {}}

    def step(name):
        report['steps'][name] = measure(index)
        print(f'{name:>18}: ' + ', '.join(f'{k} {v:.0f}' for k, v in
                                          report['steps'][name].items()), flush=True)
    step('before configure')
    for transition in ('configure', 'activate', 'deactivate', 'cleanup'):
        getattr(node, f'trigger_{transition}')()
        step(f'after {transition}')
    node.trigger_shutdown()
    node.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    with open(args.output, 'w') as out:
        json.dump(report, out, indent=2)
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
