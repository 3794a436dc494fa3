# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``/lseg`` node: a thin ROS 2 adapter around :class:`LsegPipeline`.

It wires parameters, publishers and subscriptions to the pieces that do the work: the
output contract (:mod:`lseg_ros.formats.outputs`, shared with segment_bag), the worker
threads (:mod:`lseg_ros.ros.workers`), the camera models (:mod:`lseg_ros.ros.camera_info`)
and the diagnostics (:mod:`lseg_ros.ros.diagnostics`); Python logging of the package is
forwarded to the node's logger (:mod:`lseg_ros.ros.log_forward`).

Threads: one executor thread runs subscriptions, parameter services and the diagnostics
timer, and never inference; the image callback only drops the message into a one-frame
:class:`LatestSlot` (newest frame wins, replaced frames are counted as dropped).  A frame
worker thread converts, segments and publishes; a label worker thread computes text
embeddings for new labels and swaps them in atomically with a new label version, so the
stream never stalls on a label change.  A second executor thread was measured not to help
(docs/node_benchmark.md): every callback is short, and two threads only add GIL contention
with the frame worker.
"""

import gc
import os
import signal
import sys
import time
from typing import Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, Header, String

from lseg_ros.core.errors import ImageError, LabelError, LsegError
from lseg_ros.core.labels import parse_labels, parse_query
from lseg_ros.formats.outputs import label_announcement
from lseg_ros.ros.cameras import Camera, SINGLE
from lseg_ros.ros.conversions import announcement_msgs, image_to_rgb
from lseg_ros.ros.dds_profile import profile_in_effect
from lseg_ros.ros.diagnostics import diagnostic_status, diagnostic_values, gpu_memory
from lseg_ros.ros.executors import (EXECUTOR_ENV, executor_name, make_executor,
                                    spin_until_shutdown)
from lseg_ros.ros.frame_slot import SlotGroup
from lseg_ros.ros.log_forward import LogForwarding
from lseg_ros.ros.params import PARAMS, parse_cameras
from lseg_ros.ros.qos import input_qos, LATCHED_QOS
from lseg_ros.ros.workers import FRAME_THREAD, FrameWorker, LABEL_THREAD, LabelWorker

NODE_NAME = 'lseg'
WARN_PERIOD_S = 5.0
#: Seconds shutdown waits for a busy worker (a long frame, a large label set) to finish.
SHUTDOWN_WAIT_S = 3.0
#: Benchmark knob (docs/node_benchmark.md): the GIL switch interval in ms.
SWITCH_INTERVAL_ENV = 'LSEG_GIL_SWITCH_INTERVAL_MS'
#: GIL switch interval with CPU inference (Python's default, 5 ms, with a GPU).
CPU_GIL_SWITCH_INTERVAL_S = 0.0005


def descriptor(param) -> ParameterDescriptor:
    """Return the ParameterDescriptor of a :class:`~lseg_ros.ros.params.Param`."""
    text = param.description
    if param.choices:
        text += f' One of: {", ".join(param.choices)}.'
    desc = ParameterDescriptor(description=text, read_only=param.read_only)
    if param.int_range:
        desc.integer_range = [IntegerRange(from_value=param.int_range[0],
                                           to_value=param.int_range[1], step=1)]
    if param.float_range:
        desc.floating_point_range = [FloatingPointRange(from_value=param.float_range[0],
                                                        to_value=param.float_range[1],
                                                        step=0.0)]
    if param.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(param.choices)
    return desc


def describe_mode(info: Dict[str, str]) -> str:
    """Return ``' (mode …, levers …, … Q/DQ)'`` for the start-up log: how the precision runs."""
    levers = info.get('levers', '-')
    parts = [f'mode {info["mode"]}' if info.get('mode') else '',
             f'levers {levers}' if levers != '-' else '', info.get('quantization', '')]
    text = ', '.join(p for p in parts if p)
    return f' ({text})' if text else ''


def warmup_batch(cameras: int, window_s: Optional[float]) -> int:
    """Return the largest batch the node warms: the cameras, or 1 without a batch window.

    Without a window the cameras are served one frame at a time, so batch shapes would only
    cost start-up time and GPU memory (a window set at run time compiles them when used).
    """
    return max(1, cameras) if window_s else 1


class LsegRuntime:
    """Everything the node does, in the steps of a managed node's life (a mixin of Node).

    ``_declare`` (parameters), ``_configure`` (model, publishers, label worker),
    ``_activate`` (frame worker, subscriptions, diagnostics), ``_deactivate`` and
    ``_cleanup`` (the model released).  :class:`LsegNode` runs the first three in its
    constructor; :class:`lseg_ros.ros.lifecycle_node.LsegLifecycleNode` runs them on its
    lifecycle transitions.
    """

    # ---------------------------------------------------------------------------- set-up
    def _declare(self) -> None:
        """Declare the parameters and their callbacks (no model yet)."""
        # Core logging (e.g. the backend auto fallback) in the node's format and on /rosout.
        self._log_forwarding = LogForwarding(self.get_logger())
        self.pipeline = None
        self.cameras: Dict[str, Camera] = {}
        self.slots = None
        self.frame_worker = None
        self.label_worker = None
        self._lingering: List = []       # worker threads that outlived a join (still running)
        self.startup_s = 0.0
        self._timer = None
        self.pub_labels = self.pub_embeddings = self.pub_label_info = None
        self.pub_diagnostics = None
        self._warned: Dict[str, float] = {}
        for param in PARAMS:
            self.declare_parameter(param.name, param.default, descriptor(param))
        self.settings = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        self._check_choices(self.settings)
        self.camera_names = parse_cameras(self.settings['cameras']) or (SINGLE,)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    def _configure(self) -> None:
        """Load the model and warm it up, create the publishers, start the label worker."""
        start = time.monotonic()
        self.pipeline = self._load_pipeline()
        if self.settings['query']:
            self.pipeline.set_query(self.settings['query'])
        self._make_publishers()
        if self.settings['warmup']:
            size = self.pipeline.input_size
            self.pipeline.warmup(size * 3 // 4, size,
                                 batch=warmup_batch(len(self.camera_names),
                                                    self._batch_window()))
        self._publish_labels(label_announcement(self.pipeline.labels))
        self.label_worker = LabelWorker(self._apply_text, on_start=self._bind_worker_device)
        self.label_worker.start()
        self.startup_s = time.monotonic() - start

    def _activate(self) -> None:
        """Start the frame worker, subscribe to the cameras, publish diagnostics."""
        self.slots = SlotGroup(self.camera_names)
        for name, camera in self.cameras.items():
            camera.slot = self.slots.slots[name]
        self.frame_worker = FrameWorker(
            self.slots, self._prepare, self._process, self._on_worker_error,
            running=self.context.ok,
            max_rate=lambda: self.settings['max_rate_hz'], window=self._batch_window,
            on_start=self._bind_worker_device)
        self.frame_worker.start()
        qos = input_qos(self.settings['input_qos'])
        for camera in self.cameras.values():
            camera.subscribe(qos, self.settings['compressed_input'])
        self._timer = self.create_timer(self.settings['diagnostics_period'],
                                        self._publish_diagnostics,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _deactivate(self) -> List[str]:
        """Unsubscribe and stop the frame worker; returns what is still busy (see shutdown)."""
        for camera in self.cameras.values():
            camera.unsubscribe()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self.slots is not None:
            self.slots.close()
        busy = self._join([self.frame_worker.thread] if self.frame_worker else [])
        if busy:
            self._lingering.append(self.frame_worker.thread)
        self.frame_worker = None
        return busy

    def _cleanup(self, release: bool = True) -> List[str]:
        """Stop the label worker, destroy the publishers, release the model (and GPU memory).

        Returns what is still busy; the model is then left to the process's end (so is it
        without ``release``: the frame worker is still inside it).
        """
        threads = [t for t in self._lingering if t.is_alive()]
        if self.label_worker is not None:
            self.label_worker.stop()
            threads.append(self.label_worker.thread)
            self.label_worker = None
        # a frame worker that outlived deactivate (still inside the model) counts as busy
        busy = self._join(threads)
        self._lingering = [t for t in threads if t.is_alive()]
        for camera in self.cameras.values():
            camera.destroy()
        self.cameras = {}
        for publisher in (self.pub_labels, self.pub_embeddings, self.pub_label_info,
                          self.pub_diagnostics):
            if publisher is not None:
                self.destroy_publisher(publisher)
        self.pub_labels = self.pub_embeddings = self.pub_label_info = None
        self.pub_diagnostics = None
        if release and not busy and self.pipeline is not None:
            device = self.pipeline.device
            self.pipeline.backend.close()
            self.pipeline = None
            release_memory(device)
        return busy

    def _join(self, threads) -> List[str]:
        """Wait for ``threads`` within SHUTDOWN_WAIT_S; return what the live ones are doing."""
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [BUSY[t.name] for t in threads if t.is_alive()]

    def _log_ready(self) -> None:
        # An unused engine (backend auto) was warned about by the backend factory, through
        # the forwarded logging: one warning line, diagnostics say it again.
        info = self.pipeline.describe()
        cameras = ('' if self.camera_names == (SINGLE,) else
                   f'cameras {list(self.camera_names)} (batch window '
                   f'{self.settings["batch_window_ms"]:g} ms), ')
        self.get_logger().info(
            f'ready in {self.startup_s:.1f} s: checkpoint {self.settings["checkpoint"]}, '
            f'variant {info["variant"]}, backend {info["backend"]} on {info["device"]}, '
            f'precision {info["precision"]}{describe_mode(info)}, '
            f'engine {self.settings["engine"] or "-"}, '
            f'input size {info["input_size"]}, input QoS {self.settings["input_qos"]}, '
            f'{cameras}Fast DDS profile {profile_in_effect() or "none (Fast DDS defaults)"}, '
            f'labels v{self.pipeline.labels.version} {list(self.pipeline.labels.labels)}')

    def _check_choices(self, values) -> None:
        for param in PARAMS:
            if param.choices and param.name in values and values[param.name] not in param.choices:
                raise LsegError(f'parameter {param.name}={values[param.name]!r} is not one of '
                                f'{", ".join(param.choices)}')

    def _load_pipeline(self):
        s = self.settings
        if not s['checkpoint']:
            raise LsegError('parameter checkpoint is empty: set it to an official lang-seg '
                            'checkpoint, e.g. checkpoint:=/path/to/demo_e200.ckpt '
                            '(see models/README.md)')
        from lseg_ros.core.backends import resolve_device
        device = resolve_device(s['device'])
        self._bind_device(device)
        if device.type == 'cpu':
            # Leave one core to ROS message handling (cpu_threads: 0).
            import torch
            torch.set_num_threads(s['cpu_threads'] or max(1, (os.cpu_count() or 2) - 1))
            # CPU inference takes and releases the GIL between operators: with the default
            # 5 ms switch interval a busy executor thread (high frame rates) made it wait up
            # to 5 ms each time (10-30x slower under a 200 Hz stream).  With a GPU the
            # interval makes no measurable difference (docs/node_benchmark.md).
            sys.setswitchinterval(CPU_GIL_SWITCH_INTERVAL_S)
        if os.environ.get(SWITCH_INTERVAL_ENV):
            sys.setswitchinterval(float(os.environ[SWITCH_INTERVAL_ENV]) / 1000.0)
        from lseg_ros.core.backends.factory import user_options
        from lseg_ros.core.pipeline import LsegPipeline
        return LsegPipeline.from_checkpoint(
            s['checkpoint'], backend=s['backend'], device=device, precision=s['precision'],
            input_size=s['input_size'], labels=s['labels'], engine=s['engine'] or None,
            onnx=s['onnx'] or None, **user_options(s['backend'], s['compile']))

    @staticmethod
    def _bind_device(device) -> None:
        """Make ``device`` the current CUDA device of the calling thread (cuda:N, N > 0)."""
        if device.type == 'cuda':
            import torch
            torch.cuda.set_device(device)

    def _make_publishers(self) -> None:
        self.cameras = {name: Camera(self, name, None) for name in self.camera_names}
        self.pub_labels = self.create_publisher(String, '~/labels', LATCHED_QOS)
        self.pub_embeddings = self.create_publisher(Float32MultiArray, '~/text_embeddings',
                                                    LATCHED_QOS)
        self.pub_label_info = None
        try:
            from vision_msgs.msg import LabelInfo
            self.pub_label_info = self.create_publisher(LabelInfo, '~/label_info', LATCHED_QOS)
        except ImportError:
            self.get_logger().info('vision_msgs is not installed: ~/label_info is not published')
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

    def _batch_window(self) -> Optional[float]:
        """Seconds the frame worker waits for other cameras' frames (None: no batching)."""
        window = self.settings['batch_window_ms']
        return window / 1000.0 if window > 0 else None

    # ------------------------------------------------------------------------ parameters
    def _validate_parameters(self, params) -> SetParametersResult:
        """Refuse bad values with a reason (ranges and read-only are checked by rclpy)."""
        for param in params:
            try:
                if param.name == 'labels':
                    labels = parse_labels(param.value)
                    if self.pipeline is not None:
                        self.pipeline.text_encoder.tokenize(labels)
                elif param.name == 'query':
                    query = parse_query(param.value)
                    if query and self.pipeline is not None:
                        self.pipeline.text_encoder.tokenize([query])
            except LabelError as error:
                return SetParametersResult(successful=False,
                                           reason=f'{param.name} refused: {error}')
            try:
                self._check_choices({param.name: param.value})
            except LsegError as error:
                return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        for param in params:
            if param.name in self.settings:
                self.settings[param.name] = param.value
            if param.name in ('labels', 'query') and self.label_worker is not None:
                self.label_worker.submit(param.name, param.value)

    # ---------------------------------------------------------------- labels and query
    def _bind_worker_device(self) -> None:
        self._bind_device(self.pipeline.device)

    def _apply_text(self, kind: str, value: str) -> None:
        """Embed and install new labels or a new query (runs in the label worker)."""
        if kind == 'query':
            self._apply_query(value)
        else:
            self._apply_labels(value)

    def _apply_labels(self, labels) -> None:
        """Embed ``labels``, announce and install them."""
        try:
            prepared = self.pipeline.prepare_labels(labels)
        except Exception as error:  # noqa: B902 - keep the old labels, say why
            self.get_logger().error(f'labels {labels!r} not applied, keeping '
                                    f'{list(self.pipeline.labels.labels)}: {error}')
            return
        # This thread is the only one that installs labels after start-up, so the next
        # version is known: announce it on the latched topics first, then install, so no
        # mask of the new vocabulary can be published before its labels.
        self._publish_labels(label_announcement(prepared, self.pipeline.labels.version + 1))
        label_set = self.pipeline.install_labels(prepared)
        self.get_logger().info(f'labels v{label_set.version}: {list(label_set.labels)}')

    def _apply_query(self, text: str) -> None:
        """Embed the query ``text`` and install it (empty: similarity maps off)."""
        try:
            query = self.pipeline.prepare_query(text)
        except Exception as error:  # noqa: B902 - keep the old query, say why
            old = self.pipeline.query
            self.get_logger().error(f'query {text!r} not applied, keeping '
                                    f'{old.text if old else "none"!r}: {error}')
            return
        self.pipeline.install_query(query)
        self.get_logger().info(f'query: {query.text!r}' if query else 'query: off')

    def _publish_labels(self, announcement) -> None:
        labels, embeddings, label_info = announcement_msgs(announcement, self._header_now())
        self.pub_labels.publish(labels)
        self.pub_embeddings.publish(embeddings)
        if self.pub_label_info is not None and label_info is not None:
            self.pub_label_info.publish(label_info)

    def _header_now(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id='')

    # ---------------------------------------------------------------------------- frames
    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -1e9) >= WARN_PERIOD_S:
            self._warned[key] = now
            self.get_logger().warning(text)

    def _on_frame_error(self, camera: Camera, error: Exception) -> None:
        """Count a frame that failed and warn (at most every WARN_PERIOD_S per kind)."""
        camera.stats.add_bad()
        where = '' if camera.name == SINGLE else f' (camera {camera.name})'
        if isinstance(error, ImageError):
            self._warn(f'{type(error).__name__}:{str(error)[:24]}',
                       f'frame skipped{where}: {error}')
        else:
            self._warn(type(error).__name__,
                       f'frame failed{where}: {type(error).__name__}: {error}')

    def _on_worker_error(self, error: Exception) -> None:
        """Warn (throttled) about an error outside any one frame (e.g. publishing)."""
        self._warn(type(error).__name__, f'frame failed: {type(error).__name__}: {error}')

    def _prepare(self, frames) -> List[tuple]:
        """Decode ``frames`` and copy them for the device (while a batch's others come).

        Returns ``(camera, msg, received, rgb, staged, convert_ms, request)`` per usable
        frame; a frame that cannot be used is counted and warned about here.
        """
        prepared = []
        query = self.pipeline.query is not None
        for name, msg, received in frames:
            camera = self.cameras[name]
            t0 = time.perf_counter()
            try:
                rgb = image_to_rgb(msg, max_pixels=self.settings['max_input_pixels'])
                staged = self.pipeline.stage(rgb)
            except Exception as error:  # noqa: B902 - one bad frame must not stop the others
                self._on_frame_error(camera, error)
                continue
            prepared.append((camera, msg, received, rgb, staged,
                             1000 * (time.perf_counter() - t0),
                             camera.request(self.settings, query)))
        return prepared

    def _process(self, prepared) -> None:
        """Segment prepared frames (those of one size in one call) and publish them."""
        from lseg_ros.core.pipeline import OutputRequest, size_groups
        for group in size_groups([p[3] for p in prepared]):
            items = [prepared[i] for i in group]
            # Each frame is published as soon as its outputs are ready (the first camera of
            # a batch does not wait for the others' copies and publishes).
            results = self.pipeline.iter_segment_batch(
                [item[4] for item in items], OutputRequest.union([item[6] for item in items]))
            try:
                for index, (camera, msg, received, rgb, _, convert_ms, request) in \
                        enumerate(items):
                    try:
                        result = next(results)
                    except Exception as error:  # noqa: B902 - the next frames may work
                        for item in items[index:]:
                            self._on_frame_error(item[0], error)
                        break
                    camera.publish(msg, rgb, request.keep(result), request, self.settings,
                                   convert_ms, received)
            finally:
                results.close()

    # ----------------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        info = self.pipeline.describe()
        memory = gpu_memory(self.pipeline.device)
        statuses = []
        for camera in self.cameras.values():
            snap = camera.stats.snapshot()
            values = diagnostic_values(snap, camera.counters(), info, self.settings,
                                       self.pipeline.labels, self.startup_s, memory)
            if camera.name != SINGLE:
                values['camera'] = camera.name
            statuses.append(diagnostic_status(
                camera.status_name(self.get_fully_qualified_name()), snap,
                camera.slot.dropped, info['device'], values))
        self.pub_diagnostics.publish(DiagnosticArray(header=self._header_now(),
                                                     status=statuses))

    def shutdown(self) -> bool:
        """Stop the worker threads within SHUTDOWN_WAIT_S; release the model when they end.

        Returns False when a worker is still inside the model (a long frame, a large label
        set): the caller must then end the process without tearing down what that thread
        uses (see :func:`main`).
        """
        # Not the node's logger from here on: its /rosout publisher dies with the context.
        self._log_forwarding.remove()
        busy = self._deactivate()
        busy += self._cleanup(release=not busy)
        if busy:
            rclpy.logging.get_logger('lseg_node').info(
                f'exiting while {" and ".join(busy)} (not waiting longer than '
                f'{SHUTDOWN_WAIT_S:g} s)')
            return False
        return True


