# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Segment a bag archive on Ray Data (the library of ``segment_bags``).

:func:`plan_archive` finds the bags (bags, folders of bags, list files) and names their
outputs; :class:`Manifest` records finished bags so a second run skips them; :func:`run_archive`
builds the Ray Data pipeline of :mod:`lseg_ros.archive.stages` (decode tasks -> GPU actor
pool -> encode tasks), streams its rows to the driver and writes each output bag in bag order
through :class:`~lseg_ros.formats.bag_segmenter.OutputBag`, the writer of ``segment_bag``.
Every output bag is written under a temporary name and renamed when complete.
"""

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from lseg_ros.archive import stages
from lseg_ros.core.errors import LsegError
from lseg_ros.core.interrupts import staged_path, write_text
from lseg_ros.formats import bag
from lseg_ros.formats.bag_segmenter import output_request, OutputBag

LOG = logging.getLogger('segment_bags')

MANIFEST = 'segment_bags_manifest.json'
#: Options that change the output bags (the manifest's options hash covers them).
OUTPUT_OPTIONS = ('checkpoint', 'labels', 'backend', 'device', 'precision', 'size', 'engine',
                  'onnx', 'image_topics', 'copy_topics', 'storage', 'confidence',
                  'confidence_encoding', 'overlay', 'alpha', 'feature_stride', 'max_frames',
                  'max_pixels', 'skip_bad_frames')


# --------------------------------------------------------------------------------- plan
def expand_inputs(inputs: Sequence[str]) -> List[Path]:
    """Return the bags of ``inputs``: bags, folders of bags and list files (one path a line).

    A list file is a ``.txt`` or ``.list`` file; blank lines and ``#`` comments are ignored,
    relative paths are relative to the file's folder.
    """
    bags: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and path.suffix in ('.txt', '.list'):
            for line in path.read_text().splitlines():
                line = line.split('#', 1)[0].strip()
                if line:
                    entry = Path(line) if Path(line).is_absolute() else path.parent / line
                    bags.extend(bag.find_bags(entry))
        else:
            bags.extend(bag.find_bags(path))
    unique: List[Path] = []
    seen = set()
    for found in bags:
        key = found.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(found)
    return unique


def plan_archive(inputs: Sequence[str], output: str) -> List[Tuple[Path, Path]]:
    """Return ``(input bag, output bag)`` pairs: every bag goes to ``output/<its name>``."""
    out = Path(output)
    if bag.is_bag(out) or (out.exists() and not out.is_dir()):
        raise LsegError(f'--output must be a folder (it gets one bag per input): {out}')
    jobs = []
    names: Dict[str, Path] = {}
    for source in expand_inputs(inputs):
        name = source.stem if source.is_file() else source.name
        if name in names:
            raise LsegError(f'two input bags are named {name!r} ({names[name]} and {source}); '
                            'their outputs would collide')
        names[name] = source
        jobs.append((source, out / name))
    if not jobs:
        raise LsegError('no input bags')
    return jobs


def options_hash(config: Dict) -> str:
    """Return a short hash of the options that change the output bags."""
    chosen = {key: config.get(key) for key in OUTPUT_OPTIONS}
    checkpoint = config.get('checkpoint')
    if checkpoint and os.path.exists(checkpoint):
        stat = os.stat(checkpoint)
        chosen['checkpoint_file'] = [stat.st_size, stat.st_mtime_ns]
    text = json.dumps(chosen, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(path: Path) -> Dict:
    """Return the size and the newest modification time of a bag (file or directory)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob('*') if p.is_file()]
    return {'size': sum(p.stat().st_size for p in files),
            'mtime_ns': max((p.stat().st_mtime_ns for p in files), default=0)}


