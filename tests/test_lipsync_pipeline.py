"""`discriminator lipsync` end to end on tiny inputs with generated weights: still photo, video,
many faces, watch mode, synthetic marking, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.lipsync

from discriminator_cli.cache import file_sha256  # noqa: E402
from discriminator_cli.lipsync.batch import lipsync_many, watch_folder  # noqa: E402
from discriminator_cli.lipsync.engine import load_engine  # noqa: E402
from discriminator_cli.lipsync.faces import LbpDetector, make_detector  # noqa: E402
from discriminator_cli.lipsync.pipeline import LipSyncOptions, lipsync_clip  # noqa: E402
from discriminator_cli.runner import CommandRunner  # noqa: E402
from discriminator_cli.tools import ffmpeg_path  # noqa: E402
from tests.helpers import ffprobe_json  # noqa: E402
from tests.wav2lip_weights import DATA, write_checkpoint  # noqa: E402

SPEECH = DATA / "speech_3s_16k.wav"  # 3.0 s -> 72 frames at 25 fps (Wav2Lip's mel windows)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("lipsync")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg", quality=95)
    Image.new("RGB", (320, 240), (128, 128, 128)).save(folder / "gray.png")
    write_checkpoint(folder / "wav2lip.pth", official=True)
    return folder


@pytest.fixture(scope="module")
def engine(workdir: Path):  # type: ignore[no-untyped-def]
    return load_engine(workdir / "wav2lip.pth", precision="fp32")


def _frames(path: Path) -> np.ndarray:
    """Every decoded frame, (N, H, W, 3) uint8 RGB (test clips are tiny)."""
    stream = ffprobe_json(path, "-show_streams", "-select_streams", "v:0")["streams"][0]
    width, height = stream["width"], stream["height"]
    raw = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_still_photo_clip_changes_only_the_face_box(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    out = tmp_path / "clip.mp4"
    result = lipsync_clip(engine, workdir / "astronaut.png", SPEECH, out, LbpDetector())
    probe = ffprobe_json(out, "-show_streams", "-show_format")
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert (video["width"], video["height"]) == (512, 512) and video["codec_name"] == "h264"
    assert int(video["nb_frames"]) == result.frames == 72 and video["r_frame_rate"] == "25/1"
    assert audio["codec_name"] == "aac"
    assert abs(float(probe["format"]["duration"]) - 3.0) < 0.1
    assert "SYNTHETIC" in probe["format"]["tags"]["comment"]

    x1, y1, x2, y2 = result.box
    assert 150 < x1 < 200 and 50 < y1 < 90 and (x2 - x1) > 60  # the astronaut's face
    photo = np.asarray(Image.open(workdir / "astronaut.png").convert("RGB")).astype(int)
    frames = _frames(out).astype(int)
    inside = np.zeros(photo.shape[:2], bool)
    inside[y1:y2, x1:x2] = True
    ring = np.zeros_like(inside)  # codec blocks may bleed a few pixels out of the box
    ring[max(0, y1 - 16):y2 + 16, max(0, x1 - 16):x2 + 16] = True
    for frame in frames[::12]:
        diff = np.abs(frame - photo).mean(axis=2)
        assert diff[~ring].mean() < 3.0          # untouched, up to H.264 noise
        assert diff[inside].mean() > 10.0        # the generated mouth region


class _RecordingEngine:
    """The real engine, recording what the pipeline feeds it."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self._engine, self.mels, self.faces = engine, [], []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._engine, name)

    def predict_still(self, mels: np.ndarray, face: np.ndarray) -> np.ndarray:
        self.mels.append(mels)
        self.faces.append(face)
        return self._engine.predict_still(mels, face)


