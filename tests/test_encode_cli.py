"""The `discriminator encode` command as users run it: bad input, --json, batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path
from tests.helpers import processes_naming

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "discriminator_cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=os.environ.copy(), check=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw")
    generate_sample(folder / "one.mov", seconds=2, width=320, height=180)
    generate_sample(folder / "two.mp4", seconds=2, width=320, height=180, tone_hz=880)
    return folder


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    ffmpeg = ffmpeg_path()
    runner = CommandRunner()
    text = folder / "notes.mov"
    text.write_text("this is not a video\n")
    empty = folder / "empty.mov"
    empty.write_bytes(b"")
    good = generate_sample(folder / "good.mov", seconds=2, width=320, height=180)
    truncated = folder / "truncated.mov"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # moov at the end: gone
    faststart = folder / "faststart.mp4"
    runner.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                "testsrc2=size=320x180:rate=25:duration=4", "-c:v", "libx264", "-movflags",
                "+faststart", str(faststart)], what="faststart")
    cut = folder / "cut.mp4"  # index intact, media data missing
    cut.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    wav = folder / "speech.wav"
    runner.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", str(wav)],
               what="wav")
    fragmented = folder / "fragmented.mp4"
    runner.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:duration=1",
                "-c:v", "libx264", "-movflags", "frag_keyframe+empty_moov", str(fragmented)],
               what="fragmented")
    zero = folder / "zero.mp4"  # ftyp + moov with a video track, and not one frame
    data = fragmented.read_bytes()
    moov_end = data.index(b"moov") - 4 + int.from_bytes(data[data.index(b"moov") - 4:
                                                              data.index(b"moov")], "big")
    zero.write_bytes(data[:moov_end])
    pipe = folder / "pipe.mov"
    os.mkfifo(pipe)
    device = folder / "device.mov"
    device.symlink_to("/dev/zero")
    return {
        "a pipe": (pipe, "not a regular file"),
        "a device": (device, "not a regular file"),
        "missing": (folder / "nope.mov", "file not found"),
        "not a video": (text, "not a readable media file"),
        "empty": (empty, "file is empty"),
        "truncated moov": (truncated, "not a readable media file"),
        "truncated data": (cut, "corrupt or truncated"),
        "no video stream": (wav, "no video stream"),
        "zero-length": (zero, "zero-length video"),
    }


CASES = ["missing", "not a video", "empty", "truncated moov", "truncated data",
         "no video stream", "zero-length", "a pipe", "a device"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return _bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_error_no_traceback_nothing_published(
        case: str, bad_inputs: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    path, expected = bad_inputs[case]
    media = tmp_path / "media"
    result = run_cli("encode", str(path), "--preset", TINY, "--media-root", str(media))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not media.exists() or list(media.iterdir()) == []


def test_when_every_source_fails_nothing_is_said_to_be_published(
        bad_inputs: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    result = run_cli("encode", str(bad_inputs["not a video"][0]), str(bad_inputs["empty"][0]),
                     "--preset", TINY, "--media-root", str(tmp_path / "media"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "2 of 2 sources failed; nothing was published"


def test_debug_shows_the_traceback(bad_inputs: dict[str, tuple[Path, str]],
                                   tmp_path: Path) -> None:
    path, _ = bad_inputs["not a video"]
    result = run_cli("encode", str(path), "--preset", TINY, "--media-root",
                     str(tmp_path), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unknown_preset_key_and_existing_output(sources: Path, tmp_path: Path) -> None:
    preset = tmp_path / "mine.toml"
    preset.write_text(Path(TINY).read_text().replace("[video]", "[video]\ncrf = 20"))
    result = run_cli("encode", str(sources / "one.mov"), "--preset", str(preset))
    assert result.returncode == 2
    assert f"{preset}: key 'video.crf' is not a known key" in result.stderr
    out = tmp_path / "exists"
    out.mkdir()
    result = run_cli("encode", str(sources / "one.mov"), "--preset", TINY, "--out", str(out))
    assert result.returncode == 2 and "already exists" in result.stderr
    assert "--force" in result.stderr


def test_folder_of_sources_with_jobs_and_json(sources: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    result = run_cli("encode", str(sources), "--preset", TINY, "--media-root", str(media),
                     "--jobs", "2", "--json", "--no-validate")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"] == []
    names = sorted(Path(r["out_dir"]).name for r in report["results"])
    assert names == ["one", "two"]
    for item in report["results"]:
        assert (Path(item["out_dir"]) / "stream.mpd").is_file()
        for rung in item["rungs"]:
            assert rung["average_bitrate"] > 0 and rung["peak_bitrate"] >= rung["average_bitrate"]
        assert set(item["timings"]) >= {"probe", "encode", "package"}
    assert sorted(p.name for p in media.iterdir()) == ["one", "two"]


def test_dry_run_cli_prints_argv(sources: Path, tmp_path: Path) -> None:
    result = run_cli("encode", str(sources / "one.mov"), "--preset", TINY, "--media-root",
                     str(tmp_path / "media"), "--cache-dir", str(tmp_path / "cache"), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith(("/", "'")) for line in lines[:2])
    assert "poster.jpg" in lines[3]
    assert "-pass 1" in lines[0] and "-pass 2" in lines[1]
    # The packager runs inside the staging directory, and the printed line says so.
    assert lines[2].startswith(f"cd {tmp_path / 'media' / '.staging-one'}")
    assert "packager" in lines[2]
    assert lines[3].endswith("poster.jpg -hide_banner -nostdin -loglevel error -y")
    assert not (tmp_path / "media").exists()


def test_doctor_json() -> None:
    result = run_cli("doctor", "--json")
    report = json.loads(result.stdout)
    tools = {t["name"]: t for t in report["tools"]}
    assert tools["ffmpeg"]["ok"] and tools["ffmpeg"]["capabilities"]["encoder:libx264"]
    assert tools["packager"]["version"].startswith("v")
    assert "bento4" in tools
    assert result.returncode == (0 if report["ok"] else 3)


@pytest.mark.parametrize(("how", "code", "said"), [("ctrl-c", 130, "stopped"),
                                                    ("sigterm", 143, "terminated (SIGTERM)")])
def test_ctrl_c_and_sigterm_publish_nothing_and_leave_no_child(
        tmp_path: Path, how: str, code: int, said: str) -> None:
    source = generate_sample(tmp_path / "long.mov", seconds=20, width=640, height=360)
    media = tmp_path / "media"
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "discriminator_cli", "encode", str(source),
                             "--preset", "small", "--media-root", str(media), "--cache-dir",
                             str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(cache.glob("work/encode-*/*-passlog*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until x264's first pass is writing its stats
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    else:
        proc.send_signal(signal.SIGTERM)  # what `timeout` or a CI cancel does: the CLI only
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted") and said in last
    assert "Traceback" not in stderr
    assert not media.exists() or list(media.iterdir()) == []
    assert list((cache / "work").iterdir()) == [] and list(cache.glob("rungs/*.mp4")) == []
    assert processes_naming(str(cache)) == []


def test_bento4_backend_missing_is_a_clear_error(sources: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISCRIMINATOR_BENTO4_DIR"}
    env["PATH"] = str(Path(sys.executable).parent)
    result = subprocess.run([sys.executable, "-m", "discriminator_cli", "encode",
                             str(sources / "one.mov"), "--preset", TINY, "--packager", "bento4",
                             "--media-root", str(tmp_path)], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 3
    assert "Bento4 (mp4fragment and mp4dash) not found" in result.stderr
    assert "--packager shaka" in result.stderr


def test_usage_error_is_a_message_not_a_traceback() -> None:
    result = run_cli("encode", "x.mov", "--jobs", "abc")
    assert result.returncode == 2
    assert "Invalid value for '--jobs'" in result.stderr and "Traceback" not in result.stderr
