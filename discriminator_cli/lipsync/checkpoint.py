"""Reading Wav2Lip checkpoints: official files, bare state dicts and our int8 files.

Official wav2lip.pth / wav2lip_gan.pth are `torch.save({'state_dict': {'module.' + key: ...},
'optimizer': ..., 'global_step': ..., 'global_epoch': ...})` (the prefix is DataParallel's);
community files often hold the bare state dict. Everything is read with
torch.load(weights_only=True): a checkpoint is data, and must not be able to run code.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync.int8 import is_int8_state
from discriminator_cli.lipsync.model import Wav2Lip

WHERE_TO_GET = ("use the official wav2lip.pth or wav2lip_gan.pth (see the README), or a file "
                "written by `discriminator quantize`")
_DATA_PARALLEL_PREFIX = "module."
_LIST_AT_MOST = 6


@dataclass
class Checkpoint:
    """A checkpoint's contents: either an fp32 state dict or an int8 state (kind says which)."""

    path: Path
    kind: str                       # "fp32" or "int8"
    state_dict: dict[str, Tensor]   # fp32: Wav2Lip keys without "module."; int8: empty
    int8_state: dict[str, Any] | None = None
    layout: str = ""                # "official" (wrapped, module.), "bare", or "int8"


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise BadInputError("checkpoint not found", path=path, hint=WHERE_TO_GET)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    # torch.save writes a zip archive; files from torch < 1.6 are a bare pickle stream.
    if not (magic.startswith(b"PK") or magic[:1] == b"\x80"):
        raise _not_torch(path, f"starts with {magic!r}, not a zip archive or a pickle")
    try:
        with warnings.catch_warnings():
            # torch's note on a bare pickle's protocol; the verdict on the file is ours.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            raise BadInputError(
                "the checkpoint holds Python objects other than tensors and numbers, which "
                "are not loaded (they could run code)", path=path,
                hint="re-save it as a plain state dict: torch.save(model.state_dict(), FILE)"
            ) from exc
        raise _not_torch(path, text) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError,
            KeyError) as exc:
        # A damaged pickle stream fails in the unpickler with whatever error it hits first.
        raise _not_torch(path, f"{type(exc).__name__}: {exc}") from exc


def _not_torch(path: Path, detail: str) -> BadInputError:
    first = detail.strip().splitlines()[0] if detail.strip() else "unreadable"
    return BadInputError(f"truncated or not a torch file ({first[:160]})", path=path,
                         hint="download the checkpoint again (compare its size and sha256) — "
                              + WHERE_TO_GET)


def read_checkpoint(path: Path | str) -> Checkpoint:
    """Load and unwrap a checkpoint file; the keys are not checked against the model here."""
    path = Path(path)
    obj = _torch_load(path)
    if is_int8_state(obj):
        return Checkpoint(path, "int8", {}, obj, "int8")
    if not isinstance(obj, dict):
        raise BadInputError(f"expected a dict of tensors, found {type(obj).__name__}",
                            path=path, hint=WHERE_TO_GET)
    layout = "bare"
    state = obj
    if isinstance(obj.get("state_dict"), dict):
        state, layout = obj["state_dict"], "official"
    elif isinstance(obj.get("model"), dict):
        state, layout = obj["model"], "official"
    tensors = {_strip(str(k)): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise BadInputError("no tensors in this file", path=path, hint=WHERE_TO_GET)
    return Checkpoint(path, "fp32", tensors, None, layout)


def _strip(key: str) -> str:
    return key[len(_DATA_PARALLEL_PREFIX):] if key.startswith(_DATA_PARALLEL_PREFIX) else key


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_AT_MOST])
    more = len(keys) - _LIST_AT_MOST
    return f"{shown} (+{more} more)" if more > 0 else shown


def layout_problems(state: dict[str, Tensor], model: Wav2Lip) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches, as short sentences."""
    expected = model.state_dict()
    # num_batches_tracked only counts training steps; files without it are fine for inference.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (file != model): "
                        f"{_listing(mismatched)}")
    return problems


def load_wav2lip(path: Path | str, checkpoint: Checkpoint | None = None) -> Wav2Lip:
    """An fp32 Wav2Lip in eval mode with the file's weights (BatchNorm not yet folded)."""
    checkpoint = checkpoint or read_checkpoint(path)
    if checkpoint.kind != "fp32":
        raise BadInputError("this is an int8 file from `discriminator quantize`, not an fp32 "
                            "checkpoint", path=checkpoint.path,
                            hint="give the original checkpoint, or load this one as int8")
    model = Wav2Lip()
    problems = layout_problems(checkpoint.state_dict, model)
    if problems:
        raise BadInputError("not a Wav2Lip checkpoint: " + "; ".join(problems),
                            path=checkpoint.path,
                            hint="is this the generator (wav2lip.pth / wav2lip_gan.pth), not "
                                 "the expert discriminator (lipsync_expert.pth)? " + WHERE_TO_GET)
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in checkpoint.state_dict.items()}
    model.load_state_dict(state, strict=False)
    return model.eval()
