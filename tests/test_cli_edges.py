"""Trustworthy edges of the CLI: messages that survive any file name, exit codes that --debug
does not change, JSON errors, log-friendly output, help texts, dry runs that touch nothing,
and the encode edge cases found by new users (issue 9)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from discriminator_cli.encode import EncodeOptions, encode_source
from discriminator_cli.encode.hls_fixes import playlist_peak
from discriminator_cli.encode.packaging import resolve_backend
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.encode.work import reclaim_stale, work_directory
from discriminator_cli.errors import (
    BadInputError,
    MissingToolError,
    OutputExistsError,
    ToolFailedError,
)
from discriminator_cli.package_layout import is_package_folder
from discriminator_cli.publish import staged_directory, staged_file
from discriminator_cli.tools import (
    Bento4,
    bento4_version,
    find_bento4,
    locate_bento4,
    require_bento4,
)

TINY = str(Path(__file__).parent / "data" / "tiny.toml")
COMMANDS = ["doctor", "presets", "sample", "encode", "validate", "preview", "mel", "lipsync",
            "quantize"]


def run_cli(*args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "discriminator_cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env or os.environ.copy(),
                          check=False)


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("src") / "tiny.mp4", seconds=2, width=320,
                           height=180)


# --- messages and exit codes ----------------------------------------------------------------

def test_square_brackets_in_a_file_name_survive_the_message(tmp_path: Path) -> None:
    result = run_cli("encode", str(tmp_path / "take[bold].mov"), "--preset", TINY)
    assert result.returncode == 2
    assert "take[bold].mov: file not found" in result.stderr


def test_debug_adds_the_traceback_and_keeps_code_and_hint(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.mov")
    plain = run_cli("encode", missing, "--preset", TINY)
    debug = run_cli("encode", missing, "--preset", TINY, "--debug")
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    last = [line for line in debug.stderr.splitlines() if line.strip()][-1]
    assert last == [line for line in plain.stderr.splitlines() if line.strip()][-1]
    assert "check the path" in last
    assert "--debug" in run_cli("--help").stdout


def test_json_errors_are_json_on_stdout(tmp_path: Path) -> None:
    result = run_cli("encode", str(tmp_path / "gone.mov"), "--preset", TINY, "--json")
    report = json.loads(result.stdout)
    assert result.returncode == report["exit_code"] == 2
    assert report["error"]["type"] == "BadInputError"
    assert report["error"]["path"].endswith("gone.mov") and report["error"]["hint"]
    usage = run_cli("encode", "--preset", TINY, "--json")  # no source: a usage error
    assert usage.returncode == 2 and json.loads(usage.stdout)["exit_code"] == 2


def test_a_path_starting_with_a_dash_is_never_an_option(tmp_path: Path) -> None:
    generate_sample(tmp_path / "-x.mp4", seconds=1, width=160, height=90)
    result = run_cli("encode", "./-x.mp4", "--preset", TINY, "--dry-run",
                     "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # ffprobe read it: the probe ran for real
    assert " file:-x.mp4 " in result.stdout and " -x.mp4" not in result.stdout


def test_language_und_is_refused_up_front(tiny_source: Path, tmp_path: Path) -> None:
    result = run_cli("encode", str(tiny_source), "--preset", TINY, "--language", "und",
                     "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "'und'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_out_parent_fails_before_encoding(tiny_source: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("encode", str(tiny_source), "--preset", TINY, "-o",
                     str(blocker / "pkg"), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 2 and "is not a folder" in result.stderr
    assert not (tmp_path / "cache" / "rungs").exists()  # failed before any encode
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        result = run_cli("encode", str(tiny_source), "--preset", TINY, "-o",
                         str(locked / "pkg"))
        assert result.returncode == 2 and "not writable" in result.stderr


@pytest.mark.parametrize("failure", ["oserror", "tool", "shaka"])
def test_disk_full_while_packaging_names_the_destination_and_the_space(
        tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        failure: str) -> None:
    import discriminator_cli.encode.job as job

    def full_disk(*args: object, **kwargs: object) -> None:
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        stderr = ("File write failed: No space left on device" if failure == "tool" else
                  # Shaka Packager's own words when the disk fills under it
                  "Cannot close file video_180p.mp4, possibly file permission issue or running "
                  "out of disk space.")
        raise ToolFailedError("Shaka Packager failed (exit 1)", argv=["packager"], returncode=1,
                              stderr=stderr)

    monkeypatch.setattr(job, "package", full_disk)
    out = tmp_path / "media" / "tiny"
    with pytest.raises(BadInputError) as info:
        encode_source(tiny_source, EncodeOptions(preset=load_preset(TINY), out_dir=out,
                                                 cache_dir=tmp_path / "cache"))
    line = info.value.one_line()
    assert str(out) in line and "disk full" in line and "MB free" in line and "needed" in line
    assert list((tmp_path / "media").iterdir()) == []  # nothing left behind


# --- output a log can hold ----------------------------------------------------------------

def test_nothing_is_wrapped_at_80_columns_off_a_terminal(tmp_path: Path) -> None:
    deep = tmp_path / ("very-long-folder-name-" * 6) / "missing-source-file.mov"
    result = run_cli("encode", str(deep), "--preset", TINY)
    assert f"{deep}: file not found" in result.stderr  # one line, not folded
    doctor = run_cli("doctor", "--format", "text")
    lines = doctor.stdout.splitlines()
    assert any(line.startswith("ffmpeg: ok") and len(line) > 80 for line in lines)
    assert all(re.match(r"^[\w ]+: (ok|missing|absent) ", line) for line in lines)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_values_the_usual_way(command: str) -> None:
    text = run_cli(command, "--help").stdout
    for placeholder in ("<bool>", "<str>", "<list[", "<path>", "{"):
        assert placeholder not in text, (command, placeholder)


def test_help_lists_the_choices() -> None:
    assert "shaka|bento4|auto" in run_cli("encode", "--help").stdout
    assert "h264|prores" in run_cli("sample", "--help").stdout
    lipsync = run_cli("lipsync", "--help").stdout
    for choices in ("auto|fp32|bf16|int8", "cpu|cuda", "auto|s3fd|lbp"):
        assert choices in lipsync
    for command in ("encode", "sample", "lipsync", "quantize"):
        assert re.search(r"-o\b.*--out|--out.*-o\b", run_cli(command, "--help").stdout), command


# --- encode: publishing, work folders, dry runs, I-frames, doctor ---------------------------

def test_a_second_publisher_of_the_same_out_loses_without_force(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    with pytest.raises(OutputExistsError), staged_directory(out) as staging:
        (staging / "a").write_text("first")
        out.mkdir()  # another run published while this one was working
        (out / "b").write_text("theirs")
    assert [p.name for p in out.iterdir()] == ["b"] and len(list(tmp_path.iterdir())) == 1
    clip = tmp_path / "clip.mp4"
    with pytest.raises(OutputExistsError), staged_file(clip) as staging:
        staging.write_text("mine")
        clip.write_text("theirs")
    assert clip.read_text() == "theirs"


def test_force_replaces_only_an_earlier_package(tiny_source: Path, tmp_path: Path) -> None:
    # A mistyped --out must never cost the user a folder of their own files, or a file.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    source = mine / "src.mov"
    source.write_bytes(tiny_source.read_bytes())
    refused = run_cli("encode", str(source), "--preset", TINY, "-o", str(mine), "--force")
    assert refused.returncode == 2 and "--force replaces only a package" in refused.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "src.mov"]
    as_file = run_cli("encode", str(source), "--preset", TINY, "-o", str(source), "--force")
    assert as_file.returncode == 2 and "is a file, not a package folder" in as_file.stderr
    assert source.is_file() and not list(tmp_path.glob(".staging-*"))
    linked = tmp_path / "link"
    linked.symlink_to(mine, target_is_directory=True)
    assert run_cli("encode", str(source), "--preset", TINY, "-o", str(linked),
                   "--force").returncode == 2
    assert (mine / "notes.txt").read_text() == "precious"
    out = tmp_path / "pkg"
    assert run_cli("encode", str(source), "--preset", TINY, "-o", str(out)).returncode == 0
    again = run_cli("encode", str(source), "--preset", TINY, "-o", str(out), "--force")
    assert again.returncode == 0, again.stderr
    # The check runs again at publish time: a folder that changed meanwhile is kept.
    late = tmp_path / "late"
    with pytest.raises(OutputExistsError, match="not an earlier output"), \
            staged_directory(late, force=True, replaceable=is_package_folder) as staging:
        (staging / "stream.mpd").write_text("new")
        late.mkdir()
        (late / "theirs.txt").write_text("x")
    assert [p.name for p in late.iterdir()] == ["theirs.txt"]


def test_staging_a_killed_run_left_is_removed_by_the_next_publish(tmp_path: Path) -> None:
    import socket

    dead = subprocess.Popen(["true"])
    dead.wait()
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24]
    killed = tmp_path / f".staging-pkg.{host}-{dead.pid}.abcd"      # SIGKILLed mid-package
    killed.mkdir()
    (killed / "video_1080p.mp4").write_bytes(b"x" * 1000)
    half_clip = tmp_path / f".staging-clip.mp4.{host}-{dead.pid}.ef.mp4"
    half_clip.write_bytes(b"half")
    running = tmp_path / f".staging-pkg.{host}-{os.getppid()}.live"  # a run still working
    running.mkdir()
    elsewhere = tmp_path / f".staging-pkg.otherhost-{dead.pid}.nfs"  # another machine's
    elsewhere.mkdir()
    other = tmp_path / f".staging-other.{host}-{dead.pid}.zz"        # another destination
    other.mkdir()
    with staged_directory(tmp_path / "pkg") as staging:
        (staging / "stream.mpd").write_text("new")
    with staged_file(tmp_path / "clip.mp4") as staging:
        staging.write_text("clip")
    assert not killed.exists() and not half_clip.exists()
    assert running.exists() and elsewhere.exists() and other.exists()
    assert (tmp_path / "pkg" / "stream.mpd").is_file() and (tmp_path / "clip.mp4").is_file()


def test_stale_work_folders_of_dead_runs_are_reclaimed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"encode-{dead.pid}-abc"
    stale.mkdir()
    (stale / "1080p-passlog-0.log").write_text("x" * 100)
    alive = tmp_path / f"encode-{os.getppid()}-def"
    alive.mkdir()
    with work_directory(tmp_path) as mine:
        assert mine.is_dir() and not stale.exists() and alive.exists()
    assert not mine.exists() and reclaim_stale(tmp_path) == []


def test_dry_run_touches_nothing_and_says_when_ffmpeg_would_not_run(tiny_source: Path,
                                                                    tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = run_cli("encode", str(tiny_source), "--preset", TINY, "--dry-run",
                     "--cache-dir", str(cache), "-o", str(tmp_path / "out"))
    assert result.returncode == 0 and "-pass 1" in result.stdout
    assert not cache.exists() and not (tmp_path / "out").exists()
    assert run_cli("encode", str(tiny_source), "--preset", TINY, "--cache-dir", str(cache),
                   "-o", str(tmp_path / "out")).returncode == 0
    again = run_cli("encode", str(tiny_source), "--preset", TINY, "--dry-run", "--force",
                    "--cache-dir", str(cache), "-o", str(tmp_path / "out"))
    assert again.returncode == 0
    assert "every rung and audio track is cached; no encode runs" in again.stdout
    assert "-pass" not in again.stdout


def test_iframe_streams_declare_their_measured_peak(shaka_package: Path) -> None:
    lines = (shaka_package / "master.m3u8").read_text().splitlines()
    iframes = [line for line in lines if line.startswith("#EXT-X-I-FRAME-STREAM-INF:")]
    assert iframes
    for line in iframes:
        uri = re.search(r'URI="([^"]+)"', line).group(1)  # type: ignore[union-attr]
        declared = int(re.search(r"(?<![A-Z-])BANDWIDTH=(\d+)", line).group(1))  # type: ignore[union-attr]
        average = int(re.search(r"AVERAGE-BANDWIDTH=(\d+)", line).group(1))  # type: ignore[union-attr]
        assert declared >= playlist_peak(shaka_package / uri) and average <= declared


def test_doctor_reports_the_bento4_sdk_version(tmp_path: Path) -> None:
    fake = tmp_path / "mp4info"
    fake.write_text("#!/bin/sh\necho 'MP4 File Info - Version 1.3.4'\n"
                    "echo '(Bento4 Version 1.6.0.0)'\nexit 1\n")
    fake.chmod(0o755)
    assert bento4_version(Bento4("mp4fragment", "mp4dash", str(fake))) == "1.6.0.0"
    real = shutil.which("mp4info")
    if real:  # a real Bento4 build on PATH
        found = bento4_version(Bento4("mp4fragment", "mp4dash", real))
        assert found and not found.startswith("1.3")


def _fake_bento4(folder: Path, names: list[str]) -> Path:
    """Scripts under Bento4's names in folder/bin (each answers as Bento4's mp4info does)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name in names:
        script = bin_dir / name
        script.write_text("#!/bin/sh\necho '(Bento4 Version 1.6.0.0)'\nexit 1\n")
        script.chmod(0o755)
    return folder


