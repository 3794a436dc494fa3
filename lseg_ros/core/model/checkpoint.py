# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Reading official lang-seg checkpoints safely and checking their layout strictly.

Reading: ``torch.load(weights_only=True, mmap=True)``, so no pickled code runs and tensors
are memory-mapped from the file (the 3.1 GB ``demo_e200.ckpt`` also holds optimizer state
that is never read into memory).  Lightning 1.4 checkpoints may pickle references to
Lightning classes (e.g. callback types used as dict keys), which ``weights_only`` refuses;
for those the file is read again with :class:`_InertUnpickler`, which resolves only torch's
tensor-rebuild functions and plain containers and turns every other global into an inert
placeholder: nothing is imported from the file's references and no code is executed.

Checking: the bare keys (``net.`` removed) must be exactly the official key set of the
detected variant with the official shapes (manifests shipped in ``core/model/manifests``);
otherwise :class:`CheckpointError` names every missing, unexpected and mis-shaped key.
Then every tensor the encoders use must have a floating-point dtype where the manifest has
one (an integer or boolean tensor there would be cast silently into garbage) and only
finite values (no NaN, no infinity); otherwise one line names the tensor.
"""

from dataclasses import dataclass, field
import logging
import os
import pickle
import time
from typing import Dict, List, Mapping

import torch

from lseg_ros.core.errors import CheckpointError
from lseg_ros.core.model.variants import detect_variant, LIGHTNING_PREFIX, Variant

LOG = logging.getLogger(__name__)

TEXT_PREFIX = 'clip_pretrained.'
_SHOW = 20  # keys listed per category in an error message
#: Buffers that are integers in every official layout (BatchNorm's step counter).
INTEGER_BUFFERS = ('num_batches_tracked',)


@dataclass
class LsegWeights:
    """The checked tensors of a checkpoint, split into what each encoder needs."""

    variant: Variant
    image: Dict[str, torch.Tensor]
    text: Dict[str, torch.Tensor]
    dropped: List[str] = field(default_factory=list)
    source: str = ''
    read_seconds: float = 0.0


class _Inert:
    """Placeholder for a pickled global that is not allowed: stores nothing, runs nothing."""

    _lseg_name = 'unknown'

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self):
        return f'<inert {self._lseg_name}>'


def _inert_class(module: str, name: str):
    return type('Inert', (_Inert,), {'_lseg_name': f'{module}.{name}'})


_ALLOWED_GLOBALS = {
    ('collections', 'OrderedDict'),
    ('torch._utils', '_rebuild_tensor_v2'),
    ('torch._utils', '_rebuild_parameter'),
    ('torch._utils', '_rebuild_parameter_with_state'),
    ('torch', 'Size'),
    ('torch', 'device'),
    ('builtins', 'set'),
    ('builtins', 'frozenset'),
    ('builtins', 'slice'),
    ('builtins', 'complex'),
}


class _InertUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensor rebuilding and plain containers."""

    replaced: set = set()

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS or (
                module == 'torch' and name.endswith('Storage')) or (
                module == 'torch' and name in ('float16', 'float32', 'float64', 'bfloat16',
                                               'int64', 'int32', 'int16', 'int8', 'uint8',
                                               'bool')):
            return super().find_class(module, name)
        type(self).replaced.add(f'{module}.{name}')
        return _inert_class(module, name)


class _InertPickleModule:
    """A ``pickle_module`` for ``torch.load`` built on :class:`_InertUnpickler`."""

    Unpickler = _InertUnpickler
    __name__ = 'lseg_ros_inert_pickle'

    @staticmethod
    def load(file, **kwargs):
        return _InertUnpickler(file, **kwargs).load()


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file and return its bare LSeg state dict (``net.`` removed).

    Accepts the official Lightning file (``{'state_dict': {'net.…': tensor}}``) and, for
    convenience, a plain state dict with or without the ``net.`` prefix.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f'checkpoint not found: {path} (download an official lang-seg '
                              'checkpoint such as demo_e200.ckpt; see models/README.md)')
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint path is not a file: {path}')
    try:
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except pickle.UnpicklingError as error:
            LOG.debug('weights_only load refused (%s); reading with inert globals', error)
            _InertUnpickler.replaced = set()
            obj = torch.load(path, map_location='cpu', weights_only=False, mmap=True,
                             pickle_module=_InertPickleModule)
            LOG.info('checkpoint %s: ignored non-tensor pickled objects %s', path,
                     sorted(_InertUnpickler.replaced))
    except CheckpointError:
        raise
    except Exception as error:  # noqa: B902 - any reader failure is a bad file
        raise CheckpointError(f'cannot read checkpoint {path}: {type(error).__name__}: '
                              f'{error} (truncated download or not a PyTorch file?)') from None
    if isinstance(obj, Mapping) and 'state_dict' in obj:
        state = obj['state_dict']
        if not isinstance(state, Mapping):
            raise CheckpointError(f'{path}: its state_dict is a {type(state).__name__}, not a '
                                  'dict of tensors')
    else:
        state = obj
    if not isinstance(state, Mapping):
        raise CheckpointError(f'{path} holds no state_dict (found {type(obj).__name__})')
    if not state:
        raise CheckpointError(f'{path} holds an empty state_dict')
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f'{path}: state_dict entries that are not tensors: {bad[:_SHOW]}')
    if all(k.startswith(LIGHTNING_PREFIX) for k in state):
        state = {k[len(LIGHTNING_PREFIX):]: v for k, v in state.items()}
    return dict(state)


