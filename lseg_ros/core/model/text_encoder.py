# Copyright 2026 The lseg_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""CLIP ViT-B/32 text encoder built with open_clip from a checkpoint's ``clip_pretrained.*``.

Raw labels are tokenised (no prompt template, as in LSeg) with open_clip's tokenizer.
Because CLIP's text transformer is causal, the embedding taken at the end-of-text token
depends only on the tokens before it; sequences are therefore cut after the longest
end-of-text position of the batch, which gives the same result as the padded 77-token
forward at a fraction of the cost.  Embeddings are cached per label string.
"""

import threading
from typing import Dict, Mapping, Sequence

import torch

from lseg_ros.core.errors import LabelError
from lseg_ros.core.labels import MAX_LABEL_CHARS

CONTEXT_LENGTH = 77
TEXT_WIDTH = 512
TEXT_LAYERS = 12
TEXT_HEADS = 8
VOCAB_SIZE = 49408
EMBED_DIM = 512
#: Label embeddings kept (least recently used dropped first).
CACHE_SIZE = 4096


def _tokenizer():
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer(context_length=CONTEXT_LENGTH)


class ClipTextEncoder:
    """Labels -> (K, 512) CLIP text embeddings (not normalised), cached per label."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor], device='cpu',
                 dtype=torch.float32):
        from open_clip.transformer import QuickGELU, TextTransformer

        self.device = torch.device(device)
        self.dtype = dtype
        model = TextTransformer(context_length=CONTEXT_LENGTH, vocab_size=VOCAB_SIZE,
                                width=TEXT_WIDTH, heads=TEXT_HEADS, layers=TEXT_LAYERS,
                                output_dim=EMBED_DIM, act_layer=QuickGELU)
        state = {k: v for k, v in state_dict.items() if not k.startswith('visual.')
                 and k != 'logit_scale'}
        model.load_state_dict(state, strict=True)
        self.model = model.to(self.device, dtype).eval().requires_grad_(False)
        self.tokenizer = _tokenizer()
        self.sot = self.tokenizer.sot_token_id
        self.eot = self.tokenizer.eot_token_id
        self._cache: Dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def tokenize(self, labels: Sequence[str]) -> torch.Tensor:
        """Return (K, 77) int64 tokens; raises :class:`LabelError` for a too-long label.

        A label longer than :data:`~lseg_ros.core.labels.MAX_LABEL_CHARS` characters is
        refused before it is tokenised (the BPE tokenizer is quadratic in a word's length).
        """
        rows = []
        for label in labels:
            if len(label) > MAX_LABEL_CHARS:
                raise LabelError(f'label {label[:24]!r}... is {len(label):,} characters long; '
                                 f'at most {MAX_LABEL_CHARS} are accepted')
            ids = self.tokenizer.encode(label)
            if len(ids) + 2 > CONTEXT_LENGTH:
                raise LabelError(f'label {label[:40]!r}… is {len(ids)} tokens long; CLIP takes '
                                 f'at most {CONTEXT_LENGTH - 2}')
            rows.append([self.sot] + ids + [self.eot])
        tokens = torch.zeros(len(rows), CONTEXT_LENGTH, dtype=torch.int64)
        for i, row in enumerate(rows):
            tokens[i, :len(row)] = torch.tensor(row)
        return tokens

    @torch.inference_mode()
    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP ``encode_text`` for (N, 77) tokens -> (N, 512) float32 on the CPU."""
        eot = tokens.argmax(dim=-1)
        length = int(eot.max()) + 1
        model = self.model
        x = model.token_embedding(tokens[:, :length].to(self.device))
        x = x + model.positional_embedding[:length]
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot.to(x.device)]
        return (x @ model.text_projection).float().cpu()

    def encode(self, labels: Sequence[str]) -> torch.Tensor:
        """Return the (K, 512) float32 embeddings of ``labels`` (cached per label)."""
        with self._lock:
            todo = [label for label in dict.fromkeys(labels) if label not in self._cache]
            rows = dict(zip(todo, self.encode_tokens(self.tokenize(todo)))) if todo else {}
            rows.update((label, self._cache[label]) for label in labels if label not in rows)
            for label, row in rows.items():          # most recently used last
                self._cache.pop(label, None)
                self._cache[label] = row
            while len(self._cache) > CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            return torch.stack([rows[label] for label in labels])

    def vocabulary(self):
        """Return ``(token_ids, words)`` of every ordinary token of CLIP's BPE vocabulary."""
        decoder = self.tokenizer.decoder
        ids = [i for i in sorted(decoder) if i not in (self.sot, self.eot)]
        words = [decoder[i].replace('</w>', '') for i in ids]
        return ids, words

    def encode_vocabulary(self, limit: int = None, batch: int = 2048) -> torch.Tensor:
        """Embed every (or the first ``limit``) vocabulary token as a one-token text."""
        ids = self.vocabulary()[0][:limit]
        out = []
        for start in range(0, len(ids), batch):
            chunk = torch.tensor(ids[start:start + batch])
            tokens = torch.zeros(len(chunk), CONTEXT_LENGTH, dtype=torch.int64)
            tokens[:, 0], tokens[:, 1], tokens[:, 2] = self.sot, chunk, self.eot
            out.append(self.encode_tokens(tokens))
        return torch.cat(out)
