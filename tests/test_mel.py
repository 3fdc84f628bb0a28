"""Mel front end: parity with the training-time librosa 0.7 mel, ffmpeg input, windows, cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("librosa")
np = pytest.importorskip("numpy")

from discriminator_cli.cli.app import main  # noqa: E402
from discriminator_cli.errors import BadInputError  # noqa: E402
from discriminator_cli.lipsync.audio import (  # noqa: E402
    frame_count,
    load_audio,
    mel_windows,
    melspectrogram,
)
from discriminator_cli.lipsync.mel_cache import get_or_compute_mel  # noqa: E402
from discriminator_cli.runner import CommandRunner  # noqa: E402
from discriminator_cli.tools import ffmpeg_path  # noqa: E402
from tests.wav2lip_weights import DATA  # noqa: E402

pytestmark = pytest.mark.lipsync

SPEECH = DATA / "speech_3s_16k.wav"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(DATA / "reference_mel.npz"))


def _ffmpeg(*args: str) -> None:
    CommandRunner().run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", *args],
                        what="test ffmpeg")


def test_mel_matches_librosa07(reference: dict) -> None:
    mel = melspectrogram(reference["wav"])
    assert mel.shape == (80, 241) and mel.dtype == np.float32
    assert np.abs(mel - reference["mel_librosa07"]).max() <= 1e-4
    # Reflect padding matters: librosa >= 0.10's default (zeros) changes the edge columns.
    edges = np.abs(mel - reference["mel_librosa011"])[:, [0, 1, -2, -1]]
    assert edges.max() > 1e-2


def test_ffmpeg_decode_is_exact_for_16k_pcm(reference: dict) -> None:
    runner = CommandRunner()
    wav = load_audio(SPEECH, runner=runner)
    assert wav.dtype == np.float32 and np.array_equal(wav, reference["wav"])
    assert len(runner.history) == 1 and runner.history[0][0] == ffmpeg_path()


def test_other_formats_are_resampled_to_16k_mono(tmp_path: Path, reference: dict) -> None:
    stereo = tmp_path / "speech_44k_stereo.flac"
    _ffmpeg("-i", str(SPEECH), "-ar", "44100", "-ac", "2", str(stereo))
    wav = load_audio(stereo)
    assert abs(len(wav) - 48000) <= 16
    mel = melspectrogram(wav)
    columns = min(mel.shape[1], 241)
    # Two resamplings change the signal a little, not the spectrogram's content.
    diff = np.abs(mel[:, :columns] - reference["mel_librosa07"][:, :columns])
    assert diff.mean() < 0.05


def test_silence_gives_a_finite_floor(tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "1", str(silence))
    mel = melspectrogram(load_audio(silence))
    assert np.isfinite(mel).all() and (mel == -4.0).all()
    broken = np.zeros(8000, np.float32)
    broken[100] = np.nan
    assert np.isfinite(melspectrogram(broken)).all()


def test_windows_follow_inference_indexing(reference: dict) -> None:
    mel = reference["mel_librosa07"]
    windows = mel_windows(mel, 25)
    assert windows.shape == (frame_count(241, 25), 80, 16) == (72, 80, 16)
    for i in (0, 1, 2, 7, 70):
        start = int(i * (80.0 / 25))
        assert np.array_equal(windows[i], mel[:, start:start + 16])
    assert np.array_equal(windows[-1], mel[:, -16:])
    assert np.array_equal(mel_windows(mel, 25, start=10, count=5), windows[10:15])
    assert frame_count(241, 30) == len(mel_windows(mel, 30))
    short = mel_windows(mel[:, :5], 25)
    assert short.shape == (frame_count(5, 25), 80, 16)
    assert np.array_equal(short[0, :, :5], mel[:, :5]) and (short[:, :, 5:] == -4.0).all()


def test_cache_hit_runs_no_ffmpeg(tmp_path: Path) -> None:
    runner = CommandRunner()
    first = get_or_compute_mel(SPEECH, tmp_path / "cache", fps=25, runner=runner)
    assert not first.hit and len(runner.history) == 1
    second = get_or_compute_mel(SPEECH, tmp_path / "cache", fps=25, runner=runner)
    assert second.hit and len(runner.history) == 1
    assert second.key == first.key and second.frames == 72
    assert second.path.parent == tmp_path / "cache" / "mel"
    assert np.array_equal(second.load(), first.load())
    # Same content under another name: same key. Different content: a miss.
    renamed = tmp_path / "renamed.wav"
    renamed.write_bytes(SPEECH.read_bytes())
    assert get_or_compute_mel(renamed, tmp_path / "cache", runner=runner).key == first.key
    assert len(runner.history) == 1
    quieter = tmp_path / "quieter.wav"
    _ffmpeg("-i", str(SPEECH), "-af", "volume=0.5", "-c:a", "pcm_s16le", str(quieter))
    other = get_or_compute_mel(quieter, tmp_path / "cache", runner=runner)
    assert not other.hit and other.key != first.key


def test_damaged_cache_entry_is_recomputed(tmp_path: Path) -> None:
    entry = get_or_compute_mel(SPEECH, tmp_path)
    entry.path.write_bytes(b"garbage")
    again = get_or_compute_mel(SPEECH, tmp_path)
    assert not again.hit and again.load().shape == (80, 241)


def test_bad_audio_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not found"):
        load_audio(tmp_path / "absent.wav")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(BadInputError, match="not a readable audio file") as info:
        load_audio(text)  # bad input (exit 2), not a failed tool (4)
    assert info.value.path == str(text) and info.value.exit_code == 2


def test_mel_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["mel", str(SPEECH), "--fps", "25", "--cache-dir", str(tmp_path), "--json"]
    main(args)
    first = json.loads(capsys.readouterr().out)
    main(args)
    second = json.loads(capsys.readouterr().out)
    assert first["cache_hit"] is False and second["cache_hit"] is True
    assert first["key"] == second["key"] and first["shape"] == [80, 241]
    assert first["frames"] == 72 and first["params"]["n_fft"] == 800
    assert Path(first["path"]).is_file()


def test_mel_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["mel", str(tmp_path / "absent.wav"), "--cache-dir", str(tmp_path)])
    assert info.value.code == 2
    assert "audio file not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["mel", "quantize"])
def test_missing_extra_is_explained(command: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "librosa", None)  # as if not installed
    args = {"mel": ["mel", str(SPEECH)],
            "quantize": ["quantize", "x.pth", "-o", str(tmp_path / "q.pt"),
                         "--calibration-audio", str(SPEECH), "--calibration-face", "f.png"]}
    with pytest.raises(SystemExit) as info:
        main(args[command])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "needs the lipsync extra" in err and "pip install" in err
