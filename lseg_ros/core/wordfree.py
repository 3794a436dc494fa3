# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Word-free segmentation: label pixels with their nearest token of the CLIP vocabulary.

Like the reference project's word-free demo, no labels are given: every ordinary token of
CLIP's BPE vocabulary (49,406 of them) is embedded as a one-token text, each pixel of the
(H/2, W/2) feature map takes its nearest token (cosine), and the tokens that win some
pixels become the labels of an ordinary segmentation, so the mask is computed by the same
head as with user labels.  The vocabulary embeddings depend only on the checkpoint's CLIP
weights and are cached on disk, keyed by a hash of those weights.
"""

import hashlib
import logging
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from lseg_ros.core.cache import cache_dir
from lseg_ros.core.pipeline import LabelSet, LsegPipeline

LOG = logging.getLogger(__name__)


def _weights_hash(text_encoder) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(text_encoder.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes()[:1 << 16])
    return digest.hexdigest()[:16]


def vocabulary_embeddings(text_encoder, limit: Optional[int] = None
                          ) -> Tuple[List[str], torch.Tensor]:
    """Return the vocabulary's words and (V, 512) embeddings, from the disk cache if there.

    ``limit`` keeps only the first ``limit`` tokens (quick tries and tests).
    """
    ids, words = text_encoder.vocabulary()
    if limit:
        ids, words = ids[:limit], words[:limit]
    path = cache_dir() / f'vocab_{_weights_hash(text_encoder)}_{len(ids)}.pt'
    if path.exists():
        return words, torch.load(path, weights_only=True)
    LOG.info('embedding %d vocabulary tokens (once; cached in %s)', len(ids), path)
    embeddings = text_encoder.encode_vocabulary(limit=len(ids))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(embeddings, path)
    return words, embeddings


@torch.inference_mode()
def wordfree_labels(pipeline: LsegPipeline, rgb: np.ndarray, max_words: int = 64,
                    limit: Optional[int] = None) -> LabelSet:
    """Find the vocabulary tokens nearest to the pixels of ``rgb``; return them as labels.

    Words are ordered by how many feature pixels they win; at most ``max_words`` are kept.
    Tokens that decode to the same word (``dog`` as a word and as a word prefix) are merged.
    """
    words, vocab = vocabulary_embeddings(pipeline.text_encoder, limit)
    geometry = pipeline.geometry(rgb.shape[0], rgb.shape[1])
    image = torch.from_numpy(np.ascontiguousarray(rgb)).to(pipeline.device)
    features = pipeline.backend(pipeline.normalizer(image, geometry))
    fh, fw = geometry.feature_valid
    pixels = F.normalize(features[0, :, :fh, :fw].float().flatten(1).t(), dim=1)
    vocab_n = F.normalize(vocab.to(pipeline.device), dim=1)
    winners = torch.cat([(chunk @ vocab_n.t()).argmax(dim=1) for chunk in pixels.split(512)])
    ids, counts = torch.unique(winners, return_counts=True)
    order = counts.argsort(descending=True)
    chosen, seen = [], set()
    for i in ids[order].tolist():
        key = words[i].strip().lower()
        if key and key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == max_words:
            break
    labels = [words[i].strip() for i in chosen]
    return pipeline.label_set_from_embeddings(labels, vocab[chosen])