def test_frame_i_gets_mel_window_i_and_one_face_crop(workdir: Path, engine,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    from discriminator_cli.lipsync.audio import load_audio, mel_windows, melspectrogram

    spy = _RecordingEngine(engine)
    result = lipsync_clip(spy, workdir / "astronaut.png", SPEECH, tmp_path / "c.mp4",  # type: ignore[arg-type]
                          LbpDetector(), LipSyncOptions(batch_size=20))
    fed = np.concatenate(spy.mels)
    expected = mel_windows(melspectrogram(load_audio(SPEECH)), 25.0)
    assert fed.shape == (result.frames, 80, 16) and np.allclose(fed, expected, atol=1e-5)
    assert [len(m) for m in spy.mels] == [20, 20, 20, 12]
    assert all(np.array_equal(f, spy.faces[0]) for f in spy.faces)  # cropped once
    assert spy.faces[0].shape == (96, 96, 3)


def test_sidecar_records_inputs_and_hashes(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "clip.mp4"
    lipsync_clip(engine, workdir / "astronaut.png", SPEECH, out, LbpDetector())
    sidecar = json.loads((tmp_path / "clip.mp4.json").read_text())
    # readable by whoever may read the clip (not a private temp file's 0600)
    assert (tmp_path / "clip.mp4.json").stat().st_mode & 0o777 == out.stat().st_mode & 0o777
    assert sidecar["synthetic"] is True
    assert sidecar["generator"]["precision"] == "fp32"
    assert sidecar["output"]["sha256"] == file_sha256(out)
    inputs = sidecar["inputs"]
    assert inputs["face"]["sha256"] == file_sha256(workdir / "astronaut.png")
    assert inputs["audio"]["sha256"] == file_sha256(SPEECH)
    assert inputs["checkpoint"]["sha256"] == file_sha256(workdir / "wav2lip.pth")
    assert inputs["face"]["detector"] == "lbp" and len(inputs["face"]["box"]) == 4


def test_video_face_loops_and_keeps_its_rate(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "face.mp4"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-loop", "1", "-framerate", "20", "-i",
                         str(workdir / "astronaut.jpg"), "-vf",
                         "crop=480:480:x='min(2*n,32)':y=0", "-t", "1", "-c:v", "libx264",
                         "-pix_fmt", "yuv420p", str(video)], what="face video")
    out = tmp_path / "clip.mp4"
    result = lipsync_clip(engine, video, SPEECH, out, LbpDetector(),
                          LipSyncOptions(batch_size=16))
    stream = ffprobe_json(out, "-show_streams", "-select_streams", "v:0")["streams"][0]
    assert result.kind == "video" and stream["r_frame_rate"] == "20/1"
    assert (stream["width"], stream["height"]) == (480, 480)
    assert int(stream["nb_frames"]) == result.frames == 58  # 241 mel columns at 20 fps
    frames = _frames(out).astype(int)
    # The 20-frame video loops under the 58-frame narration: the pan restarts at frame 20.
    corner = (slice(400, 470), slice(0, 100))  # far from the face
    assert np.abs(frames[0][corner] - frames[20][corner]).mean() < 3.0
    assert np.abs(frames[0][corner] - frames[15][corner]).mean() > 3.0


def test_silent_narration_works(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    silence = tmp_path / "silence.wav"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i",
                         "anullsrc=r=16000:cl=mono", "-t", "1", str(silence)], what="silence")
    result = lipsync_clip(engine, workdir / "astronaut.png", silence, tmp_path / "s.mp4",
                          LbpDetector())
    assert result.frames == 22 and (tmp_path / "s.mp4").is_file()  # 81 mel columns at 25 fps