class Manifest:
    """The finished bags of an output folder (``segment_bags_manifest.json``).

    One entry per input bag (its resolved path): output, size, newest mtime, options hash,
    frames.  A bag is skipped when its entry matches and its output exists.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / MANIFEST
        self.entries: Dict[str, Dict] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text()).get('bags', {})
            except (ValueError, AttributeError):
                LOG.warning('%s is not readable JSON; starting a new manifest', self.path)

    def finished(self, source: Path, target: Path, digest: str) -> bool:
        """Whether ``source`` was segmented to ``target`` with these options and is unchanged."""
        entry = self.entries.get(str(Path(source).resolve()))
        return (entry is not None and entry.get('options') == digest
                and entry.get('output') == str(Path(target).resolve())
                and bag.is_bag(target) and {k: entry.get(k) for k in ('size', 'mtime_ns')}
                == fingerprint(source))

    def record(self, source: Path, target: Path, digest: str, frames: int) -> None:
        """Record a finished bag and save the manifest (atomically)."""
        self.entries[str(Path(source).resolve())] = dict(
            output=str(Path(target).resolve()), options=digest, frames=frames,
            finished=time.strftime('%Y-%m-%dT%H:%M:%S%z'), **fingerprint(source))
        write_text(self.path, json.dumps({'version': 1, 'bags': self.entries}, indent=1,
                                         sort_keys=True) + '\n')


# ------------------------------------------------------------------------------- writing
class _BagState:
    """The driver's side of one bag: rows waiting for their turn and the open output."""

    def __init__(self, number: int, source: Path, target: Path):
        self.number = number
        self.source = source
        self.target = target
        self.pending: Dict[int, Tuple[str, Dict]] = {}
        self.next = 0
        self.stack: Optional[contextlib.ExitStack] = None
        self.output: Optional[OutputBag] = None
        self.frames_total = 0
        self.done = False
        self.error: Optional[str] = None
        self.seconds = {'decode': 0.0, 'inference': 0.0, 'encode': 0.0, 'write': 0.0}
        self.started = time.monotonic()

    @property
    def frames(self) -> int:
        return sum(self.output.counts.values()) if self.output else 0


class ArchiveWriter:
    """Write each bag's rows in order (rows arrive in any order) to its staged output bag."""

    def __init__(self, jobs: Dict[int, Tuple[Path, Path]], config: Dict, manifest: Manifest,
                 digest: str, progress=None):
        self.config = config
        self.manifest = manifest
        self.digest = digest
        self.bags = {i: _BagState(i, s, t) for i, (s, t) in jobs.items()}
        self.announcement = None
        self.request = output_request(config['confidence'], config['overlay'],
                                      config['alpha'], config['feature_stride'])
        self.progress = progress
        self.finished: List[_BagState] = []
        self.failed: List[_BagState] = []
        self.first_frame: Optional[float] = None     # monotonic times of the first and
        self.last_frame: Optional[float] = None      # the last frame written

    def add_batch(self, batch: Dict) -> None:
        """Take a batch of rows from the pipeline and write what is due."""
        touched = set()
        for number, seq, kind, item, note in zip(batch['bag'], batch['seq'], batch['kind'],
                                                 batch['item'], batch['announcement']):
            if self.announcement is None and len(note):
                self.announcement = stages.loads(note)
            state = self.bags[int(number)]
            if state.done:
                continue
            state.pending[int(seq)] = (str(kind), stages.loads(item))
            touched.add(state.number)
        if self.announcement is not None:
            for number in sorted(touched):
                self._drain(self.bags[number])

    def _drain(self, state: _BagState) -> None:
        try:
            while not state.done and state.next in state.pending:
                kind, item = state.pending.pop(state.next)
                state.next += 1
                self._write(state, kind, item)
        except (LsegError, OSError) as error:
            self._fail(state, str(error))

    def _write(self, state: _BagState, kind: str, item: Dict) -> None:
        for stage, key in (('decode', 'decode_s'), ('inference', 'infer_s'),
                           ('encode', 'encode_s')):
            state.seconds[stage] += item.get(key, 0.0)
        clock = time.perf_counter()
        if kind in (stages.MSG, stages.END):
            for message in item['before']:       # copied topics and bad frames before it
                state.output.add(self.announcement, message['topic'], message['timestamp'],
                                 message['data'], message['frame'])
        if kind == stages.START:
            self._open(state, item)
        elif kind == stages.MSG and 'topic' in item:
            frame = item['frame']
            state.output.add(self.announcement, item['topic'], item['timestamp'],
                             item['data'], frame, item.get('outputs', ()))
            self.last_frame = time.monotonic()
            if self.first_frame is None:
                self.first_frame = self.last_frame
            if self.progress is not None:
                self.progress.update(1)
        elif kind == stages.END:
            state.output.finish(self.announcement, item['start_time'])
            state.seconds['write'] += time.perf_counter() - clock
            self._close(state)
            return
        elif kind == stages.ERROR:
            raise LsegError(item['error'])
        state.seconds['write'] += time.perf_counter() - clock

    def _open(self, state: _BagState, item: Dict) -> None:
        state.frames_total = item['frames']
        state.stack = contextlib.ExitStack()
        staged = state.stack.enter_context(staged_path(state.target))
        writer = state.stack.enter_context(
            bag.BagWriter(staged, self.config['storage'] or item['storage']))
        state.output = OutputBag(writer, self.config['image_topics'], self.request,
                                 self.config['copy_topics'], self.config['skip_bad_frames'],
                                 self.config['confidence_encoding'])
        state.output.register(item['topics'])

    def _close(self, state: _BagState) -> None:
        stack, state.stack = state.stack, None
        stack.close()                     # closes the bag, then renames it into place
        state.done = True
        state.seconds['wall'] = time.monotonic() - state.started
        self.manifest.record(state.source, state.target, self.digest, state.frames)
        self.finished.append(state)
        if self.progress is not None:
            self.progress.bag_done()

    def _fail(self, state: _BagState, message: str) -> None:
        state.done = True
        state.error = message
        state.pending.clear()
        stack, state.stack = state.stack, None
        if stack is not None:
            # leaving the staged block with an error deletes the partial bag
            stack.__exit__(LsegError, LsegError(message), None)
        self.failed.append(state)
        print(f'segment_bags: error: {state.source}: {message}', file=sys.stderr)
        if self.progress is not None:
            self.progress.bag_done()

    def abort(self, error: BaseException) -> None:
        """Close every open output without finishing it (an interruption or a crash)."""
        for state in self.bags.values():
            stack, state.stack = state.stack, None
            if stack is not None:
                stack.__exit__(type(error), error, None)

    def finish(self) -> None:
        """Write what is left; fail the bags whose rows never all arrived (a worker died)."""
        for state in self.bags.values():
            if self.announcement is not None:
                self._drain(state)
        for state in self.bags.values():
            if not state.done:
                self._fail(state, 'the pipeline ended before the bag was complete')