class LsegNode(LsegRuntime, Node):
    """Open-vocabulary semantic segmentation of one or several camera streams."""

    def __init__(self, **kwargs):
        Node.__init__(self, NODE_NAME, **kwargs)
        try:
            self._declare()
            self._configure()
            self._activate()
        except BaseException:
            self._log_forwarding.remove()
            raise
        self._log_ready()


def release_memory(device) -> None:
    """Give the memory of released models back (the GPU's caching allocators included).

    On a GPU: torch's device memory cache and its cache of page-locked host memory (the
    frames staged for DMA, :meth:`LsegPipeline.stage`); torch without the private call
    of the latter keeps its pinned blocks until the process exits.
    """
    gc.collect()
    if device.type == 'cuda':
        import torch
        torch.cuda.empty_cache()
        host_empty_cache = getattr(torch._C, '_host_emptyCache', None)
        if host_empty_cache is not None:
            host_empty_cache()


BUSY = {FRAME_THREAD: 'a frame is being segmented',
        LABEL_THREAD: 'text embeddings of new labels are being computed'}
USAGE = '''usage: lseg_node [--ros-args ...]

The /lseg node: open-vocabulary semantic segmentation of a camera stream (LSeg).
Start it with `ros2 launch lseg_ros segment.launch.py` or
  lseg_node --ros-args --params-file config/lseg.yaml -p checkpoint:=/path/to/demo_e200.ckpt \\
      -r image:=/camera/image_raw
Parameters (README "Parameters"; config/lseg.yaml has them all):
'''


