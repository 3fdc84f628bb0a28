"""Wav2Lip test weights and checkpoint files (the parity data's stand-in weights rule).

`rule_tensor`/`rule_state_dict` reproduce the deterministic rule that generated
tests/data/wav2lip/reference_io.npz with the original Wav2Lip code (reference data, copied
as test code): every tensor comes from its own generator seeded by the CRC32 of its key.
Other lip-sync tests can use `write_checkpoint` to get official-format files.
"""

from __future__ import annotations

import json
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "wav2lip"
LAYOUT_JSON = DATA / "state_dict_layout.json"


def rule_tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    name = key.rsplit(".", 1)[-1]
    if name == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    if name == "running_mean":
        return rng.normal(0.0, 0.05, shape).astype(np.float32)
    if name == "running_var":
        return rng.uniform(0.8, 1.25, shape).astype(np.float32)
    if len(shape) == 1 and key.endswith("conv_block.1.weight"):  # BatchNorm gamma
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    if len(shape) == 1:  # conv bias or BatchNorm beta
        return rng.normal(0.0, 0.02, shape).astype(np.float32)
    fan = int(np.prod(shape[1:]))
    return rng.normal(0.0, np.sqrt(1.0 / fan), shape).astype(np.float32)


def layout() -> dict[str, list[int]]:
    return json.loads(LAYOUT_JSON.read_text())["layout"]


@lru_cache(maxsize=1)
def rule_state_dict() -> dict[str, np.ndarray]:
    """The rule's weights for every key of the official layout (about 1 s, cached)."""
    return {k: rule_tensor(k, tuple(s)) for k, s in sorted(layout().items())}


def rule_tensors() -> dict:
    import torch

    return {k: torch.from_numpy(v) for k, v in rule_state_dict().items()}


def write_checkpoint(path: Path, *, official: bool = True) -> Path:
    """An official-format file ({'state_dict': {'module.'+k}, 'optimizer', steps}) or a bare
    state dict, with the rule's weights."""
    import torch

    tensors = rule_tensors()
    if official:
        optimizer = {"state": {0: {"step": torch.tensor(10.0),
                                   "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
                     "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.999), "eps": 1e-8,
                                       "weight_decay": 0, "amsgrad": False, "params": [0]}]}
        torch.save({"state_dict": {"module." + k: v for k, v in tensors.items()},
                    "optimizer": optimizer, "global_step": 10, "global_epoch": 1}, path)
    else:
        torch.save(tensors, path)
    return path


def reference_faces(key: str = "face_batch") -> np.ndarray:
    """The parity inputs' faces as the pipeline gives them: (B, 96, 96, 3) uint8 BGR."""
    batch = np.load(DATA / "reference_io.npz")[key]
    return np.round(batch[:, 3:].transpose(0, 2, 3, 1) * 255).astype(np.uint8)


def reference_mels() -> np.ndarray:
    return np.load(DATA / "reference_io.npz")["mel_batch"][:, 0]
