# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``ros2 run lseg_ros bench``: end-to-end latency and throughput of /lseg through ROS 2.

Publishes frames (synthetic sample frames, a folder of images or the image topic of a bag)
to the node's input topic at fixed rates and at peak, and measures, per phase:

* latency = mask received (wall clock) - input header stamp (wall clock at publication),
  p50/p90/p99/max, and jitter = standard deviation of the mask inter-arrival time;
* output fps, frames published vs masks received (= frames dropped on the way), the node's
  own dropped-frame counter and per-stage times (from /diagnostics);
* CPU use of the node process and of the machine, GPU utilisation and memory (nvidia-smi);
* start-up time when the bench spawns the node (spawn -> first mask).

``peak`` is closed loop: the next frame is published as soon as the previous mask arrives,
which gives the highest rate the node sustains without queueing.  Results are printed as a
table and written as JSON with the hardware and software versions.
"""

import argparse
import json
import os
from pathlib import Path
import platform
import shutil
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from lseg_ros.frame_slot import percentiles
from lseg_ros.node_process import start_node, stop_node

DEFAULT_RATES = '2,5,peak'


def load_frames(source: str, width: int, height: int, count: int, topic: Optional[str]):
    """Return a list of RGB frames from ``synthetic``, an image folder or a bag."""
    if source == 'synthetic':
        from lseg_ros.samples import sample_frames
        return list(sample_frames(count, height, width))
    path = Path(source)
    if path.is_dir() and not (path / 'metadata.yaml').exists() and not list(path.glob('*.mcap')):
        import cv2
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() in ('.png', '.jpg', '.jpeg', '.bmp'))
        frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files[:count]]
        if not frames:
            raise SystemExit(f'bench: error: no images in {source}')
        return frames
    from lseg_ros.bag import read_image_frames
    return read_image_frames(str(path), topic, count)


class Bench:
    """Publishes frames to the node and records what comes back."""

    def __init__(self, node, image_topic: str, node_name: str):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from diagnostic_msgs.msg import DiagnosticArray
        self.node = node
        self.Image = Image
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = node.create_publisher(Image, image_topic, qos)
        self.node_name = node_name.rstrip('/')
        node.create_subscription(Image, f'{self.node_name}/mask', self._on_mask,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.lock = threading.Lock()
        self.sent: Dict[int, float] = {}
        self.received: List[tuple] = []     # (stamp_ns, latency_ms, arrival monotonic)
        self.arrived = threading.Event()
        self.diagnostics: Dict[str, str] = {}
        self.node_pid: Optional[int] = None

    def _on_mask(self, msg) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            if stamp in self.sent:
                self.received.append((stamp, 1000.0 * (now - stamp / 1e9), time.monotonic()))
        self.arrived.set()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(self.node_name + ':') or \
                    status.name.startswith(self.node_name.lstrip('/') + ':'):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def publish(self, frame_msg) -> None:
        """Stamp with the wall clock and publish."""
        now = time.time()
        sec = int(now)
        frame_msg.header.stamp.sec = sec
        frame_msg.header.stamp.nanosec = int((now - sec) * 1e9)
        stamp = sec * 1_000_000_000 + frame_msg.header.stamp.nanosec
        with self.lock:
            self.sent[stamp] = now
        self.arrived.clear()
        self.pub.publish(frame_msg)

    def run_phase(self, msgs, rate: Optional[float], duration: float, timeout: float) -> Dict:
        """Publish for ``duration`` s at ``rate`` Hz (None: closed-loop peak)."""
        with self.lock:
            self.sent.clear()
            self.received.clear()
        node_before = self._node_counters()
        cpu = CpuSampler(self.node_pid)
        gpu = GpuSampler()
        start = time.monotonic()
        index = 0
        next_time = start
        while time.monotonic() - start < duration:
            self.publish(msgs[index % len(msgs)])
            index += 1
            if rate is None:
                self.arrived.wait(timeout)
            else:
                next_time += 1.0 / rate
                time.sleep(max(0.0, next_time - time.monotonic()))
        time.sleep(min(timeout, 2.0))        # let the last results arrive
        elapsed = time.monotonic() - start
        node_after = self._node_counters()
        with self.lock:
            received = list(self.received)
            sent = len(self.sent)
        latencies = [r[1] for r in received]
        arrivals = sorted(r[2] for r in received)
        gaps = np.diff(arrivals) * 1000.0 if len(arrivals) > 2 else np.array([])
        window = (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
        result = {
            'rate_hz': rate if rate is not None else 'peak',
            'duration_s': round(elapsed, 3), 'published': sent, 'masks': len(received),
            'dropped': sent - len(received),
            'node_dropped': node_after['dropped'] - node_before['dropped']
            if node_after and node_before else None,
            'output_fps': (len(arrivals) - 1) / window if window > 0 else 0.0,
            'latency_ms': percentiles(latencies),
            'jitter_ms': float(np.std(gaps)) if gaps.size else float('nan'),
            'node_stages_p50_ms': {k[len('stage_'):-len('_p50_ms')]: float(v)
                                   for k, v in self.diagnostics.items()
                                   if k.startswith('stage_')},
            'cpu': cpu.stop(), 'gpu': gpu.stop(),
        }
        return result

    def _node_counters(self) -> Optional[Dict[str, int]]:
        d = self.diagnostics
        if 'frames_dropped' not in d:
            return None
        return {'dropped': int(d['frames_dropped']), 'processed': int(d['frames_processed'])}


def find_node_pid() -> Optional[int]:
    """Return the PID of a running lseg_node process (for CPU accounting), if any."""
    import psutil
    for proc in psutil.process_iter(['pid', 'cmdline']):
        cmd = proc.info['cmdline'] or []
        if any(part.endswith('lseg_node') or part == 'lseg_ros.node' for part in cmd[:3]):
            return proc.info['pid']
    return None


class CpuSampler:
    """CPU use of a process (percent of one core) and of the machine over a phase."""

    def __init__(self, pid: Optional[int]):
        import psutil
        self.proc = psutil.Process(pid) if pid else None
        if self.proc:
            self.proc.cpu_percent(None)
        psutil.cpu_percent(None)

    def stop(self) -> Dict[str, float]:
        """Return the averages since construction."""
        import psutil
        out = {'system_percent': psutil.cpu_percent(None), 'cores': psutil.cpu_count()}
        if self.proc:
            try:
                out['node_percent_of_one_core'] = self.proc.cpu_percent(None)
                out['node_rss_mb'] = self.proc.memory_info().rss / 2**20
            except psutil.Error:
                pass
        return out


class GpuSampler:
    """Samples nvidia-smi utilisation and memory in the background (if there is a GPU)."""

    def __init__(self):
        self.samples: List[tuple] = []
        self.tool = shutil.which('nvidia-smi')
        self._stop = threading.Event()
        if self.tool:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run([self.tool, '--query-gpu=utilization.gpu,memory.used',
                                      '--format=csv,noheader,nounits'], capture_output=True,
                                     text=True, timeout=5).stdout.split('\n')[0]
                util, mem = (float(x) for x in out.split(','))
                self.samples.append((util, mem))
            except (ValueError, subprocess.SubprocessError, OSError):
                return
            self._stop.wait(0.5)

    def stop(self) -> Optional[Dict[str, float]]:
        """Return mean utilisation (%) and peak memory (MiB), or None without a GPU."""
        self._stop.set()
        if not self.samples:
            return None
        util = [s[0] for s in self.samples]
        return {'utilization_percent_mean': float(np.mean(util)),
                'memory_used_mb_max': float(max(s[1] for s in self.samples))}


def environment() -> Dict[str, str]:
    """Hardware and software versions for the JSON report."""
    import psutil
    info = {'python': platform.python_version(), 'platform': platform.platform(),
            'cpu': platform.processor() or platform.machine(), 'cpu_cores': psutil.cpu_count(),
            'memory_gb': round(psutil.virtual_memory().total / 2**30, 1),
            'ros_distro': os.environ.get('ROS_DISTRO', 'kilted (PyPI wheels)'),
            'rmw': os.environ.get('RMW_IMPLEMENTATION', 'default (Fast DDS)')}
    try:
        with open('/proc/cpuinfo') as f:
            info['cpu'] = next(line.split(':', 1)[1].strip() for line in f
                               if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    try:
        import torch
        info['torch'] = torch.__version__
        if torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name(0)
            info['cuda'] = torch.version.cuda
    except ImportError:
        pass
    if shutil.which('nvidia-smi'):
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version',
                              '--format=csv,noheader'], capture_output=True, text=True)
        info['nvidia_smi'] = out.stdout.strip()
    from lseg_ros import __version__
    info['lseg_ros'] = __version__
    return info


def spawn_node(args, image_topic: str, log_path: str) -> subprocess.Popen:
    """Start lseg_node as the launch file does, with the bench's settings."""
    params = {'checkpoint': args.checkpoint or '', 'device': args.device,
              'backend': args.backend, 'input_size': args.size, 'precision': args.precision,
              'input_qos': 'reliable', 'labels': args.labels, 'engine': args.engine}
    return start_node(params, {'image': image_topic}, log_path,
                      params_file=args.params_file)


