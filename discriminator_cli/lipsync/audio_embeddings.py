"""The audio encoder's output per mel window, remembered across clips.

Every viewer of one narration sends the same mel windows through the audio encoder (frame i
of each clip reads window i), so a hot engine (watch mode, `discriminator serve`) computes each
window's embedding once. Windows are keyed by a 128-bit BLAKE2b digest of their float32 bytes:
equal windows from any narration or clip share an entry, and a different window cannot take
another's (a collision is as likely as a guessed key). The cache is bounded (least recently
used goes first) and shared by the engine's lanes, hence the lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

# 8192 windows: five and a half minutes of narration at 25 frames/s, ~16 MB of fp32
# embeddings (512 values each) and their keys.
DEFAULT_CAPACITY = 8192


def window_key(window: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(window, np.float32).tobytes(),
                           digest_size=16).digest()


class AudioEmbeddingCache:
    """`embed(mels)` -> encode(mels) of (B, 80, 16) windows, each window encoded once."""

    def __init__(self, encode: Callable[[np.ndarray], Tensor],
                 capacity: int = DEFAULT_CAPACITY):
        self._encode = encode
        self.capacity = capacity
        self._entries: OrderedDict[bytes, Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def embed(self, mels: np.ndarray) -> Tensor:
        if len(mels) == 0:
            return self._encode(np.ascontiguousarray(mels))
        keys = [window_key(window) for window in mels]
        found: list[Tensor | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                found.append(entry)
            missing = [index for index, entry in enumerate(found) if entry is None]
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
        if missing:
            # Encoded outside the lock: two lanes may encode the same new window at once,
            # which costs a little work and stores equal values.
            computed = self._encode(np.ascontiguousarray(mels[missing]))
            new = {index: computed[row:row + 1].clone() for row, index in enumerate(missing)}
            with self._lock:
                for index, entry in new.items():
                    self._entries[keys[index]] = entry
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            found = [new.get(index, entry) for index, entry in enumerate(found)]
        rows = [entry for entry in found if entry is not None]
        return rows[0] if len(rows) == 1 else torch.cat(rows)
