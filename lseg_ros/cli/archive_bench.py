# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``archive_bench``: frames/s of ``segment_bags`` (Ray) against ``segment_bag`` on the same bags.

Generates K sample bags (``make_sample_bag``'s stream: a raw and a jpeg topic, default
640x480 at 30 Hz, mcap), segments them with ``segment_bag`` (one process, one model load,
the folder as input) and with ``segment_bags`` (local Ray cluster), samples the GPU's
utilisation through NVML while each runs, compares the output bags message for message and
writes one JSON: frames/s of both (steady: first to last frame; wall: with start-up), the
ratio, per-stage costs of the Ray run and GPU utilisation.  Without --checkpoint an
official-layout ViT-L/16 checkpoint with generated (untrained) weights is used.
"""

import argparse
import hashlib
import json
import os
from pathlib import Path
import re
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from lseg_ros.cli.common import run_main, UsageError
from lseg_ros.core.interrupts import write_text


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(
        prog='archive_bench', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint',
                        help='checkpoint (default: generated official-layout ViT-L/16 weights)')
    parser.add_argument('--workdir', default='archive_bench',
                        help='folder for the bags and outputs (default: archive_bench)')
    parser.add_argument('--bags', type=int, default=4, help='number of bags (default 4)')
    parser.add_argument('--frames', type=int, default=600,
                        help='frames per topic and bag (default 600: 1200 frames a bag)')
    parser.add_argument('--image-size', default='480x640', help='HxW of the frames')
    parser.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    parser.add_argument('--labels', default='person, car, road, sky, building, tree, other')
    parser.add_argument('--backend', default='torch')
    parser.add_argument('--precision', default='fp16')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--size', type=int, default=480, help='network input long side')
    parser.add_argument('--num-actors', type=int, default=1)
    parser.add_argument('--gpus-per-actor', type=float, default=None)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--decode-workers', type=int, default=4)
    parser.add_argument('--skip-single', action='store_true',
                        help='do not run segment_bag (only the Ray run)')
    parser.add_argument('--no-compare', action='store_true',
                        help='do not compare the output bags')
    parser.add_argument('--output', default='archive_bench.json', help='the JSON report')
    return parser


class GpuSampler:
    """Sample GPU utilisation and memory through NVML every ``period`` s in a thread."""

    def __init__(self, period: float = 0.2):
        self.period = period
        self.samples: List[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from lseg_ros.deploy.report import nvml_device
        found = nvml_device(0)
        if found is None:
            return
        pynvml, handle = found
        try:
            while not self._stop.wait(self.period):
                rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                self.samples.append((rates.gpu, memory.used / 2**20))
        finally:
            pynvml.nvmlShutdown()

    def __enter__(self) -> 'GpuSampler':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> Optional[Dict]:
        """Mean, median and busy fraction of utilisation; peak memory (None without NVML)."""
        if not self.samples:
            return None
        util = sorted(s[0] for s in self.samples)
        return {'util_mean_pct': round(sum(util) / len(util), 1),
                'util_p50_pct': util[len(util) // 2],
                'busy_fraction': round(sum(u > 0 for u in util) / len(util), 3),
                'memory_peak_mib': round(max(s[1] for s in self.samples)),
                'samples': len(util)}


def make_bags(folder: Path, count: int, frames: int, height: int, width: int,
              storage: str) -> List[Path]:
    """Write (or reuse) ``count`` sample bags of ``frames`` frames each."""
    from lseg_ros.formats.sample_bag import write_sample_bag
    paths = []
    for index in range(count):
        path = folder / f'bag_{index:03d}_{frames}x{height}x{width}'
        if not path.exists():
            write_sample_bag(path, frames=frames, rate_hz=30.0, height=height, width=width,
                             storage=storage, camera_info=True)
        paths.append(path)
    return paths


def digest_messages(path: Path) -> List[tuple]:
    """Return ``(topic, bag time, sha1 of bytes)`` of every message of a bag."""
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        return [(c.topic, t, hashlib.sha1(bytes(d)).hexdigest())
                for c, t, d in reader.messages()]


def compare(first: Path, second: Path) -> Dict:
    """Return how many messages of two bags differ (same topic, time and bytes expected)."""
    a, b = digest_messages(first), digest_messages(second)
    differ = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    topics = sorted({x[0] for x, y in zip(a, b) if x != y})
    return {'messages': len(a), 'differing': differ, 'differing_topics': topics}


def main(args: argparse.Namespace) -> int:
    """Run the benchmark."""
    match = re.fullmatch(r'(\d+)x(\d+)', args.image_size)
    if not match:
        raise UsageError(f'--image-size must be HxW, got {args.image_size!r}')
    height, width = int(match.group(1)), int(match.group(2))
    work = Path(args.workdir)
    checkpoint = args.checkpoint
    if not checkpoint:
        from lseg_ros.core.model.synthetic import cached_reference_checkpoint
        from lseg_ros.core.model.variants import VIT_L16
        checkpoint = cached_reference_checkpoint(VIT_L16)
    print(f'archive_bench: writing {args.bags} bag(s) of {args.frames} frames', file=sys.stderr)
    bags = make_bags(work / 'bags', args.bags, args.frames, height, width, args.storage)
    common = ['--checkpoint', checkpoint, '--labels', args.labels, '--backend', args.backend,
              '--precision', args.precision, '--device', args.device, '--size', str(args.size),
              '-t', '/camera/image_raw', '-t', '/camera/image_raw/compressed',
              '--copy-topic', '/camera/camera_info', '--no-progress', '--overwrite']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get('PYTHONPATH', '')]))
    result: Dict = {'config': {**vars(args), 'checkpoint': checkpoint},
                    'bags': [str(p) for p in bags]}
    if not args.skip_single:
        print('archive_bench: segment_bag (one process)', file=sys.stderr)
        start = time.monotonic()
        with GpuSampler() as gpu:
            out = subprocess.run([sys.executable, '-m', 'lseg_ros.cli.segment_bag', '--input',
                                  str(work / 'bags'), '--output', str(work / 'single')] + common,
                                 capture_output=True, text=True, env=env)
        wall = time.monotonic() - start
        if out.returncode:
            raise RuntimeError(f'segment_bag failed: {out.stderr[-2000:]}')
        runs = [(int(f), float(s)) for f, s in re.findall(
            r'segmented (\d+) frame\(s\) of .* in ([\d.]+) s', out.stdout)]
        frames = sum(f for f, _ in runs)
        seconds = sum(s for _, s in runs)
        # the first bag's time includes the warm-up (graph capture, compilation where the
        # encoder is compiled), the others' do not
        later = runs[1:] or runs
        result['segment_bag'] = {'frames': frames, 'seconds': seconds, 'wall_s': round(wall, 2),
                                 'frames_per_s': round(frames / seconds, 2),
                                 'steady_frames_per_s': round(sum(f for f, _ in later)
                                                              / sum(s for _, s in later), 2),
                                 'wall_frames_per_s': round(frames / wall, 2),
                                 'per_bag': [{'frames': f, 'seconds': s} for f, s in runs],
                                 'gpu': gpu.summary()}
    print('archive_bench: segment_bags (Ray)', file=sys.stderr)
    report = work / 'segment_bags.json'
    ray_args = ['--input', str(work / 'bags'), '--output', str(work / 'ray'),
                '--num-actors', str(args.num_actors), '--batch-size', str(args.batch_size),
                '--decode-workers', str(args.decode_workers), '--report', str(report)]
    if args.gpus_per_actor is not None:
        ray_args += ['--gpus-per-actor', str(args.gpus_per_actor)]
    manifest = work / 'ray' / 'segment_bags_manifest.json'
    if manifest.exists():
        manifest.unlink()                         # measure every bag, not a resumed run
    start = time.monotonic()
    with GpuSampler() as gpu:
        out = subprocess.run([sys.executable, '-m', 'lseg_ros.cli.segment_bags']
                             + ray_args + common, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if out.returncode:
        raise RuntimeError(f'segment_bags failed: {out.stdout[-1000:]}{out.stderr[-3000:]}')
    ray_report = json.loads(report.read_text())
    result['segment_bags'] = {'wall_s': round(wall, 2), 'gpu': gpu.summary(),
                              'report': ray_report}
    single = result.get('segment_bag')
    if single:
        steady = ray_report.get('steady_frames_per_s') or ray_report['frames_per_s']
        # steady against steady: without start-up and compilation on either side
        result['ratio_steady'] = round(steady / single['steady_frames_per_s'], 2)
        result['ratio_steady_vs_all_bags'] = round(steady / single['frames_per_s'], 2)
        result['ratio_wall'] = round(ray_report['frames'] / wall / single['wall_frames_per_s'],
                                     2)
        if not args.no_compare:
            result['compare'] = {p.name: compare(work / 'single' / p.name, work / 'ray' / p.name)
                                 for p in bags}
    write_text(args.output, json.dumps(result, indent=1, default=str) + '\n')
    print(json.dumps({k: result.get(k) for k in ('ratio_steady', 'ratio_wall')}))
    print(f'archive_bench: report written to {args.output}', file=sys.stderr)
    return 0


def entry(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())
