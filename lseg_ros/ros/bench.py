# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``ros2 run lseg_ros bench``: end-to-end latency and throughput of /lseg through ROS 2.

Publishes frames (synthetic sample frames, a folder of images or the image topic of a bag)
to the node's input topic at fixed rates and at peak, and measures, per phase:

* latency = mask received (wall clock) - input header stamp (wall clock at publication),
  p50/p90/p99/max, and jitter = standard deviation of the mask inter-arrival time;
* output fps, frames published vs masks received (= frames dropped on the way), the node's
  own dropped-frame counter and per-stage times (from /diagnostics);
* CPU use of the node process and of the machine, GPU utilisation and memory (NVML);
* start-up time when the bench spawns the node (spawn -> first mask).

``peak`` is closed loop: the next frame is published as soon as the previous mask arrives,
which gives the highest rate the node sustains without queueing.  Results are printed as a
table and written as JSON with the hardware and software versions.

``--cameras N`` drives a node that serves N cameras (parameter ``cameras``: cam0 ...
cam<N-1>) with N streams of the same frames, published together at each tick (a
synchronised rig; ``peak``: the next tick when every camera's mask came back), and reports
each camera's phases and their total (frames/s summed, latency over all cameras, drops);
``--batch-window-ms 0`` spawns the node without batching (one frame per encoder call), so
two runs give the batching gain.

``--transport-baseline`` first runs the same phases against an echo node with no model
(:mod:`lseg_ros.ros.transport_echo`: same QoS, a mask-sized answer per frame), so the table shows
what the transport costs and what the node adds.  ``--pipeline-reference`` measures
``LsegPipeline.segment`` on the same frames in the bench's own process (the rate a node
could reach with a free transport).  The bench, the spawned node and the echo node use the
package's Fast DDS profile (``--dds-profile``); a phase in which no mask came back is an
error with hints, not a table of NaN.
"""

import os
from pathlib import Path
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from lseg_ros.deploy.report import host, nvml_device, nvml_identity
from lseg_ros.ros.frame_slot import percentiles
from lseg_ros.ros.node_process import start_node, start_process

#: The launch file's (and the README's) camera topic.
DEFAULT_IMAGE_TOPIC = '/camera/image_raw'
NO_MASK_HINT = (
    'check that {node} subscribes to {topic} (ros2 topic info -v {topic}), that its '
    'input_qos suits this publisher (best effort by default), and that publisher and node '
    'run with the same Fast DDS profile (config/fastdds.xml; bench --dds-profile): with '
    'Fast DDS defaults, frames larger than 512 KiB go over UDP fragments and best-effort '
    'readers lose most of them')


def load_frames(source: str, width: int, height: int, count: int, topic: Optional[str]):
    """Return a list of RGB frames from ``synthetic``, an image folder or a bag."""
    if source == 'synthetic':
        from lseg_ros.core.samples import sample_frames
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
    from lseg_ros.formats.bag import read_image_frames
    return read_image_frames(str(path), topic, count)


class Bench:
    """Publishes frames to the node and records what comes back."""

    def __init__(self, node, image_topic: str, node_name: str, camera: Optional[str] = None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from diagnostic_msgs.msg import DiagnosticArray
        self.node = node
        self.Image = Image
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = node.create_publisher(Image, image_topic, qos)
        self.node_name = node_name.rstrip('/')
        self.camera = camera                    # a camera of a multi-camera node
        prefix = f'{self.node_name}/{camera}' if camera else self.node_name
        # Raw: only the header is read, so the bench's own conversion of the masks to
        # Python objects (one after the other, for several cameras) is not in the latency.
        node.create_subscription(Image, f'{prefix}/mask', self._on_mask,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
                                 raw=True)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.lock = threading.Lock()
        self.sent: Dict[int, float] = {}
        self.received: List[tuple] = []     # (stamp_ns, latency_ms, arrival monotonic)
        self.arrived = threading.Event()
        self.diagnostics: Dict[str, str] = {}
        self.node_pid: Optional[int] = None
        self._node_before: Optional[Dict[str, int]] = None
        self.latencies: List[float] = []       # of the last phase, ms

    def _on_mask(self, raw: bytes) -> None:
        from lseg_ros.ros.conversions import image_from_serialized, UnreadableImage
        now = time.time()
        msg = image_from_serialized(raw)    # as the node reads its input: no pixel copy
        if isinstance(msg, UnreadableImage):
            return
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            if stamp in self.sent:
                self.received.append((stamp, 1000.0 * (now - stamp / 1e9), time.monotonic()))
        self.arrived.set()

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if not (status.name.startswith(self.node_name + ':') or
                    status.name.startswith(self.node_name.lstrip('/') + ':')):
                continue
            values = {kv.key: kv.value for kv in status.values}
            if self.camera is None or values.get('camera') == self.camera:
                self.diagnostics = values

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
        return run_cameras_phase([self], msgs, rate, duration, timeout)[0]

    def start_phase(self) -> None:
        """Forget what earlier phases sent and received; note the node's counters."""
        with self.lock:
            self.sent.clear()
            self.received.clear()
        self._node_before = self._node_counters()

    def phase_result(self, rate: Optional[float], elapsed: float, cpu, gpu) -> Dict:
        """Return the phase's measurements (``cpu``/``gpu``: the samplers' results)."""
        node_before, node_after = self._node_before, self._node_counters()
        with self.lock:
            received = list(self.received)
            sent = len(self.sent)
        latencies = self.latencies = [r[1] for r in received]
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
            'node_latency_p50_ms': float(self.diagnostics.get('latency_p50_ms', 'nan')),
            'cpu': cpu, 'gpu': gpu,
        }
        return result

    def _node_counters(self) -> Optional[Dict[str, int]]:
        d = self.diagnostics
        if 'frames_dropped' not in d:
            return None
        return {'dropped': int(d['frames_dropped']), 'processed': int(d['frames_processed'])}