def format_table(phases: List[Dict]) -> str:
    """Return the terminal table of all phases."""
    head = (f'{"rate":>6} {"pub":>5} {"masks":>5} {"drop":>5} {"fps":>6} {"p50":>8} {"p90":>8} '
            f'{"p99":>8} {"max":>8} {"jitter":>7} {"cpu%":>6} {"gpu%":>5}')
    lines = [head, '-' * len(head)]
    for p in phases:
        lat = p['latency_ms']
        gpu = p['gpu']['utilization_percent_mean'] if p['gpu'] else float('nan')
        cpu = p['cpu'].get('node_percent_of_one_core', float('nan'))
        lines.append(f'{str(p["rate_hz"]):>6} {p["published"]:>5} {p["masks"]:>5} '
                     f'{p["dropped"]:>5} {p["output_fps"]:>6.1f} {lat["p50"]:>8.1f} '
                     f'{lat["p90"]:>8.1f} {lat["p99"]:>8.1f} {lat["max"]:>8.1f} '
                     f'{p["jitter_ms"]:>7.1f} {cpu:>6.0f} {gpu:>5.0f}')
    lines.append('latency in ms: input header stamp -> mask received; cpu% of one core '
                 '(node process)')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(prog='bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--spawn', action='store_true',
                        help='start a node (needs --checkpoint) instead of using a running one')
    parser.add_argument('--checkpoint', help='checkpoint for --spawn')
    parser.add_argument('--params-file', help='parameters file for --spawn')
    parser.add_argument('--backend', default='auto')
    parser.add_argument('--engine', default='')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--precision', default='auto')
    parser.add_argument('--size', type=int, default=480, help='input_size of a spawned node')
    parser.add_argument('--labels', default='dog, grass, road, sky, other')
    parser.add_argument('--node', default='/lseg', help='name of the node (default /lseg)')
    parser.add_argument('--image-topic', default=None,
                        help='topic the node subscribes to (default: /image_raw, or a private '
                             'topic with --spawn)')
    parser.add_argument('--source', default='synthetic',
                        help='synthetic, a folder of images, or a rosbag2 bag')
    parser.add_argument('--bag-topic', help='image topic to read from a bag source')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--frames', type=int, default=20, help='distinct frames to cycle')
    parser.add_argument('--rates', default=DEFAULT_RATES,
                        help='comma-separated rates in Hz and/or "peak" '
                             f'(default {DEFAULT_RATES})')
    parser.add_argument('--duration', type=float, default=10.0, help='seconds per phase')
    parser.add_argument('--warmup', type=float, default=3.0, help='seconds of warm-up frames')
    parser.add_argument('--timeout', type=float, default=30.0,
                        help='seconds to wait for a mask (peak phase) / for the node')
    parser.add_argument('--output', default='bench.json', help='JSON report to write')
    return parser