def split_state_dict(state: Mapping[str, torch.Tensor], source: str = '') -> LsegWeights:
    """Check a bare state dict against the official layout and split it.

    Every official key must be present with its official shape and no other key may be;
    the unused groups (CLIP image tower, CLIP logit scale, ViT final norm and classifier)
    are dropped explicitly.
    """
    variant = detect_variant(state.keys())
    expected = {k['key']: k['shape'] for k in variant.manifest()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f'{k}: expected {list(expected[k])}, found {list(state[k].shape)}'
                 for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or misshaped:
        parts = []
        for title, items in (('missing', missing), ('unexpected', unexpected),
                             ('wrong shape', misshaped)):
            if items:
                more = f' … and {len(items) - _SHOW} more' if len(items) > _SHOW else ''
                parts.append(f'{len(items)} {title}: ' + ', '.join(items[:_SHOW]) + more)
        raise CheckpointError(
            f'{source or "checkpoint"} does not have the official {variant.description} layout '
            f'({variant.checkpoints}): ' + '; '.join(parts))
    dtypes = {k['key']: k.get('dtype') for k in variant.manifest()}
    check_tensors({k: v for k, v in state.items() if not k.startswith(variant.ignored_prefixes)},
                  dtypes, source)
    image, text, dropped = {}, {}, []
    for key, value in state.items():
        if key.startswith(variant.ignored_prefixes):
            dropped.append(key)
        elif key.startswith(TEXT_PREFIX):
            text[key[len(TEXT_PREFIX):]] = value
        else:
            image[key] = value
    return LsegWeights(variant, image, text, dropped, source)


def _is_float_dtype(name: str) -> bool:
    return name.startswith(('float', 'bfloat', 'half', 'double'))


def _non_finite(tensor: torch.Tensor) -> str:
    """Describe the non-finite values of ``tensor`` ('' when all are finite).

    Fast path, one pass that allocates nothing of the tensor's size (memory-mapped tensors
    are only read): a NaN or an infinity makes the sum non-finite, so a finite sum (in
    float32 for 16-bit tensors, which cannot overflow it) proves every value finite.  Only a
    tensor whose sum is not finite is checked value by value, and counted.
    """
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return ''
    wide = torch.float32 if tensor.element_size() < 4 else None
    if bool(torch.isfinite(tensor.sum(dtype=wide))):
        return ''
    flat = tensor.reshape(-1)
    nan = int(torch.isnan(flat).sum())
    inf = int(torch.isinf(flat).sum())
    if not nan and not inf:                 # huge finite values whose sum overflowed
        return ''
    if nan == flat.numel():
        return 'all its values are NaN'
    parts = [f'{nan:,} NaN'] if nan else []
    if inf:
        parts.append(f'{inf:,} infinite')
    return ' and '.join(parts) + f' of {flat.numel():,} values'


def check_tensors(state: Mapping[str, torch.Tensor], dtypes: Mapping[str, str],
                  source: str = '') -> None:
    """Refuse tensors of the wrong kind of dtype or with NaN/infinite values.

    ``dtypes`` maps keys to the manifest dtype names: where it names a floating-point type
    the tensor must be floating point (float16/32/64 and bfloat16 are all accepted, they are
    cast); a key without a manifest dtype must be floating point unless it is one of
    :data:`INTEGER_BUFFERS`.  Every floating-point tensor must be finite.  Raises
    :class:`CheckpointError` with one line naming the first bad tensor.
    """
    where = source or 'checkpoint'
    wrong, broken = [], []
    for key, tensor in state.items():
        expected = dtypes.get(key)
        floating = (_is_float_dtype(expected) if expected
                    else key.rsplit('.', 1)[-1] not in INTEGER_BUFFERS)
        if floating and not tensor.is_floating_point():
            found = str(tensor.dtype).replace('torch.', '')
            wrong.append(f'tensor {key} has dtype {found}, the official layout has '
                         f'{expected or "a floating-point dtype"}')
            continue
        problem = _non_finite(tensor)
        if problem:
            broken.append(f'tensor {key} {tuple(tensor.shape)} is not finite: {problem}')
    for problems, advice in ((wrong, 'a converted or damaged file'),
                             (broken, 'damaged weights or a diverged training run')):
        if problems:
            more = (f' (and {len(problems) - 1} more tensor(s) like it)'
                    if len(problems) > 1 else '')
            raise CheckpointError(f'{where}: {problems[0]}{more}; {advice}: use an official '
                                  'checkpoint')


def load_weights(path: str) -> LsegWeights:
    """Read, check and split an official checkpoint; logs how long it took."""
    start = time.perf_counter()
    weights = split_state_dict(read_state_dict(path), os.fspath(path))
    weights.read_seconds = time.perf_counter() - start
    LOG.info('checkpoint %s: %s, %d image + %d text tensors (%d unused dropped), read in %.2f s',
             path, weights.variant.description, len(weights.image), len(weights.text),
             len(weights.dropped), weights.read_seconds)
    return weights


def build_image_encoder(weights: LsegWeights, device='cpu', dtype=torch.float32):
    """Build the image encoder of ``weights.variant`` and load its tensors strictly.

    The module is created on the meta device and the checkpoint tensors are assigned,
    so no time is spent on a random initialisation that would be overwritten.
    """
    from lseg_ros.core.model.image_encoder import LsegImageEncoder

    with torch.device('meta'):
        encoder = LsegImageEncoder(weights.variant)
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in weights.image.items()}
    encoder.load_state_dict(state, strict=True, assign=True)
    return encoder.to(device).eval().requires_grad_(False)