def run_cameras_phase(benches: List[Bench], msgs, rate: Optional[float], duration: float,
                      timeout: float) -> List[Dict]:
    """Publish to every camera together for ``duration`` s at ``rate`` Hz (None: peak).

    At peak the next frames go out when every camera's mask came back (or ``timeout``).
    Returns each camera's phase (CPU and GPU use are the whole phase's).
    """
    for bench in benches:
        bench.start_phase()
    cpu = CpuSampler(benches[0].node_pid)
    gpu = GpuSampler()
    start = time.monotonic()
    index = 0
    next_time = start
    while time.monotonic() - start < duration:
        for bench in benches:
            bench.publish(msgs[index % len(msgs)])
        index += 1
        if rate is None:
            deadline = time.monotonic() + timeout
            for bench in benches:
                bench.arrived.wait(max(0.0, deadline - time.monotonic()))
        else:
            next_time += 1.0 / rate
            time.sleep(max(0.0, next_time - time.monotonic()))
    time.sleep(min(timeout, 2.0))        # let the last results arrive
    elapsed = time.monotonic() - start
    cpu_use, gpu_use = cpu.stop(), gpu.stop()
    return [bench.phase_result(rate, elapsed, cpu_use, gpu_use) for bench in benches]


def total_phase(phases: List[Dict], benches: List[Bench]) -> Dict:
    """Return the cameras' phases of one rate summed (latency over every camera's masks)."""
    first = phases[0]
    latencies = [value for bench in benches for value in bench.latencies]
    return dict(first, published=sum(p['published'] for p in phases),
                masks=sum(p['masks'] for p in phases),
                dropped=sum(p['dropped'] for p in phases),
                node_dropped=sum(p['node_dropped'] or 0 for p in phases),
                output_fps=sum(p['output_fps'] for p in phases),
                latency_ms=percentiles(latencies),
                jitter_ms=max(p['jitter_ms'] for p in phases),
                node_latency_p50_ms=max(p['node_latency_p50_ms'] for p in phases),
                segmented_fraction=sum(p['masks'] for p in phases) /
                max(1, sum(p['published'] for p in phases)))


def camera_names(count: int) -> List[str]:
    """Return the names of ``count`` bench cameras: cam0, cam1, ..."""
    return [f'cam{index}' for index in range(count)]


def find_node_pid() -> Optional[int]:
    """Return the PID of a running lseg_node process (for CPU accounting), if any."""
    import psutil
    for proc in psutil.process_iter(['pid', 'cmdline']):
        cmd = proc.info['cmdline'] or []
        if any(part.endswith('lseg_node') or part == 'lseg_ros.ros.node' for part in cmd[:3]):
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
    """Samples utilisation and memory of GPU 0 through NVML in the background (if there is one).

    NVML (``nvidia-ml-py``) reads the counters that nvidia-smi prints, in this process; without
    an NVIDIA GPU, driver or ``pynvml`` nothing is sampled and :meth:`stop` returns None.
    """

    def __init__(self, interval: float = 0.5):
        self.samples: List[tuple] = []
        self.interval = interval
        self._stop = threading.Event()
        self._device = nvml_device(0)
        self.thread = None
        if self._device is not None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _run(self) -> None:
        pynvml, handle = self._device
        while not self._stop.is_set():
            try:
                util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20     # MiB
            except pynvml.NVMLError:
                return
            self.samples.append((float(util), float(memory)))
            self._stop.wait(self.interval)

    def stop(self) -> Optional[Dict[str, float]]:
        """Return mean utilisation (%) and peak memory (MiB), or None without a GPU."""
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
            self.thread = None
            self._device[0].nvmlShutdown()
        if not self.samples:
            return None
        util = [s[0] for s in self.samples]
        return {'utilization_percent_mean': float(np.mean(util)),
                'memory_used_mb_max': float(max(s[1] for s in self.samples))}


def environment() -> Dict[str, str]:
    """Hardware and software versions for the JSON report (see :mod:`lseg_ros.deploy.report`)."""
    import psutil
    info = dict(host(), cpu_cores=psutil.cpu_count(),
                memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
                ros_distro=os.environ.get('ROS_DISTRO', 'kilted (PyPI wheels)'),
                rmw=os.environ.get('RMW_IMPLEMENTATION', 'default (Fast DDS)'))
    try:
        import torch
        info['torch'] = torch.__version__
        if torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name(0)
            info['cuda'] = torch.version.cuda
    except ImportError:
        pass
    gpu = nvml_identity(0)
    if gpu:
        info['nvidia_smi'] = gpu            # key kept from the reports written with nvidia-smi
    from lseg_ros import __version__
    info['lseg_ros'] = __version__
    return info


