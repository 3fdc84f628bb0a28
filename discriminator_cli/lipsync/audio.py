"""Wav2Lip's audio front end: any audio ffmpeg reads -> 16 kHz mono -> the training-time mel.

The checkpoints were trained on mels made with librosa 0.7/0.8, whose STFT padded the signal
with mode 'reflect'; librosa >= 0.10 pads with zeros by default, which changes the two edge
columns on each side. `melspectrogram` asks for reflect padding explicitly so it matches the
training front end with librosa 0.10 and 0.11 alike (keyword arguments only).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path, file_arg

SAMPLE_RATE = 16_000
MEL_WINDOW_COLUMNS = 16
# One mel column per hop: 16000 / 200 = 80 columns per second of audio.
MEL_COLUMNS_PER_SECOND = 80.0


@dataclass(frozen=True)
class MelParams:
    """Wav2Lip's hparams for the mel front end (the defaults are what the checkpoints expect)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 800
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    stft_pad_mode: str = "reflect"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_MEL_PARAMS = MelParams()


def decode_argv(ffmpeg: str, audio_path: Path, raw_path: Path) -> list[str]:
    """ffmpeg argv: first audio stream -> 16 kHz mono 32-bit float little-endian, headerless."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-i", file_arg(audio_path), "-map", "0:a:0", "-vn", "-ac", "1",
            "-ar", str(SAMPLE_RATE), "-f", "f32le", "-c:a", "pcm_f32le", str(raw_path)]


def load_audio(audio_path: Path | str, *, runner: CommandRunner | None = None) -> np.ndarray:
    """Decode any audio (or the audio of a video) ffmpeg reads into 16 kHz mono float32.

    The runner has no binary-stdout mode, so ffmpeg writes its raw samples to a private
    temporary file that is read back and removed (4 bytes per sample: 64 KB per second).
    """
    audio_path = Path(audio_path)
    if not audio_path.is_file():
        raise BadInputError("audio file not found", path=audio_path,
                            hint="give the path of an audio file (wav, mp3, m4a, ...)")
    runner = runner or CommandRunner()
    with tempfile.TemporaryDirectory(prefix="discriminator-audio-") as tmp:
        raw_path = Path(tmp) / "samples.f32"
        # mutating=False: this only reads the user's file (the output is our own temp file),
        # and a --dry-run plan needs the samples to count frames.
        try:
            runner.run(decode_argv(ffmpeg_path(), audio_path, raw_path),
                       what="ffmpeg audio decode", path=audio_path, mutating=False)
        except ToolFailedError as exc:
            # ffmpeg cannot decode the user's file: bad input (exit 2), as encode's probe says.
            lines = [line for line in exc.stderr.strip().splitlines() if line.strip()]
            if any("matches no streams" in line for line in lines):  # -map 0:a:0 found none
                raise BadInputError("has no audio stream", path=audio_path,
                                    hint="give the narration as an audio file (wav, mp3, m4a, "
                                         "...) or a video that has sound") from None
            reason = lines[-1].strip() if lines else "undecodable"
            raise BadInputError(f"not a readable audio file ({reason})", path=audio_path,
                                hint="give an audio file (wav, mp3, m4a, ...) or a video with "
                                     "an audio stream; re-export it if it was truncated"
                                ) from None
        samples = np.fromfile(raw_path, dtype="<f4")
    if samples.size == 0:
        raise BadInputError("the audio decodes to no samples", path=audio_path,
                            hint="check that the file has an audio stream and is not empty")
    return np.ascontiguousarray(samples, dtype=np.float32)


@lru_cache(maxsize=4)
def _mel_basis(params: MelParams) -> np.ndarray:
    from librosa.filters import mel as mel_filterbank

    return mel_filterbank(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels,
                          fmin=params.fmin, fmax=params.fmax)


def melspectrogram(wav: np.ndarray, params: MelParams = DEFAULT_MEL_PARAMS) -> np.ndarray:
    """16 kHz mono samples -> (80, columns) float32 in [-4, 4], as Wav2Lip was trained.

    Digital silence gives the floor value (-4) everywhere: the amplitude is clamped at
    10^(min_level_db/20) before the log, and NaN/inf samples are zeroed first.
    """
    import librosa
    from scipy.signal import lfilter

    wav = np.nan_to_num(np.asarray(wav, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    if wav.ndim != 1 or wav.size == 0:
        raise BadInputError(f"expected a non-empty mono signal, got shape {wav.shape}")
    emphasised = lfilter([1.0, -params.preemphasis], [1.0], wav).astype(np.float32)
    with warnings.catch_warnings():
        # A clip shorter than one FFT (under 50 ms) is padded, as center=True does anyway;
        # librosa's note about it is not the user's business.
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        spectrum = librosa.stft(y=emphasised, n_fft=params.n_fft,
                                hop_length=params.hop_length, win_length=params.win_length,
                                center=True, pad_mode=params.stft_pad_mode)
    mel = _mel_basis(params) @ np.abs(spectrum)
    floor = 10.0 ** (params.min_level_db / 20.0)
    db = 20.0 * np.log10(np.maximum(floor, mel)) - params.ref_level_db
    peak = params.max_abs_value
    normalised = (2 * peak) * ((db - params.min_level_db) / -params.min_level_db) - peak
    return np.clip(normalised, -peak, peak).astype(np.float32)


def _window_starts(columns: int, fps: float) -> list[int]:
    """Start column of each frame's window: int(i * 80/fps), as inference.py computes it."""
    if fps <= 0:
        raise BadInputError(f"fps must be positive, got {fps}")
    step = MEL_COLUMNS_PER_SECOND / fps
    starts = []
    index = 0
    while True:
        start = int(index * step)
        if start + MEL_WINDOW_COLUMNS > columns:
            # The last frame takes the final 16 columns, even if that overlaps the previous one.
            starts.append(max(0, columns - MEL_WINDOW_COLUMNS))
            return starts
        starts.append(start)
        index += 1


def frame_count(columns: int, fps: float) -> int:
    """How many video frames (mel windows) a mel of `columns` columns yields at `fps`."""
    # Shorter mels are padded to one window (see mel_windows).
    return len(_window_starts(max(columns, MEL_WINDOW_COLUMNS), fps))


def mel_windows(mel: np.ndarray, fps: float, *, start: int = 0,
                count: int | None = None) -> np.ndarray:
    """(80, columns) -> (N, 80, 16) float32: one window per video frame.

    `start`/`count` select frames [start, start+count) so long narrations can be fed to the
    model in batches without materialising every window. A mel shorter than one window is
    padded on the right with the silence floor.
    """
    floor = float(-DEFAULT_MEL_PARAMS.max_abs_value)
    if mel.shape[1] < MEL_WINDOW_COLUMNS:
        pad = np.full((mel.shape[0], MEL_WINDOW_COLUMNS - mel.shape[1]), floor, np.float32)
        mel = np.concatenate([mel, pad], axis=1)
    starts = _window_starts(mel.shape[1], fps)
    stop = len(starts) if count is None else min(len(starts), start + count)
    chosen = starts[start:stop]
    out = np.empty((len(chosen), mel.shape[0], MEL_WINDOW_COLUMNS), dtype=np.float32)
    for row, column in enumerate(chosen):
        out[row] = mel[:, column:column + MEL_WINDOW_COLUMNS]
    return out
