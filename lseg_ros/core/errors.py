# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Typed errors raised by the core; the node and the tools turn them into one clear line."""


class LsegError(Exception):
    """Base class of every error the core raises on purpose."""


class CheckpointError(LsegError):
    """A checkpoint file is missing, unreadable or not an official LSeg layout."""


class LabelError(LsegError, ValueError):
    """A label list is empty, has empty or duplicate entries, or a label is too long."""


class ImageError(LsegError, ValueError):
    """An input image cannot be used (wrong shape, size, dtype or corrupt data)."""


class UnsupportedEncodingError(ImageError):
    """An image encoding the package cannot convert to RGB."""


class ImageTooLargeError(ImageError):
    """An image declares more pixels than the configured limit (refused before decoding)."""


class NonFiniteOutputError(LsegError):
    """The network produces NaN or infinite values (broken weights or precision overflow)."""


class BackendError(LsegError):
    """An inference backend is unavailable or failed to initialise."""


class EngineMismatchError(BackendError):
    """A TensorRT engine does not match its metadata, this GPU or this TensorRT."""
