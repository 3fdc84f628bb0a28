"""Hostile inputs to the lip-sync commands: each is a one-line error naming the file with the
fix, exit 2, never an internal error (70) or a tool failure (4); and long phases report counts.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.lipsync

from discriminator_cli.cli.app import main  # noqa: E402
from tests.wav2lip_weights import DATA, reference_faces, write_checkpoint  # noqa: E402

SPEECH = DATA / "speech_3s_16k.wav"


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height (a decompression bomb when large) in a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("hostile")
    Image.new("RGB", (1, 1), (200, 150, 120)).save(folder / "one.png")
    Image.fromarray(reference_faces()[0][:, :, ::-1]).save(folder / "face.png")
    (folder / "notes.wav").write_text("this is not audio\n")
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)
    Image.fromarray(noise).save(folder / "whole.jpg", quality=90)
    whole = (folder / "whole.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(whole[:len(whole) // 2])  # decodes grey below the cut
    (folder / "stub.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    return {
        "cut": folder / "cut.jpg",
        "stub": folder / "stub.png",
        "one": folder / "one.png",
        "bomb": _png_header_only(folder / "bomb.png", 30000, 30000),    # Pillow refuses
        "large": _png_header_only(folder / "large.png", 10000, 9000),   # Pillow only warns
        "face": folder / "face.png",
        "notes": folder / "notes.wav",
        "ckpt": write_checkpoint(folder / "wav2lip.pth", official=False),
    }


def _exit_and_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return int(info.value.code or 0), err[-1] if err else ""


@pytest.mark.parametrize(("photo", "says"), [("one", "1x1 pixels, too small"),
                                             ("bomb", "megapixel limit"),
                                             ("large", "10000x9000 pixels"),
                                             ("cut", "damaged or cut short"),
                                             ("stub", "damaged or cut short")])
@pytest.mark.parametrize("command", ["lipsync", "quantize"])
def test_unusable_photos_are_bad_input(photo: str, says: str, command: str,
                                       files: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    args = {"lipsync": ["lipsync", "--face", str(files[photo]), "--audio", str(SPEECH),
                        "--checkpoint", str(files["ckpt"]), "-o", str(out)],
            "quantize": ["quantize", str(files["ckpt"]), "-o", str(out),
                         "--calibration-audio", str(SPEECH), "--calibration-face",
                         str(files[photo]), "--cache-dir", str(tmp_path / "cache")]}[command]
    code, line = _exit_and_error(args, capsys)
    assert code == 2, line
    assert line.startswith(f"error: {files[photo]}: ") and says in line and " — " in line
    assert not out.exists()


@pytest.mark.parametrize("command", ["mel", "lipsync", "quantize"])
def test_audio_that_is_not_audio_is_bad_input(command: str, files: dict[str, Path],
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    notes, cache = str(files["notes"]), str(tmp_path / "cache")
    args = {"mel": ["mel", notes, "--cache-dir", cache],
            "lipsync": ["lipsync", "--face", str(files["face"]), "--audio", notes,
                        "--checkpoint", str(files["ckpt"]), "-o", str(tmp_path / "c.mp4"),
                        "--box", "0,0,96,96", "--cache-dir", cache],
            "quantize": ["quantize", str(files["ckpt"]), "-o", str(tmp_path / "q.pt"),
                         "--calibration-audio", notes, "--calibration-face",
                         str(files["face"]), "--cache-dir", cache]}[command]
    code, line = _exit_and_error(args, capsys)
    assert code == 2, line
    assert f"{notes}: not a readable audio file" in line and "wav, mp3" in line


def test_a_video_without_audio_is_bad_input(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from discriminator_cli.runner import CommandRunner
    from discriminator_cli.tools import ffmpeg_path

    silent = tmp_path / "picture_only.mp4"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i",
                         "color=c=gray:s=64x64:d=1", "-c:v", "libx264", str(silent)],
                        what="test video")
    code, line = _exit_and_error(["mel", str(silent), "--cache-dir", str(tmp_path)], capsys)
    assert code == 2 and f"{silent}: has no audio stream" in line and "video that has sound" in line


# /proc takes no new files, even from root (CI runs as root, so chmod would prove nothing).
@pytest.mark.parametrize(("command", "says"), [
    ("lipsync", "/proc/clip.mp4: cannot write the clip"),
    ("lipsync-folder", "is a folder; the clip is a file"),
    ("quantize", "/proc/q.pt: cannot write the int8 file"),
    ("quantize-folder", "is a folder; the int8 file is a file"),
    ("mel", "cannot write the cache: /proc is not writable"),
])
def test_an_output_that_cannot_be_written_is_bad_input_before_any_work(
        command: str, says: str, files: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a-folder.mp4"
    folder.mkdir()
    face, speech, ckpt = str(files["face"]), str(SPEECH), str(files["ckpt"])
    cache = ["--cache-dir", str(tmp_path / "cache")]
    args = {"lipsync": ["lipsync", "--face", face, "--audio", speech, "--checkpoint", ckpt,
                        "-o", "/proc/clip.mp4", *cache],
            "lipsync-folder": ["lipsync", "--face", face, "--audio", speech, "--checkpoint",
                               ckpt, "-o", str(folder), "--force", *cache],
            "quantize": ["quantize", ckpt, "-o", "/proc/q.pt", "--calibration-audio", speech,
                         "--calibration-face", face, *cache],
            "quantize-folder": ["quantize", ckpt, "-o", str(folder), "--force",
                                "--calibration-audio", speech, "--calibration-face", face,
                                *cache],
            "mel": ["mel", speech, "--cache-dir", "/proc/mel-cache"]}[command]
    code, line = _exit_and_error(args, capsys)
    assert code == 2 and says in line, line
    assert list(folder.iterdir()) == [] and not (tmp_path / "cache").exists()


def test_a_truncated_face_video_is_bad_input_not_a_shorter_clip(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from discriminator_cli.runner import CommandRunner
    from discriminator_cli.tools import ffmpeg_path

    whole = tmp_path / "whole.mp4"  # the index first: a cut keeps it, the frames are gone
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i",
                         "testsrc2=size=160x120:rate=25:duration=3", "-c:v", "libx264",
                         "-movflags", "+faststart", str(whole)], what="test video")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "clip.mp4"
    code, line = _exit_and_error(["lipsync", "--face", str(cut), "--box", "20,10,140,110",
                                  "--audio", str(SPEECH), "--checkpoint", str(files["ckpt"]),
                                  "-o", str(out), "--precision", "fp32"], capsys)
    assert code == 2 and f"{cut}: the face video is corrupt or truncated" in line, line
    assert not out.exists() and not list(tmp_path.glob(".staging-*"))


def test_a_16_bit_greyscale_photo_is_scaled_not_clipped(tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    from discriminator_cli.lipsync.media_io import read_photo

    grey = data.astronaut().mean(axis=2).astype(np.uint8)
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # mode I;16
    Image.fromarray(grey).save(tmp_path / "plain.png")
    deep, plain = read_photo(tmp_path / "deep.png"), read_photo(tmp_path / "plain.png")
    assert deep is not None and plain is not None and np.array_equal(deep, plain)


def test_a_very_short_narration_says_nothing_but_its_result(tmp_path: Path) -> None:
    import warnings

    import soundfile

    short = tmp_path / "ten_ms.wav"
    soundfile.write(short, np.zeros(160, np.float32), 16000)  # shorter than one FFT
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["mel", str(short), "--cache-dir", str(tmp_path / "cache")])
    assert [str(w.message) for w in caught] == []


class _Recorder:
    """A ProgressSink that keeps every report."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, float]] = []
        self.updates: dict[int, list[float]] = {}

    def start(self, label: str, total: float, unit: str = "s") -> int:
        self.tasks.append((label, total))
        self.updates[len(self.tasks) - 1] = []
        return len(self.tasks) - 1

    def update(self, task: int, completed: float) -> None:
        self.updates[task].append(completed)

    def finish(self, task: int) -> None:
        self.updates[task].append(self.tasks[task][1])


