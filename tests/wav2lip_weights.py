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


def _face_like_batch() -> np.ndarray:
    """16 face crops (B, 96, 96, 3) uint8 BGR: the parity faces, the astronaut's face, flips
    and brightness changes of them (what BatchNorm statistics are gathered on)."""
    from skimage import data

    from discriminator_cli.lipsync.pipeline import crop_face

    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    faces = [*reference_faces(), reference_faces("still_face_batch")[0],
             crop_face(astronaut, (175, 70, 268, 173)), crop_face(astronaut, (160, 50, 290, 190))]
    faces += [face[:, ::-1] for face in faces]
    faces = faces[:8] + [np.clip(face.astype(np.int16) + shift, 0, 255).astype(np.uint8)
                         for face, shift in zip(faces[:8], (-40, -20, 20, 40) * 2, strict=True)]
    return np.ascontiguousarray(np.stack(faces[:16]))


def trained_like_state_dict(passes: int = 2) -> dict:
    """The rule's weights made to behave like a trained network's (issue 11): every
    BatchNorm's affine parameters randomised (seeded by its key), then its running statistics
    recomputed from scratch by forward passes in train mode with momentum=None (a cumulative
    average) on face-like and mel-like inputs. Activations then have trained-network ranges:
    each BatchNorm output is normalised, then scaled and shifted, through the whole chain."""
    import torch
    from torch import nn

    from discriminator_cli.lipsync.audio import mel_windows
    from discriminator_cli.lipsync.engine import faces_to_input
    from discriminator_cli.lipsync.model import Wav2Lip

    model = Wav2Lip()
    model.load_state_dict(rule_tensors())
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            rng = np.random.default_rng(zlib.crc32(f"{name}#trained".encode()))
            count = module.num_features
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, count)
                                                     .astype(np.float32)))
                module.bias.copy_(torch.from_numpy(rng.normal(0.0, 0.5, count)
                                                   .astype(np.float32)))
            module.reset_running_stats()
            module.momentum = None
    faces = faces_to_input(_face_like_batch())
    mel = np.load(DATA / "reference_mel.npz")["mel_librosa07"]
    windows = torch.from_numpy(mel_windows(mel, 25.0)).unsqueeze(1)
    model.train()
    with torch.no_grad():
        for step in range(passes):
            picks = torch.arange(16) * 4 + step * 2  # spread over the 72 windows
            model(windows[picks % len(windows)], faces.roll(step, 0))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    return model.eval().state_dict()


def write_trained_like_checkpoint(path: Path, passes: int = 2) -> Path:
    """An official-format file with trained_like_state_dict() (16 samples per pass)."""
    import torch

    state = trained_like_state_dict(passes)
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()},
                "global_step": 10, "global_epoch": 1}, path)
    return path
