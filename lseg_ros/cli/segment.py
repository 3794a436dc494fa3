# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``lseg_segment``: segment one image with an official LSeg checkpoint.

Writes the colour overlay to ``--output`` and the label-index mask next to it
(``<output stem>_mask.png``, 8 or 16 bit), prints the labels with their pixel shares, and
with ``--save-raw`` stores the network's raw outputs for comparisons with the official code.
"""

import argparse
import os
import sys

import cv2
import numpy as np

from lseg_ros.cli.common import (add_max_pixels_argument, add_model_arguments, check_max_pixels,
                                 run_main)
from lseg_ros.core.errors import ImageError
from lseg_ros.core.interrupts import staged_path
from lseg_ros.formats.image_codec import DEFAULT_MAX_INPUT_PIXELS, read_image_file


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface."""
    parser = argparse.ArgumentParser(
        prog='lseg_segment', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument('--image', required=True, help='input image (png, jpg, ...)')
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument('--labels', help='comma-separated labels, e.g. "dog, grass, other"')
    labels.add_argument('--wordfree', action='store_true',
                        help='no labels: nearest CLIP vocabulary token per pixel')
    parser.add_argument('--output', required=True, help='overlay image to write (.png)')
    parser.add_argument('--mask-output', help='mask image (default: <output stem>_mask.png)')
    parser.add_argument('--alpha', type=float, default=0.5, help='overlay opacity (0..1)')
    parser.add_argument('--save-raw', metavar='FILE.npz',
                        help='save image_features, text_features, logits, mask, labels')
    parser.add_argument('--max-words', type=int, default=32,
                        help='with --wordfree: keep the most frequent N words (default 32)')
    add_max_pixels_argument(parser)
    return parser


def read_rgb(path: str, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (8-bit conversion for 16-bit files).

    The size in the file's header is checked against ``max_pixels`` (0: no limit) before
    the image is decoded (:func:`lseg_ros.formats.image_codec.read_image_file`).
    """
    if not os.path.isfile(path):
        raise ImageError(f'image not found: {path}')
    return read_image_file(path, max_pixels)


def write_image(path: str, image: np.ndarray) -> None:
    """Write an image (RGB or single channel); raises :class:`ImageError` on failure.

    The file is written under a temporary name and renamed when complete, so an
    interruption never leaves a truncated image.
    """
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    with staged_path(path) as staged:
        try:
            written = cv2.imwrite(staged, data)
        except cv2.error:
            written = False
        if not written:
            raise ImageError(f'cannot write {path} (unknown extension or not writable)')


def main(args: argparse.Namespace) -> int:
    """Run the tool."""
    from lseg_ros.core.backends.factory import user_options
    from lseg_ros.core.pipeline import LsegPipeline, OutputRequest    # torch: not for --help
    if not 0.0 <= args.alpha <= 1.0:
        raise ImageError(f'--alpha must be within 0..1, got {args.alpha}')
    check_max_pixels(args.max_input_pixels)
    rgb = read_rgb(args.image, args.max_input_pixels)
    pipeline = LsegPipeline.from_checkpoint(
        args.checkpoint, backend=args.backend, device=args.device, precision=args.precision,
        input_size=args.size, engine=args.engine, onnx=args.onnx,
        labels=args.labels or 'other', **user_options(args.backend, args.compile))
    label_set = None
    if args.wordfree:
        from lseg_ros.core.wordfree import wordfree_labels
        label_set = wordfree_labels(pipeline, rgb, max_words=args.max_words)
    request = OutputRequest(overlay=True, overlay_alpha=args.alpha, raw=bool(args.save_raw))
    result = pipeline.segment(rgb, request, label_set)
    write_image(args.output, result.overlay)
    mask_path = args.mask_output or os.path.splitext(args.output)[0] + '_mask.png'
    write_image(mask_path, result.mask)
    labels = result.label_set.labels
    if args.save_raw:
        with staged_path(args.save_raw) as staged, open(staged, 'wb') as handle:
            np.savez_compressed(
                handle, image_features=result.image_features,
                text_features=result.label_set.text_features.numpy(), logits=result.logits,
                mask=result.mask, labels=np.array(labels), image_rgb=rgb,
                input_size=np.array(result.geometry.padded))
    counts = np.bincount(result.mask.ravel(), minlength=len(labels))
    order = np.argsort(-counts, kind='stable')
    print(('words found' if args.wordfree else 'labels') + f' ({pipeline.variant.name}, '
          f'{pipeline.backend.name} on {pipeline.device}, input {result.geometry.padded[1]}x'
          f'{result.geometry.padded[0]}, {result.timings["total"]:.0f} ms):')
    for index in order:
        if counts[index] or not args.wordfree:
            print(f'  {index:3d} {labels[index]!r}: {100.0 * counts[index] / counts.sum():5.1f} %')
    print(f'wrote {args.output} and {mask_path}'
          + (f' and {args.save_raw}' if args.save_raw else ''))
    return 0


def entry(argv=None) -> int:
    """Console-script entry point."""
    return run_main(main, build_parser(), argv)


if __name__ == '__main__':
    sys.exit(entry())