def test_blend_keeps_the_upper_face(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    out = tmp_path / "blend.mp4"
    result = lipsync_clip(engine, workdir / "astronaut.png", SPEECH, out, LbpDetector(),
                          LipSyncOptions(blend=True))
    x1, y1, x2, y2 = result.box
    photo = np.asarray(Image.open(workdir / "astronaut.png").convert("RGB")).astype(int)
    frame = _frames(out)[30].astype(int)
    eyes = (slice(y1 + 4, y1 + (y2 - y1) // 3), slice(x1 + 4, x2 - 4))
    mouth = (slice(y1 + 2 * (y2 - y1) // 3, y2 - 8), slice(x1 + (x2 - x1) // 3,
                                                           x2 - (x2 - x1) // 3))
    assert np.abs(frame[eyes] - photo[eyes]).mean() < 4.0
    assert np.abs(frame[mouth] - photo[mouth]).mean() > 10.0


def test_many_faces_one_model(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    faces = [workdir / "astronaut.png", workdir / "astronaut.jpg"]
    shutil.copy(workdir / "gray.png", tmp_path / "gray.png")
    faces.append(tmp_path / "gray.png")
    outcome = lipsync_many(engine, [*faces[:1], faces[2]], SPEECH,
                           tmp_path / "clips", LbpDetector(), LipSyncOptions())
    results, failures = outcome.results, outcome.failures
    assert [r.output.name for r in results] == ["astronaut.mp4"]
    assert [f.path.name for f in failures] == ["gray.png"]
    assert "no face found" in failures[0].error.one_line()
    assert not (tmp_path / "clips" / "gray.mp4").exists()


def test_watch_folder_turns_dropped_photos_into_clips(workdir: Path, engine,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "clips"
    inbox.mkdir()
    made, failed = [], []
    stop = threading.Event()
    worker = threading.Thread(target=lambda: made.append(watch_folder(
        engine, inbox, SPEECH, out, LbpDetector(), LipSyncOptions(),
        on_clip=lambda r: made.append(r.output.name), on_failure=failed.append,
        should_stop=stop.is_set, max_clips=2, poll_seconds=0.05)))
    worker.start()
    try:
        for source, name in (("gray.png", "blank.png"), ("astronaut.png", "viewer1.png"),
                             ("astronaut.jpg", "viewer2.jpg")):
            time.sleep(0.2)
            staging = inbox / f".upload-{name}"  # as an uploader would: write, then rename
            shutil.copy(workdir / source, staging)
            staging.rename(inbox / name)
        worker.join(timeout=240)  # generous: a loaded 2-core machine runs this slowly
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert made == ["viewer1.mp4", "viewer2.mp4", 2]  # clips as they came, then the count
    assert [f.path.name for f in failed] == ["blank.png"]
    assert "no face found" in failed[0].error.one_line()
    assert sorted(p.name for p in out.iterdir()) == ["viewer1.mp4", "viewer1.mp4.json",
                                                     "viewer2.mp4", "viewer2.mp4.json"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "discriminator_cli", *args],
                          capture_output=True, text=True, check=False,
                          env=env or os.environ.copy())


def test_cli_clip_json_and_dry_run(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    base = ["lipsync", "--face", str(workdir / "astronaut.png"), "--audio", str(SPEECH),
            "--checkpoint", str(workdir / "wav2lip.pth"), "-o", str(out)]
    dry = run_cli(*base, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "-f rawvideo -pix_fmt bgr24 -s 512x512" in dry.stdout and not out.exists()
    result = run_cli(*base, "--json", "--precision", "bf16")
    assert result.returncode == 0, result.stderr
    clip = json.loads(result.stdout)["clips"][0]
    assert clip["frames"] == 72 and clip["precision"] == "bf16" and out.is_file()
    again = run_cli(*base)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "model:" not in again.stderr  # refused before the model was loaded


@pytest.mark.parametrize("case", ["no face", "missing face", "missing audio", "bad checkpoint",
                                  "truncated checkpoint"])
def test_cli_bad_input(case: str, workdir: Path, tmp_path: Path) -> None:
    face, audio, checkpoint = workdir / "astronaut.png", SPEECH, workdir / "wav2lip.pth"
    expected = {"no face": "no face found in the photo", "missing face": "face file not found",
                "missing audio": "audio file not found", "bad checkpoint": "not a torch file",
                "truncated checkpoint": "truncated"}[case]
    if case == "no face":
        face = workdir / "gray.png"
    elif case == "missing face":
        face = tmp_path / "nobody.png"
    elif case == "missing audio":
        audio = tmp_path / "nothing.wav"
    elif case == "bad checkpoint":
        checkpoint = tmp_path / "notes.pth"
        checkpoint.write_text("not a model\n")
    else:
        checkpoint = tmp_path / "cut.pth"
        checkpoint.write_bytes((workdir / "wav2lip.pth").read_bytes()[:5_000_000])
    out = tmp_path / "clip.mp4"
    result = run_cli("lipsync", "--face", str(face), "--audio", str(audio), "--checkpoint",
                     str(checkpoint), "-o", str(out))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("model:"), result.stderr
    assert expected in lines[-1] and "Traceback" not in result.stderr
    if case == "no face":
        assert str(face) in lines[-1] and "--box" in lines[-1]
    assert not out.exists() and list(tmp_path.glob("*.mp4*")) == []


def test_cli_box_overrides_detection(workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "boxed.mp4"
    result = run_cli("lipsync", "--face", str(workdir / "gray.png"), "--audio", str(SPEECH),
                     "--checkpoint", str(workdir / "wav2lip.pth"), "-o", str(out),
                     "--box", "100,60,196,156", "--json")
    assert result.returncode == 0, result.stderr
    clip = json.loads(result.stdout)["clips"][0]
    # A given box is the crop, as inference.py uses it: no pads (those are for detections).
    assert clip["box"] == [100, 60, 196, 156] and clip["detector"] == "box"


def test_missing_extra_is_explained(workdir: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "from discriminator_cli.cli.app import main\n"
            f"main(['lipsync', '--face', {str(workdir / 'astronaut.png')!r}, '--audio', "
            f"{str(SPEECH)!r}, '--checkpoint', 'x.pth', '-o', {str(tmp_path / 'c.mp4')!r}])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 3
    assert "needs the lipsync extra" in result.stderr and "pip install" in result.stderr


def test_base_commands_never_import_torch() -> None:
    code = ("import sys\nfrom discriminator_cli.cli.app import main\n"
            "try:\n    main(['doctor', '--json'])\nexcept SystemExit:\n    pass\n"
            "import discriminator_cli.encode, discriminator_cli.validate\n"
            "assert 'torch' not in sys.modules and 'librosa' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_detector_choice(tmp_path: Path) -> None:
    assert make_detector("auto").name == "lbp"  # no S3FD weights on disk offline
    assert make_detector("auto", box=(1, 2, 3, 4)).name == "box"
    from discriminator_cli.errors import BadInputError

    with pytest.raises(BadInputError, match="S3FD needs its weights"):
        make_detector("s3fd")
    with pytest.raises(BadInputError, match="detector weights not found"):
        make_detector("auto", weights=tmp_path / "s3fd.pth")


def test_cli_faces_dir_makes_one_clip_each_and_reports_failures(workdir: Path,
                                                                tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(workdir / "astronaut.png", faces / "ann.png")
    shutil.copy(workdir / "astronaut.jpg", faces / "bob.jpg")
    shutil.copy(workdir / "gray.png", faces / "blank.png")
    out = tmp_path / "clips"
    result = run_cli("lipsync", "--faces-dir", str(faces), "--audio", str(SPEECH),
                     "--checkpoint", str(workdir / "wav2lip.pth"), "--out-dir", str(out),
                     "--json")
    assert result.returncode == 2  # one face failed; the others were made
    report = json.loads(result.stdout)
    assert sorted(Path(c["output"]).name for c in report["clips"]) == ["ann.mp4", "bob.mp4"]
    assert [Path(f["face"]).name for f in report["failures"]] == ["blank.png"]
    assert sorted(p.name for p in out.glob("*.mp4")) == ["ann.mp4", "bob.mp4"]


def test_quantize_calibrates_on_the_detected_face(workdir: Path, tmp_path: Path) -> None:
    from discriminator_cli.lipsync.pipeline import crop_face, first_frame
    from discriminator_cli.lipsync.quantize import calibration_inputs

    _, face, info = calibration_inputs(SPEECH, workdir / "astronaut.png", cache_dir=tmp_path)
    box = tuple(info["face_box"])
    assert 150 < box[0] < 200 and 50 < box[1] < 90  # the face, not the whole photo
    frame = first_frame(workdir / "astronaut.png", CommandRunner())
    assert np.array_equal(face, crop_face(frame, box))  # type: ignore[arg-type]
