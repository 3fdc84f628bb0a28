"""How the pipeline streams: frames reach ffmpeg batch by batch, a long face video is cut to
the narration before detection, and Ctrl-C mid-clip leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.lipsync

from discriminator_cli.lipsync import pipeline  # noqa: E402
from discriminator_cli.lipsync.audio import frame_count  # noqa: E402
from discriminator_cli.lipsync.engine import load_engine  # noqa: E402
from discriminator_cli.lipsync.faces import FixedBox, LbpDetector  # noqa: E402
from discriminator_cli.lipsync.pipeline import LipSyncOptions, lipsync_clip  # noqa: E402
from discriminator_cli.runner import CommandRunner  # noqa: E402
from discriminator_cli.tools import ffmpeg_path  # noqa: E402
from tests.helpers import ffprobe_json, processes_naming  # noqa: E402
from tests.wav2lip_weights import DATA, write_checkpoint  # noqa: E402

SPEECH = DATA / "speech_3s_16k.wav"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("lipsync-stream")
    small = Image.fromarray(data.astronaut()).resize((160, 160))
    small.save(folder / "face.png")
    small.save(folder / "face.jpg", quality=95)  # the bundled ffmpeg decodes JPEG, not PNG
    write_checkpoint(folder / "wav2lip.pth", official=True)
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-i", str(SPEECH), "-t", "1.6",
                         str(folder / "speech.wav")], what="short speech")  # 37 frames
    return folder


@pytest.fixture(scope="module")
def engine(workdir: Path):  # type: ignore[no-untyped-def]
    return load_engine(workdir / "wav2lip.pth", precision="fp32")


class _Events:
    """The real engine; records predict calls and frame writes in the order they happen."""

    def __init__(self, engine, fail_on_call: int | None = None) -> None:  # type: ignore[no-untyped-def]
        self._engine, self.fail_on_call, self.log = engine, fail_on_call, []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._engine, name)

    def predict_still(self, mels: np.ndarray, face: np.ndarray) -> np.ndarray:
        calls = sum(1 for event in self.log if event[0] == "predict")
        if calls == self.fail_on_call:
            raise KeyboardInterrupt
        self.log.append(("predict", len(mels)))
        return self._engine.predict_still(mels, face)


def test_frames_reach_ffmpeg_before_the_next_batch_is_made(workdir: Path, engine,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Events(engine)
    real_write = pipeline.FrameWriter.write

    def write(self, frame: np.ndarray) -> None:  # type: ignore[no-untyped-def]
        spy.log.append(("write", 1))
        real_write(self, frame)

    monkeypatch.setattr(pipeline.FrameWriter, "write", write)
    result = lipsync_clip(spy, workdir / "face.png", workdir / "speech.wav", tmp_path / "c.mp4",  # type: ignore[arg-type]
                          FixedBox((40, 15, 85, 60)), LipSyncOptions(batch_size=16))
    # predict 16, write x16, predict 16, write x16, ...: at most one batch of frames in flight
    expected: list[tuple[str, int]] = []
    for start in range(0, result.frames, 16):
        count = min(16, result.frames - start)
        expected += [("predict", count)] + [("write", 1)] * count
    assert spy.log == expected


def test_long_face_video_is_cut_to_the_narration_before_detection(workdir: Path, engine,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path) -> None:
    video = tmp_path / "long.mp4"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-loop", "1", "-framerate", "20", "-i",
                         str(workdir / "face.jpg"), "-t", "3", "-c:v", "libx264",
                         "-pix_fmt", "yuv420p", str(video)], what="face video")  # 60 frames
    silence = tmp_path / "one_second.wav"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i",
                         "anullsrc=r=16000:cl=mono", "-t", "1", str(silence)], what="silence")

    class Counting(FixedBox):
        calls = 0

        def detect(self, frame_bgr: np.ndarray):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().detect(frame_bgr)

    out = tmp_path / "clip.mp4"
    result = lipsync_clip(engine, video, silence, out, Counting((40, 15, 85, 60)),
                          LipSyncOptions(batch_size=8))
    assert result.frames == frame_count(81, 20.0) == 18  # 1 s of audio: 81 mel columns
    assert Counting.calls == result.frames               # not the video's 60 frames
    stream = ffprobe_json(out, "-show_streams", "-select_streams", "v:0")["streams"][0]
    assert int(stream["nb_frames"]) == 18


def _ffmpeg_children() -> list[int]:
    """Live (not yet reaped) ffmpeg processes started by this test process."""
    import os

    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists() and b"ffmpeg" in cmdline.read_bytes():
                found.append(int(pid))
    return found


def test_ctrl_c_mid_clip_publishes_nothing_and_stops_ffmpeg(workdir: Path, engine,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    spy = _Events(engine, fail_on_call=2)  # two batches already streamed into ffmpeg
    with pytest.raises(KeyboardInterrupt):
        lipsync_clip(spy, workdir / "face.png", workdir / "speech.wav", out_dir / "clip.mp4",  # type: ignore[arg-type]
                     FixedBox((40, 15, 85, 60)), LipSyncOptions(batch_size=8))
    assert [e for e in spy.log if e[0] == "predict"] == [("predict", 8)] * 2
    assert list(out_dir.iterdir()) == []  # no clip, no sidecar, no staging file
    assert _ffmpeg_children() == []


def test_no_face_in_a_video_frame_names_the_frame(workdir: Path, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The astronaut for half a second, then gray: detection fails at the first gray frame."""
    from discriminator_cli.errors import BadInputError

    video = tmp_path / "cut.mp4"
    CommandRunner().run([ffmpeg_path(), "-v", "error", "-loop", "1", "-framerate", "10", "-t",
                         "0.5", "-i", str(workdir / "face.jpg"), "-f", "lavfi", "-i",
                         "color=c=gray:s=160x160:r=10:d=0.5", "-filter_complex",
                         "[0:v]scale=320:320,setsar=1[a];[1:v]scale=320:320,setsar=1[b];"
                         "[a][b]concat=n=2:v=1[v]", "-map", "[v]", "-c:v", "libx264",
                         "-pix_fmt", "yuv420p", str(video)], what="face video")
    out = tmp_path / "clip.mp4"
    with pytest.raises(BadInputError) as caught:
        lipsync_clip(engine, video, SPEECH, out, LbpDetector())
    line = caught.value.one_line()
    assert str(video) in line and "no face found in frame 5" in line and "--box" in line
    assert not out.exists() and not list(tmp_path.glob(".staging-*"))


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_cli_interrupted_mid_clip_publishes_nothing(workdir: Path, tmp_path: Path,
                                                    signum: str, code: int) -> None:
    import signal
    import subprocess
    import sys
    import time

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "discriminator_cli", "lipsync", "--face",
                             str(workdir / "face.png"), "--audio", str(SPEECH), "--checkpoint",
                             str(workdir / "wav2lip.pth"), "-o", str(out_dir / "clip.mp4"),
                             "--precision", "fp32", "--batch-size", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # Wait until ffmpeg has encoded something into the staging file: the clip is half made.
    # (Not merely until the file exists: a signal landing while ffmpeg is being started can
    # orphan it, see CommandRunner.open; that window is not what this test is about.)
    while time.monotonic() < deadline and not any(
            p.stat().st_size > 0 for p in out_dir.glob(".staging-*.mp4")):
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(getattr(signal, signum))
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert "nothing was published" in stderr and "Traceback" not in stderr
    assert list(out_dir.iterdir()) == []
    assert processes_naming(str(out_dir)) == []  # the clip's ffmpeg went with it