def test_an_incomplete_bento4_is_found_out_before_any_encode(
        tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mp4dash runs mp4iframeindex for the HLS I-frame playlists: without it the packaging step
    # would fail after the whole encode.
    sdk = _fake_bento4(tmp_path / "sdk", ["mp4fragment", "mp4dash", "mp4info", "mp4dump"])
    monkeypatch.setenv("DISCRIMINATOR_BENTO4_DIR", str(sdk))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    located = locate_bento4()
    assert located is not None and located.missing == ("mp4iframeindex",)
    assert find_bento4() is None
    assert resolve_backend("auto") == "shaka"
    with pytest.raises(MissingToolError, match="lacks mp4iframeindex"):
        require_bento4()
    doctor = run_cli("doctor", "--format", "text", env=dict(os.environ))
    line = next(x for x in doctor.stdout.splitlines() if x.startswith("bento4:"))
    assert line.startswith("bento4: unusable 1.6.0.0 ") and "lacks mp4iframeindex" in line
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr  # optional: not a failure
    encode = run_cli("encode", str(tiny_source), "--preset", TINY, "--packager", "bento4",
                     "--media-root", str(tmp_path / "media"), env=dict(os.environ))
    assert encode.returncode == 3 and "lacks mp4iframeindex" in encode.stderr, encode.stderr
    assert "Traceback" not in encode.stderr and not (tmp_path / "media").exists()
    # The helper on PATH (mp4dash's own fallback) completes the install.
    _fake_bento4(tmp_path / "elsewhere", ["mp4iframeindex"])
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "elsewhere" / "bin"),
                                                str(Path(sys.executable).parent)]))
    complete = find_bento4()
    assert complete is not None and complete.mp4dash == str(sdk / "bin" / "mp4dash")
    assert resolve_backend("auto") == "bento4"


def test_files_that_cannot_be_written_are_bad_input(shaka_package: Path, tmp_path: Path) -> None:
    # /proc takes no new files, even from root; a folder is not a file name.
    for args, says in [
        (["sample", "-o", "/proc/s.mov"], "/proc/s.mov: cannot write here"),
        (["validate", str(shaka_package), "--junit", "/proc/r.xml"], "choose a writable --junit"),
        (["validate", str(shaka_package), "--junit", str(tmp_path)], "is a folder"),
    ]:
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
