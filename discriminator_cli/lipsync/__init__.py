"""Wav2Lip lip-sync: audio front end, mel cache, model, checkpoints, reduced precision.

Everything here needs the optional `lipsync` extra (torch, numpy, librosa). The base CLI never
imports this package's heavy modules at start-up; commands call `require_lipsync_extra()` (or
import inside `lipsync_imports()`) so that a missing extra becomes a MissingExtraError with the
install instructions instead of a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Literal, get_args

from discriminator_cli.errors import MissingExtraError

# The choices of the lip-sync options, here (torch-free) so the CLI can list them in --help.
Precision = Literal["auto", "fp32", "bf16", "int8"]
Device = Literal["cpu", "cuda"]
DetectorName = Literal["auto", "s3fd", "lbp"]
DETECTORS: tuple[str, ...] = get_args(DetectorName)

EXTRA_HINT = ("pip install torch==2.13.0 (CPU build) first, "
              "then pip install 'discriminator-cli[lipsync]'")
_REQUIRED_MODULES = ("numpy", "torch", "librosa", "scipy")


def missing_extra(what: str, exc: ImportError) -> MissingExtraError:
    name = exc.name or str(exc)
    return MissingExtraError(f"{what} needs the lipsync extra ({name} is not installed)",
                             hint=EXTRA_HINT)


def require_lipsync_extra(what: str, modules: tuple[str, ...] = _REQUIRED_MODULES) -> None:
    """Import the extra's modules now, or raise MissingExtraError naming the first missing."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise missing_extra(what, exc) from exc


@contextlib.contextmanager
def lipsync_imports(what: str) -> Iterator[None]:
    """`with lipsync_imports("discriminator mel"): from ... import ...` — ImportError explained."""
    try:
        yield
    except ImportError as exc:
        raise missing_extra(what, exc) from exc