def main(argv=None) -> int:
    """Run the benchmark."""
    args = build_parser().parse_args(argv)
    try:
        rates = [None if r.strip() == 'peak' else float(r) for r in args.rates.split(',')]
    except ValueError:
        print(f'bench: error: bad --rates {args.rates!r}', file=sys.stderr)
        return 2
    if args.spawn and not args.checkpoint and not args.params_file:
        print('bench: error: --spawn needs --checkpoint or --params-file', file=sys.stderr)
        return 2
    image_topic = args.image_topic or ('/lseg_bench/image' if args.spawn else '/image_raw')
    frames = load_frames(args.source, args.width, args.height, args.frames, args.bag_topic)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from lseg_ros.conversions import to_image_msg
    from std_msgs.msg import Header

    rclpy.init()
    node = Node('lseg_bench')
    bench = Bench(node, image_topic, args.node)
    msgs = [to_image_msg(f, 'rgb8', Header(frame_id='bench')) for f in frames]
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    proc = None
    node_log = str(Path(args.output).with_suffix('.node.log'))
    report = {'config': vars(args), 'image_topic': image_topic,
              'frame_size': list(frames[0].shape[:2]), 'environment': environment(),
              'phases': []}
    try:
        start = time.monotonic()
        if args.spawn:
            proc = spawn_node(args, image_topic, node_log)
        # wait until the node answers (start-up time with --spawn)
        deadline = start + max(args.timeout, 600.0 if args.spawn else args.timeout)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                print(Path(node_log).read_text(), file=sys.stderr)
                print(f'bench: error: the node exited with code {proc.returncode}',
                      file=sys.stderr)
                return 1
            bench.publish(msgs[0])
            if bench.arrived.wait(0.5) and bench.received:
                break
        else:
            print(f'bench: error: no mask from {args.node} on {image_topic} within the '
                  'timeout (is the node running and subscribed to this topic?)',
                  file=sys.stderr)
            return 1
        report['startup_to_first_mask_s'] = time.monotonic() - start if args.spawn else None
        bench.node_pid = proc.pid if proc is not None else find_node_pid()
        bench.run_phase(msgs, None, args.warmup, args.timeout)          # warm-up, not reported
        for rate in rates:
            phase = bench.run_phase(msgs, rate, args.duration, args.timeout)
            report['phases'].append(phase)
            print(f'phase {phase["rate_hz"]}: {phase["masks"]} masks, '
                  f'p50 {phase["latency_ms"]["p50"]:.1f} ms', flush=True)
        report['node_diagnostics'] = bench.diagnostics
    finally:
        if proc is not None:
            stop_node(proc)
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    print(format_table(report['phases']))
    if report.get('startup_to_first_mask_s') is not None:
        print(f'start-up (spawn -> first mask): {report["startup_to_first_mask_s"]:.1f} s; '
              f'node model start-up {bench.diagnostics.get("startup_s", "?")} s')
    stages = report['phases'][-1]['node_stages_p50_ms'] if report['phases'] else {}
    if stages:
        print('node stages p50 (ms): ' + ', '.join(f'{k} {v:.2f}' for k, v in stages.items()))
    Path(args.output).write_text(json.dumps(report, indent=2, default=str))
    print(f'wrote {args.output}')
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == '__main__':
    entry()