def spawn_node(args, name: str, image_topics: Dict[str, str],
               log_path: str) -> subprocess.Popen:
    """Start lseg_node as the launch file does, with the bench's settings.

    ``image_topics``: the node's input topic -> the bench's (``image`` for one camera,
    ``cam<k>/image_raw`` for several).
    """
    params = {'checkpoint': args.checkpoint or '', 'device': args.device,
              'backend': args.backend, 'input_size': args.size, 'precision': args.precision,
              'input_qos': args.input_qos, 'labels': args.labels, 'engine': args.engine}
    if args.cameras:
        params['cameras'] = ','.join(camera_names(args.cameras))
    if args.batch_window_ms is not None:
        params['batch_window_ms'] = float(args.batch_window_ms)
    return start_node(params, image_topics, log_path, name=name,
                      params_file=args.params_file, dds_profile=args.dds_profile)


def spawn_echo(args, name: str, image_topic: str, log_path: str) -> subprocess.Popen:
    """Start the transport echo node (no model) with the node's input QoS."""
    command = [sys.executable, '-m', 'lseg_ros.ros.transport_echo', '--name', name,
               '--image-topic', image_topic, '--input-qos', args.input_qos]
    return start_process(command, log_path, args.dds_profile)


def pipeline_reference(args, frames, duration: float) -> Dict[str, float]:
    """Frames per second of ``LsegPipeline.segment`` (mask only) in this process."""
    from lseg_ros.core.backends.factory import user_options
    from lseg_ros.core.pipeline import LsegPipeline
    pipeline = LsegPipeline.from_checkpoint(
        args.checkpoint, backend=args.backend, device=args.device, precision=args.precision,
        input_size=args.size, labels=args.labels, engine=args.engine or None,
        **user_options(args.backend))
    for frame in frames[:3]:
        pipeline.segment(frame)                                    # warm-up
    times = []
    start = time.monotonic()
    while time.monotonic() - start < duration:
        t0 = time.perf_counter()
        pipeline.segment(frames[len(times) % len(frames)])
        times.append(1000.0 * (time.perf_counter() - t0))
    pipeline.backend.close()
    return {'frames': len(times), 'fps': len(times) / (time.monotonic() - start),
            'segment_ms': percentiles(times), **pipeline.describe()}


def check_phases(phases: List[Dict], node: str, topic: str) -> List[str]:
    """Return an error line for every phase in which no mask came back."""
    return [f'phase {p["rate_hz"]}: 0 of {p["published"]} frames produced a mask; '
            + NO_MASK_HINT.format(node=node, topic=topic)
            for p in phases if p['masks'] == 0]


def wait_for_first_mask(bench: 'Bench', msgs, proc, log_path: str, timeout: float,
                        what: str, topic: str) -> Optional[str]:
    """Publish until a mask comes back; return an error line (None when one came)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            print(Path(log_path).read_text(), file=sys.stderr)
            return f'{what} exited with code {proc.returncode}'
        bench.publish(msgs[0])
        if bench.arrived.wait(0.5) and bench.received:
            return None
    return (f'no mask from {what} on {topic} within {timeout:g} s: '
            + NO_MASK_HINT.format(node=what, topic=topic))


def run_phases(bench: 'Bench', msgs, rates, args) -> List[Dict]:
    """Warm up, then run one phase per rate; print a line per phase."""
    bench.run_phase(msgs, None, args.warmup, args.timeout)          # warm-up, not reported
    phases = []
    for rate in rates:
        phase = bench.run_phase(msgs, rate, args.duration, args.timeout)
        phases.append(phase)
        print(f'phase {phase["rate_hz"]}: {phase["masks"]} of {phase["published"]} masks, '
              f'p50 {phase["latency_ms"]["p50"]:.1f} ms', flush=True)
    return phases


def run_camera_phases(benches: List[Bench], msgs, rates, args):
    """Warm up, then one phase per rate for every camera together.

    Returns the total of each phase and each camera's phases by name.
    """
    run_cameras_phase(benches, msgs, None, args.warmup, args.timeout)     # warm-up
    totals, cameras = [], {bench.camera: [] for bench in benches}
    for rate in rates:
        phases = run_cameras_phase(benches, msgs, rate, args.duration, args.timeout)
        for bench, phase in zip(benches, phases):
            cameras[bench.camera].append(phase)
        total = total_phase(phases, benches)
        totals.append(total)
        print(f'phase {total["rate_hz"]}: {total["masks"]} of {total["published"]} masks '
              f'({len(benches)} cameras), {total["output_fps"]:.1f} frames/s, p50 '
              f'{total["latency_ms"]["p50"]:.1f} ms', flush=True)
    return totals, cameras


class BenchError(Exception):
    """A condition that ends the benchmark early (said in one line)."""