class ArchiveProgress:
    """A tqdm line on stderr: frames done, frames/s and bags done."""

    def __init__(self, bags: int, enabled: bool = True):
        self.bags = bags
        self.bags_done = 0
        self.bar = None
        if enabled:
            from tqdm import tqdm
            tty = hasattr(sys.stderr, 'isatty') and sys.stderr.isatty()
            self.bar = tqdm(file=sys.stderr, unit=' frames', mininterval=0.1 if tty else 10.0,
                            desc='segment_bags', dynamic_ncols=True)
            self.bar.set_postfix_str(f'bags 0/{bags}')

    def update(self, frames: int) -> None:
        if self.bar is not None:
            self.bar.update(frames)

    def bag_done(self) -> None:
        self.bags_done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f'bags {self.bags_done}/{self.bags}')

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------------- ray
def check_gpus(resources: Dict, config: Dict) -> None:
    """Refuse actors that ask for more GPUs than the cluster has (Ray would wait forever)."""
    wanted = float(config.get('gpus_per_actor') or 0.0)
    have = float(resources.get('GPU', 0.0))
    if wanted > have:
        raise LsegError(f'each model actor asks for {wanted:g} GPU(s) but the Ray cluster has '
                        f'{have:g}: give --device cpu (or --gpus-per-actor 0) on a machine '
                        'without a GPU, or start the cluster with its GPUs')


def resolve_actors(resources: Dict, config: Dict) -> int:
    """Return the number of model actors: ``num_actors``, or as many as the GPUs hold."""
    if config.get('num_actors'):
        return int(config['num_actors'])
    wanted = float(config.get('gpus_per_actor') or 0.0)
    if wanted <= 0:
        return 1
    return max(1, int(float(resources.get('GPU', 0.0)) / wanted + 1e-9))


def start_ray(address: Optional[str] = None, num_cpus: Optional[int] = None,
              num_gpus: Optional[int] = None, object_store_mb: int = 0):
    """Connect to the Ray cluster at ``address`` or start a local one for this run."""
    for name in ('ray', 'ray.data'):          # Ray's own start-up chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    import ray
    root = str(Path(__file__).resolve().parents[2])
    paths = os.environ.get('PYTHONPATH', '').split(os.pathsep)
    if root not in paths:       # the workers of a local cluster import lseg_ros from here
        os.environ['PYTHONPATH'] = os.pathsep.join([root] + [p for p in paths if p])
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        kwargs = {}
        if object_store_mb:
            kwargs['object_store_memory'] = int(object_store_mb) * 1024 * 1024
        ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus,
                 include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, **kwargs)
    from ray.data import DataContext
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    context.execution_options.verbose_progress = False
    return ray