def usage() -> str:
    """Return the --help text: how to start the node and its parameters."""
    lines = [f'  {p.name} ({p.type_name}, default {p.default!r}): {p.description}'
             for p in PARAMS]
    return USAGE + '\n'.join(lines)


def wants_help(argv) -> bool:
    """Whether ``-h``/``--help`` comes before any ``--ros-args``."""
    for arg in argv:
        if arg == '--ros-args':
            return False
        if arg in ('-h', '--help'):
            return True
    return False


def main(args=None, node_class=None, spin=None, help_text=None) -> int:
    """Run the node until shut down; start-up errors are one line and exit code 1.

    ``node_class`` (default :class:`LsegNode`), ``spin(executor, node)`` (default: spin
    until shut down) and ``help_text`` (default :func:`usage`) let the managed node
    (:mod:`lseg_ros.ros.lifecycle_node`) share it.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if wants_help(argv):
        print(help_text or usage())
        return 0
    try:
        rclpy.init(args=args)
    except Exception as error:  # noqa: B902 - e.g. malformed --ros-args
        print(f'[ERROR] [{NODE_NAME}]: cannot start: {error}', file=sys.stderr)
        return 2
    try:                                       # before the model loads
        executor = make_executor(os.environ.get(EXECUTOR_ENV, 'auto'))
    except ValueError as error:
        print(f'[ERROR] [{NODE_NAME}]: cannot start: {EXECUTOR_ENV}: {error}',
              file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        node = (node_class or LsegNode)()
    except (LsegError, OSError, RuntimeError, ValueError, ImportError,
            ParameterException) as error:
        rclpy.logging.get_logger(NODE_NAME).error(f'cannot start: {start_error(error)}')
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:                  # Ctrl-C while the model was loading
        rclpy.try_shutdown()
        return 0
    executor.add_node(node)
    node.get_logger().info(f'executor: {executor_name(executor)}')
    try:
        (spin or (lambda ex, _: spin_until_shutdown(ex)))(executor, node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass                                   # SIGINT or SIGTERM (rclpy shuts down on both)
    finally:
        # Ctrl-C reaches both `ros2 launch` and the node: a second SIGINT must not turn a
        # clean shutdown into a KeyboardInterrupt death.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if not node.shutdown():
            # A worker is inside torch: finalising the interpreter (or destroying the node)
            # under it aborts the process ("terminate called without an active exception").
            # Nothing is left to save, so end the process here.
            rclpy.try_shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def start_error(error: Exception) -> str:
    """Return a start-up (or configure) error as one line, with a hint where one helps."""
    hint = ''
    if isinstance(error, InvalidParameterTypeException):
        hint = ' (write doubles with a decimal point, e.g. 10.0)'
    return f'{error}{hint}'


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == '__main__':
    entry()
