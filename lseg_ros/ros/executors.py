# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The executor that spins the node (and the bench's client), and how it is spun.

``events`` is rclpy's C++ events executor (``rclpy.experimental.EventsExecutor``, Kilted
and later): it hands a callback over without rebuilding a wait set in Python each time.
``single`` is rclpy's ``SingleThreadedExecutor``, the only choice on older distributions.
``multi`` (two threads) is kept to measure what it costs (docs/node_benchmark.md).

Every executor is spun with :func:`spin_until_shutdown` (``spin_once`` in a loop):
``EventsExecutor.spin()`` of rclpy 9.1.2 never ran a subscription callback and did not
return on shutdown (measured on the CI machine), while its ``spin_once`` works.
"""

import io

import rclpy

#: The environment variable that picks the executor (auto, events, single or multi).
EXECUTOR_ENV = 'LSEG_EXECUTOR'
KINDS = ('auto', 'events', 'single', 'multi')
#: Seconds one spin waits at most, so that a shutdown is noticed.
SPIN_PERIOD_S = 0.1


def events_executor_class():
    """Return rclpy's EventsExecutor factory, or None where rclpy has none (before Kilted)."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


def make_executor(kind: str = 'auto', context=None):
    """Return the executor ``kind`` (see the module); auto: events where rclpy has it."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if kind not in KINDS:
        raise ValueError(f'unknown executor {kind!r}: one of {", ".join(KINDS)}')
    if kind == 'multi':
        return MultiThreadedExecutor(num_threads=2, context=context)
    if kind in ('auto', 'events'):
        events = events_executor_class()
        if events is None and kind == 'events':
            raise ValueError('executor events needs rclpy.experimental.EventsExecutor '
                             '(ROS 2 Kilted or later)')
        if events is not None:
            try:
                return events(context=context)
            except io.UnsupportedOperation:
                # It enables faulthandler, which needs a real stderr (not e.g. pytest's
                # captured one): a process without one spins with the single executor.
                if kind == 'events':
                    raise
    return SingleThreadedExecutor(context=context)


def executor_name(executor) -> str:
    """Return the name of ``executor``'s kind for logs and reports."""
    name = type(executor).__name__
    return {'EventsExecutor': 'events', 'SingleThreadedExecutor': 'single',
            'MultiThreadedExecutor': 'multi'}.get(name, name)


def spin_until_shutdown(executor, stop=None, context=None) -> None:
    """Spin ``executor`` until rclpy shuts down or ``stop`` (a threading.Event) is set.

    See the module for why not ``executor.spin()``.
    """
    while rclpy.ok(context=context) and not (stop is not None and stop.is_set()):
        executor.spin_once(timeout_sec=SPIN_PERIOD_S)
