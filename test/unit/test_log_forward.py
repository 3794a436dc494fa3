# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Python logging of the package forwarded to the node's rclpy logger (with a fake logger)."""

import logging

import pytest

from lseg_ros.ros.log_forward import LogForwarding, method_for, RosLogHandler


class FakeLogger:
    """An rclpy-like logger that records (method, message)."""

    def __init__(self, level=20):
        self.lines = []
        self.level = level

    def get_effective_level(self):
        return self.level

    def __getattr__(self, method):
        if method not in ('debug', 'info', 'warning', 'error', 'fatal'):
            raise AttributeError(method)
        return lambda text: self.lines.append((method, text))


def test_levels_map_to_ros_severities():
    assert [method_for(level) for level in (5, 10, 20, 30, 40, 50)] == \
        ['debug', 'debug', 'info', 'warning', 'error', 'fatal']


def test_package_records_are_forwarded_once_and_removed():
    fake = FakeLogger(level=20)
    package = logging.getLogger('lseg_ros')
    before = (package.level, package.propagate, list(package.handlers))
    forwarding = LogForwarding(fake)
    try:
        log = logging.getLogger('lseg_ros.core.backends.factory')
        log.debug('hidden %s', 1)
        log.info('backend auto: using %s', 'torch')
        log.warning('engine %s not used', '/x.engine')
        logging.getLogger('other').warning('not ours')
        try:
            raise ValueError('boom')
        except ValueError:
            logging.getLogger('lseg_ros.core').exception('failed')
    finally:
        forwarding.remove()
    assert fake.lines[:2] == [('info', 'backend auto: using torch'),
                              ('warning', 'engine /x.engine not used')]
    method, text = fake.lines[2]
    assert method == 'error' and text.startswith('failed\nTraceback') and 'boom' in text
    assert len(fake.lines) == 3
    assert (package.level, package.propagate, list(package.handlers)) == before
    forwarding.remove()                                  # idempotent


def test_a_failing_ros_logger_does_not_break_the_caller(monkeypatch):
    class Broken(FakeLogger):
        def warning(self, text):
            raise RuntimeError('context shut down')
    monkeypatch.setattr(logging, 'raiseExceptions', False)
    handler = RosLogHandler(Broken())
    record = logging.LogRecord('lseg_ros', logging.WARNING, __file__, 1, 'x', (), None)
    handler.emit(record)


def test_every_severity_reaches_a_real_rclpy_logger(capfd):
    """Each severity has its own call site (rclpy refuses two from one line)."""
    rclpy_logging = pytest.importorskip('rclpy.logging')
    ros_logger = rclpy_logging.get_logger('lseg_forward_test')
    ros_logger.set_level(rclpy_logging.LoggingSeverity.DEBUG)
    forwarding = LogForwarding(ros_logger)
    try:
        log = logging.getLogger('lseg_ros.test')
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                      logging.CRITICAL, logging.INFO):
            log.log(level, 'level %d', level)
    finally:
        forwarding.remove()
    err = capfd.readouterr().err
    for severity, level in (('DEBUG', 10), ('INFO', 20), ('WARN', 30), ('ERROR', 40),
                            ('FATAL', 50)):
        assert f'[{severity}] [' in err and f'[lseg_forward_test]: level {level}' in err, err
    assert 'Logging error' not in err
