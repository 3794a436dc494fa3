# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``lseg_lifecycle_node``: the /lseg node as a ROS 2 managed (lifecycle) node.

The same node as ``lseg_node`` (same parameters, topics and code: the
:class:`~lseg_ros.ros.node.LsegRuntime` steps), driven by lifecycle transitions
(``ros2 lifecycle set /lseg configure`` or launch's lifecycle events):

  unconfigured  parameters declared, nothing loaded
  configure     load the checkpoint / engine, warm up, create the publishers, announce the
                labels (a failure, e.g. a missing checkpoint, is logged and the node stays
                unconfigured)
  activate      subscribe to the camera(s), segment and publish, diagnostics
  deactivate    unsubscribe and stop segmenting (the model stays loaded)
  cleanup       destroy the publishers and release the model, its GPU memory
                (``torch.cuda.empty_cache()``) and the page-locked host memory of staged
                frames
  shutdown      from any state: as deactivate + cleanup, then the process exits

A second executable rather than a switch of ``lseg_node``: the plain node keeps its
behaviour (it starts segmenting without a lifecycle manager), and the managed one always
has the lifecycle services.
"""

import sys
import time

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from lseg_ros.core.errors import LsegError
from lseg_ros.ros.node import LsegRuntime, main, NODE_NAME, start_error, usage

#: Seconds the process keeps spinning after the shutdown transition (its service answer).
ANSWER_S = 0.5
HELP = '''lseg_lifecycle_node: the /lseg node as a managed (lifecycle) node.
It starts unconfigured; drive it with `ros2 lifecycle set /lseg configure` (load the model),
`activate` (segment), `deactivate`, `cleanup` (free the model and GPU memory), `shutdown`
(exit), or `ros2 launch lseg_ros segment.launch.py lifecycle:=true`.

'''


class LsegLifecycleNode(LsegRuntime, LifecycleNode):
    """Open-vocabulary segmentation that loads on configure and frees the GPU on cleanup."""

    def __init__(self, **kwargs):
        LifecycleNode.__init__(self, NODE_NAME, **kwargs)
        self.finished = False
        self._declare()

    def on_configure(self, state) -> TransitionCallbackReturn:
        """Load and warm up the model, create the publishers."""
        try:
            self._configure()
        except (LsegError, OSError, RuntimeError, ValueError, ImportError) as error:
            self.get_logger().error(f'cannot configure: {start_error(error)}')
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        self._log_ready()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Subscribe and segment."""
        self._activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Unsubscribe and stop segmenting."""
        self._report(self._deactivate())
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Release the model (and its GPU memory) and the publishers."""
        self._report(self._cleanup())
        self.get_logger().info('model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        """Stop everything; the process then exits."""
        busy = self._deactivate()
        self._report(busy + self._cleanup(release=not busy))
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        """Release everything after a failed transition and go back to unconfigured."""
        busy = self._deactivate()
        self._report(busy + self._cleanup(release=not busy))
        return TransitionCallbackReturn.SUCCESS

    def _report(self, busy) -> None:
        if busy:
            self.get_logger().warning(f'{" and ".join(busy)}: left running in the background')


def spin_until_finished(executor, node: LsegLifecycleNode) -> None:
    """Spin until the shutdown transition (or rclpy's shutdown), then answer it."""
    while not node.finished:
        executor.spin_once(timeout_sec=0.2)
    deadline = time.monotonic() + ANSWER_S
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main(node_class=LsegLifecycleNode, spin=spin_until_finished,
                  help_text=HELP + usage()))


if __name__ == '__main__':
    entry()
