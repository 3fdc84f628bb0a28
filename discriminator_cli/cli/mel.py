"""`discriminator mel AUDIO`: Wav2Lip's mel front end, cached by the audio's content."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import info, print_json


def register(app: typer.Typer) -> None:
    app.command("mel")(mel)


def mel(
    audio: Annotated[Path, typer.Argument(help="Any audio (or video) file ffmpeg can read.")],
    fps: Annotated[float, typer.Option("--fps", help="Video frame rate: how many 16-column "
                                       "mel windows the narration yields.")] = 25.0,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Cache root (default $DISCRIMINATOR_CACHE_DIR or the XDG cache).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Compute (or find in the cache) the 80-band mel Wav2Lip was trained on."""
    from discriminator_cli.lipsync import lipsync_imports, require_lipsync_extra

    require_lipsync_extra("discriminator mel", ("numpy", "scipy", "librosa"))
    with lipsync_imports("discriminator mel"):
        from discriminator_cli.lipsync.mel_cache import get_or_compute_mel
    entry = get_or_compute_mel(audio, cache_dir, fps=fps)
    if json_output:
        print_json(entry.as_dict())
        return
    state = "cache hit" if entry.hit else "computed"
    info(f"{audio}: mel {entry.shape[0]}x{entry.shape[1]} ({entry.duration_s:.2f} s, "
         f"{entry.frames} frames at {fps:g} fps) — {state}")
    print(entry.path)