def test_lipsync_generation_reports_frame_counts(files: dict[str, Path], tmp_path: Path) -> None:
    from discriminator_cli.lipsync.engine import load_engine
    from discriminator_cli.lipsync.faces import FixedBox
    from discriminator_cli.lipsync.pipeline import LipSyncOptions, lipsync_clip
    from discriminator_cli.runner import CommandRunner
    from discriminator_cli.tools import ffmpeg_path

    short = tmp_path / "short.wav"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-i", str(SPEECH), "-t", "0.25",
                         str(short)], what="short speech")
    recorder = _Recorder()
    result = lipsync_clip(load_engine(files["ckpt"], precision="fp32"), files["face"], short,
                          tmp_path / "c.mp4", FixedBox((0, 0, 96, 96)),
                          LipSyncOptions(batch_size=2, cache_dir=tmp_path), progress=recorder)
    assert recorder.tasks == [(f"lipsync {files['face'].name}", result.frames)]
    counts = recorder.updates[0]
    assert counts[:-1] == sorted(counts[:-1]) and counts[0] == 2 and counts[-1] == result.frames


def test_the_cli_renders_counts_and_rates() -> None:
    import time

    from discriminator_cli.cli.progress import RichProgress

    bars = RichProgress()
    task = bars.start("lipsync face.png", 72, unit="frames")
    bars.update(task, 12)
    time.sleep(0.05)
    bars.update(task, 36)
    state = bars._progress.tasks[0]
    count, rate = (str(column.render(state)) for column in bars._progress.columns[3:5])
    assert count == "36/72 frames" and rate.endswith(" frames/s") and float(rate.split()[0]) > 0


def test_dry_run_loads_no_model_and_touches_nothing(files: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint that is not a model at all: the dry run must not even open it as one."""
    not_a_model = tmp_path / "junk.pth"
    not_a_model.write_bytes(b"not a torch file")
    cache = tmp_path / "cache"
    out = tmp_path / "clip.mp4"
    main(["lipsync", "--face", str(files["face"]), "--audio", str(SPEECH), "--checkpoint",
          str(not_a_model), "-o", str(out), "--cache-dir", str(cache), "--dry-run"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("# when the narration's mel is not cached")
    assert "-ar 16000" in printed[1] and "-f rawvideo -pix_fmt bgr24" in printed[2]
    assert not cache.exists() and not out.exists() and list(tmp_path.iterdir()) == [not_a_model]
