# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Interruptions of long-running commands: SIGTERM like Ctrl-C, and nothing half written.

* :func:`handle_signals` (installed by the command-line tools around their work) makes
  SIGTERM raise :class:`Terminated`, a :class:`KeyboardInterrupt`, so the clean-up paths of
  Ctrl-C (close the output bag, delete temporary files) run for both;
  :func:`exit_code` maps them to the shell's codes: 130 for SIGINT, 143 for SIGTERM.
* :func:`deferred` holds an interruption back until a block that must not be split (one
  message written to a bag, a file moved into place) is done.
* :func:`staged_path` gives a temporary name next to an output file or directory; the
  output appears under its real name only when it is complete, and an interruption or an
  error leaves no partial file behind.
"""

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from typing import Iterator, Sequence

EXIT_SIGINT = 128 + signal.SIGINT          # 130
EXIT_SIGTERM = 128 + signal.SIGTERM        # 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


class _Guard:
    depth = 0             # nesting of deferred() blocks in the main thread
    pending = None        # the exception class of an interruption held back


def _raise(signum, frame):
    error = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if _Guard.depth:
        _Guard.pending = _Guard.pending or error
        return
    raise error(signal.Signals(signum).name)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and SIGINT KeyboardInterrupt.

    Both respect :func:`deferred`.  Only the main thread can install handlers (elsewhere
    this does nothing); a signal that was ignored (``SIG_IGN``) stays ignored, and the
    previous handlers are restored afterwards.
    """
    if not _in_main_thread():
        yield
        return
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(number)
        if old is not signal.SIG_IGN:
            previous[number] = old
            signal.signal(number, _raise)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block ends, then raise them (main thread only)."""
    if not _in_main_thread():
        yield
        return
    _Guard.depth += 1
    try:
        yield
    finally:
        _Guard.depth -= 1
        if not _Guard.depth and _Guard.pending is not None:
            error, _Guard.pending = _Guard.pending, None
            raise error('interrupted')


def exit_code(error: KeyboardInterrupt) -> int:
    """Return 143 for :class:`Terminated` (SIGTERM) and 130 for any other interruption."""
    return EXIT_SIGTERM if isinstance(error, Terminated) else EXIT_SIGINT


def signal_name(error: KeyboardInterrupt) -> str:
    """Return ``SIGTERM`` or ``SIGINT`` for an interruption."""
    return 'SIGTERM' if isinstance(error, Terminated) else 'SIGINT'


@contextlib.contextmanager
def staged_path(path, companions: Sequence[str] = ()) -> Iterator[str]:
    """Yield a temporary path to write ``path`` (a file or a directory) to.

    The temporary path has the same name in a hidden folder next to ``path`` (so writers
    that look at the extension, or files that name each other, work unchanged).  When the
    block ends normally the result replaces ``path`` (an existing directory is replaced as
    a whole), after the ``path + suffix`` files of ``companions`` (e.g. ``'.data'``); when it
    raises or is interrupted nothing is moved and the temporary files are deleted.
    """
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.partial', dir=directory)
    try:
        staged = os.path.join(stage, name)
        yield staged
        with deferred():
            for suffix in companions:
                if os.path.lexists(staged + suffix):
                    os.replace(staged + suffix, path + suffix)
            if os.path.isdir(staged) and not os.path.islink(staged) and os.path.isdir(path):
                old = os.path.join(stage, name + '.old')
                os.rename(path, old)
                os.rename(staged, path)
            else:
                os.replace(staged, path)
    finally:
        with deferred():
            shutil.rmtree(stage, ignore_errors=True)


def write_text(path, text: str) -> str:
    """Write ``text`` to ``path`` through :func:`staged_path`; returns ``path``."""
    with staged_path(path) as staged:
        with open(staged, 'w') as handle:
            handle.write(text)
    return os.fspath(path)