def build_dataset(ray, todo: Sequence[Tuple[int, Path]], config: Dict):
    """Return the Ray dataset: decode tasks -> SegmentActor pool -> encode tasks."""
    items = [{'bag': number, 'path': str(source)} for number, source in todo]
    gpus = float(config['gpus_per_actor'])
    workers = max(1, int(config['decode_workers']))
    from ray.data import ActorPoolStrategy, TaskPoolStrategy
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    dataset = dataset.map_batches(
        stages.decode_bag, fn_kwargs={'config': config, 'chunk': config['batch_size']},
        batch_size=1, batch_format='numpy', num_cpus=1, compute=TaskPoolStrategy(workers))
    dataset = dataset.map_batches(
        stages.SegmentActor, fn_constructor_kwargs={'config': config},
        batch_size=config['batch_size'], batch_format='numpy', num_gpus=gpus,
        num_cpus=config['actor_cpus'],
        compute=ActorPoolStrategy(size=int(config['num_actors'])))
    return dataset.map_batches(
        stages.encode_outputs, fn_kwargs={'config': config}, batch_size=config['batch_size'],
        batch_format='numpy', num_cpus=1, compute=TaskPoolStrategy(workers))


def run_archive(jobs: Sequence[Tuple[Path, Path]], config: Dict, overwrite: bool = False,
                progress: bool = True, address: Optional[str] = None,
                num_cpus: Optional[int] = None, object_store_mb: int = 0) -> Dict:
    """Segment the bags of ``jobs`` on Ray; return the report (see docs/rosbag.md)."""
    start = time.monotonic()
    output = Path(config['output'])
    output.mkdir(parents=True, exist_ok=True)
    bag.check_writable(output / MANIFEST)
    manifest = Manifest(output)
    digest = options_hash(config)
    inputs = [source for source, _ in jobs]
    skipped, refused, todo = [], [], []
    for number, (source, target) in enumerate(jobs):
        if manifest.finished(source, target, digest):
            skipped.append(str(source))
            continue
        try:
            bag.check_output(target, overwrite, protect=inputs)
        except LsegError as error:
            refused.append({'bag': str(source), 'error': str(error)})
            print(f'segment_bags: error: {source}: {error}', file=sys.stderr)
            continue
        todo.append((number, source, target))
    if skipped:
        print(f'segment_bags: {len(skipped)} bag(s) already segmented with these options '
              f'(recorded in {manifest.path}), skipped', file=sys.stderr)
    writer = ArchiveWriter({n: (s, t) for n, s, t in todo}, config, manifest, digest)
    ray_info = {}
    if todo:
        bar = ArchiveProgress(len(todo), enabled=progress)
        writer.progress = bar
        ray = start_ray(address, num_cpus, None if address else config.get('num_gpus'),
                        object_store_mb)
        try:
            ray_info = {'ray': ray.__version__,
                        'cluster_resources': ray.cluster_resources()}
            check_gpus(ray_info['cluster_resources'], config)
            config['num_actors'] = resolve_actors(ray_info['cluster_resources'], config)
            dataset = build_dataset(ray, [(n, s) for n, s, _ in todo], config)
            for batch in dataset.iter_batches(batch_size=None, batch_format='numpy',
                                              prefetch_batches=2):
                writer.add_batch(batch)
            writer.finish()
        except BaseException as error:
            writer.abort(error)
            raise
        finally:
            bar.close()
            ray.shutdown()
    seconds = time.monotonic() - start
    frames = sum(state.frames for state in writer.finished)
    stage_seconds = {'decode': 0.0, 'inference': 0.0, 'encode': 0.0, 'write': 0.0}
    for state in writer.finished:
        for stage in stage_seconds:
            stage_seconds[stage] += state.seconds[stage]
    return {
        'bags': {'total': len(jobs), 'segmented': len(writer.finished),
                 'skipped': len(skipped), 'failed': len(writer.failed) + len(refused)},
        'frames': frames,
        'wall_s': round(seconds, 3),
        'frames_per_s': round(frames / seconds, 3) if seconds > 0 else 0.0,
        # from the first frame written to the last: without Ray's start and model loading
        'steady_frames_per_s': round((frames - 1) / (writer.last_frame - writer.first_frame), 3)
        if frames > 1 and writer.last_frame > writer.first_frame else None,
        'stage_seconds': {k: round(v, 3) for k, v in stage_seconds.items()},
        'stage_ms_per_frame': {k: round(1000 * v / frames, 3) if frames else None
                               for k, v in stage_seconds.items()},
        'finished': [{'bag': str(s.source), 'output': str(s.target), 'frames': s.frames,
                      'counts': dict(s.output.counts), 'skipped_frames': dict(s.output.skipped),
                      'seconds': {k: round(v, 3) for k, v in s.seconds.items()}}
                     for s in writer.finished],
        'skipped': skipped,
        'failures': refused + [{'bag': str(s.source), 'error': s.error}
                               for s in writer.failed],
        'options': dict(config),
        'options_hash': digest,
        'manifest': str(manifest.path),
        **ray_info,
    }
