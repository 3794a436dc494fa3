# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Forward Python ``logging`` records of the package (core, backends) to an rclpy logger.

The core logs with :mod:`logging` under ``lseg_ros`` (e.g. a CUDA graph that cannot be
captured, the backend auto fallback); in the node those records then appear in the node's
format, at their severity, and on /rosout.
"""

import logging

PACKAGE_LOGGER = 'lseg_ros'
#: rclpy logger method per Python level (rclpy's severities have Python's numbers).
METHODS = ((logging.CRITICAL, 'fatal'), (logging.ERROR, 'error'),
           (logging.WARNING, 'warning'), (logging.INFO, 'info'), (logging.NOTSET, 'debug'))


def method_for(levelno: int) -> str:
    """Return the name of the rclpy logger method for a Python level."""
    return next(name for level, name in METHODS if levelno >= level)


class RosLogHandler(logging.Handler):
    """A logging handler that writes records to an rclpy-like logger (``info``, ``warning``...).

    Only the message goes through (with a traceback when the record has one): the rclpy
    logger adds severity, time and the node's name.
    """

    def __init__(self, ros_logger, level: int = logging.NOTSET):
        super().__init__(level)
        self.ros_logger = ros_logger
        self.setFormatter(logging.Formatter('%(message)s'))

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` at its severity."""
        try:
            text = self.format(record)
            # One call site per severity: rclpy refuses another severity from the same line.
            method = method_for(record.levelno)
            if method == 'fatal':
                self.ros_logger.fatal(text)
            elif method == 'error':
                self.ros_logger.error(text)
            elif method == 'warning':
                self.ros_logger.warning(text)
            elif method == 'info':
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # noqa: B902 - logging must never break the caller
            self.handleError(record)


def python_level(ros_logger) -> int:
    """Return the Python level of an rclpy logger's effective severity (INFO if unknown)."""
    try:
        return int(ros_logger.get_effective_level())
    except (AttributeError, TypeError, ValueError):
        return logging.INFO


class LogForwarding:
    """Install a :class:`RosLogHandler` on the package logger; ``remove`` restores it.

    The package logger gets the rclpy logger's severity (so ``--log-level`` reaches the
    core) and stops propagating to the root logger while installed: one line per record.
    """

    def __init__(self, ros_logger, name: str = PACKAGE_LOGGER):
        self.logger = logging.getLogger(name)
        self.handler = RosLogHandler(ros_logger)
        self._saved = (self.logger.level, self.logger.propagate)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(python_level(ros_logger))
        self.logger.propagate = False

    def remove(self) -> None:
        """Take the handler off and restore the logger's level and propagation (idempotent)."""
        if self.handler in self.logger.handlers:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self._saved[0])
            self.logger.propagate = self._saved[1]
