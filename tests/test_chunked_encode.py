"""The chunked engines against the local one on the same 16 s source (tiny ladder, 5.76 s
chunks: three chunks of three GOPs, the last one 112 frames): same frames and timestamps, IDRs
on the GOP grid in every rung, bitrate on target, PSNR within 0.1 dB, the package validates
(HRD included); the chunk cache; and, with the ray extra, Ray tasks: shipped sources, a
killed worker, Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from discriminator_cli.encode import EncodeOptions, EncodeResult, encode_source
from discriminator_cli.encode.chunks import plan_chunks
from discriminator_cli.encode.ladder import PlannedRung
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.quality import measure_quality
from discriminator_cli.encode.rung_cache import RungCache, encode_key
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.probe import probe_source
from discriminator_cli.runner import CommandRunner
from discriminator_cli.validate import validate_package
from tests.helpers import ffprobe_json, start_local_ray

TINY = Path(__file__).parent / "data" / "tiny.toml"
CHUNK_SECONDS = 5.76  # 144 frames = three GOPs per chunk
GOP = 48
SECONDS = 16
FRAMES = 400
CHUNK_FRAMES = 144


@pytest.fixture(scope="session")
def source_16s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Chunks long enough that what each chunk costs (x264's ~650-byte header SEI, a fresh
    # rate control) stays small on the 150 kbit/s rung, as it does for real 30 s chunks.
    return generate_sample(tmp_path_factory.mktemp("raw16") / "sixteen.mov", seconds=SECONDS,
                           width=640, height=360)


def _options(out: Path, cache: Path, engine: str, **kwargs: object) -> EncodeOptions:
    return EncodeOptions(preset=load_preset(str(TINY)), out_dir=out, cache_dir=cache,
                         engine=engine, chunk_seconds=CHUNK_SECONDS, force=True,
                         **kwargs)  # type: ignore[arg-type]


def _encode(source: Path, out: Path, cache: Path, engine: str, *,
            runner: CommandRunner | None = None, **kwargs: object) -> EncodeResult:
    return encode_source(source, _options(out, cache, engine, **kwargs), runner=runner)


@pytest.fixture(scope="session")
def local_tiny(tmp_path_factory: pytest.TempPathFactory, source_16s: Path) -> Path:
    base = tmp_path_factory.mktemp("tiny-local")
    _encode(source_16s, base / "pkg", base / "cache", "local")
    return base / "pkg"


@pytest.fixture(scope="session")
def chunked_tiny(tmp_path_factory: pytest.TempPathFactory, source_16s: Path) -> Path:
    base = tmp_path_factory.mktemp("tiny-chunked")
    _encode(source_16s, base / "pkg", base / "cache", "chunked")
    return base / "pkg"


def _packets(path: Path) -> list[tuple[str, str, str]]:
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries",
                        "packet=pts_time,dts_time,flags")
    return [(p["pts_time"], p["dts_time"], p["flags"]) for p in data["packets"]]


def test_chunk_plan_is_whole_gops_and_the_last_takes_the_remainder() -> None:
    chunks = plan_chunks(200, 48, 25.0, 2.0)  # 8 s in one-GOP chunks
    assert [(c.start, c.frames, c.last) for c in chunks] == \
        [(0, 48, False), (48, 48, False), (96, 48, False), (144, 56, True)]
    assert [c.window.frames for c in chunks] == [48, 48, 48, None]
    thirty = plan_chunks(25 * 95, 48, 25.0)  # 30 s -> 16 GOPs of 1.92 s
    assert {c.frames for c in thirty[:-1]} == {768} and sum(c.frames for c in thirty) == 2375
    assert len(plan_chunks(40, 48, 25.0, 30.0)) == 1


def _check_against_local(package: Path, local: Path, source: Path) -> None:
    preset = load_preset(str(TINY))
    info = probe_source(source)
    rungs = []
    for spec in preset.rungs:
        name = f"video_{spec.name}.mp4"
        ours, theirs = _packets(package / name), _packets(local / name)
        assert len(ours) == FRAMES
        assert [p[:2] for p in ours] == [p[:2] for p in theirs]  # same timestamps
        keys = [i for i, p in enumerate(ours) if "K" in p[2]]
        assert keys == list(range(0, FRAMES, GOP))  # IDR every GOP, same in every rung
        size = sum(int(p["size"]) for p in ffprobe_json(
            package / name, "-select_streams", "v:0", "-show_entries", "packet=size")["packets"])
        assert abs(size * 8 / SECONDS - spec.bitrate) <= 0.02 * spec.bitrate, spec.name
        rungs.append(PlannedRung(spec.name, spec.width, spec.height, spec.bitrate,
                                 spec.bufsize))
    ours_q = measure_quality(info, [(r, package / f"video_{r.name}.mp4") for r in rungs])
    local_q = measure_quality(info, [(r, local / f"video_{r.name}.mp4") for r in rungs])
    for rung in rungs:
        assert abs(ours_q[rung.name]["psnr"] - local_q[rung.name]["psnr"]) <= 0.1, rung.name
    report = validate_package(package)
    assert not report.errors, [f.one_line() for f in report.errors]
    assert not [f for f in report.findings if f.check.startswith("media.hrd")]


def test_chunked_matches_local(chunked_tiny: Path, local_tiny: Path, source_16s: Path) -> None:
    _check_against_local(chunked_tiny, local_tiny, source_16s)


def test_a_rerun_encodes_only_the_missing_chunks(tmp_path: Path, source_16s: Path) -> None:
    cache = tmp_path / "cache"
    _encode(source_16s, tmp_path / "first", cache, "chunked")
    # An interrupted run: the rungs were never joined and chunk 2 of 3 never finished.
    # Chunk 2 of both rungs, found by its cache key (the rung's key + the chunk's window).
    chunk_files = sorted((cache / "chunks").glob("*.mp4"))
    assert len(chunk_files) == 6  # 3 chunks x 2 rungs
    kept = {path: path.stat().st_mtime_ns for path in chunk_files}
    second = plan_chunks(FRAMES, GOP, 25.0, CHUNK_SECONDS)[1]
    for rung in (cache / "rungs").glob("*.mp4"):
        entry = RungCache(cache).chunk(encode_key({"rung": rung.stem,
                                                   "chunk": second.as_key()}))
        entry.media.unlink()
        del kept[entry.media]
    for entry in (cache / "rungs").iterdir():
        entry.unlink()
    runner = CommandRunner()
    rerun = _encode(source_16s, tmp_path / "second", cache, "chunked", runner=runner)
    passes = [argv for argv in runner.history if "-pass" in argv]
    assert len(passes) == 2  # one chunk, two passes (both rungs in each)
    # pass 1 seeks to the chunk; pass 2 reads the frames pass 1 left (no second decode)
    assert "-ss" in passes[0] and any(a.endswith("-frames.nut") for a in passes[1])
    assert all("-frames:v" in argv for argv in passes)
    assert all(argv[argv.index("-frames:v") + 1] == str(CHUNK_FRAMES) for argv in passes)
    assert [r.measurement.frames for r in rerun.rungs if r.measurement] == [FRAMES, FRAMES]
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())
    assert not validate_package(tmp_path / "second").errors


# --- the Ray engine (one local Ray instance for the session: it takes ~20 s to start) ---

@pytest.fixture(scope="session")
def ray_session() -> str:
    """A 2-CPU local Ray instance shared by the ray tests; returns its address."""
    ray = pytest.importorskip("ray")
    start_local_ray()
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _chunk_ffmpegs() -> list[tuple[int, int]]:
    """(pid, parent pid) of every ffmpeg running a chunk on a Ray worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"discriminator-chunk-" in b" ".join(argv) and b"-pass" in argv:
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            found.append((int(entry.name), parent))
    return found


def _wait_for_chunk_ffmpeg(timeout: float = 120.0) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = _chunk_ffmpegs()
        if running:
            return running
        time.sleep(0.2)
    raise AssertionError("no chunk ffmpeg started on a Ray worker")


@pytest.mark.ray
def test_ray_shipped_sources_match_local(ray_session: str, tmp_path: Path, local_tiny: Path,
                                         source_16s: Path) -> None:
    _encode(source_16s, tmp_path / "pkg", tmp_path / "cache", "ray", ship_sources=True)
    _check_against_local(tmp_path / "pkg", local_tiny, source_16s)


@pytest.mark.ray
def test_ray_worker_killed_mid_chunk_is_retried(ray_session: str, tmp_path: Path,
                                                source_16s: Path) -> None:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = _encode(source_16s, tmp_path / "pkg", tmp_path / "cache", "ray")
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    ffmpeg_pid, worker_pid = _wait_for_chunk_ffmpegs_first()
    os.kill(worker_pid, signal.SIGKILL)  # the Ray worker dies mid-chunk...
    with contextlib.suppress(ProcessLookupError):
        os.kill(ffmpeg_pid, signal.SIGKILL)  # ...and takes its ffmpeg with it
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert isinstance(result, EncodeResult)
    assert [r.measurement.frames for r in result.rungs if r.measurement] == [FRAMES, FRAMES]
    report = validate_package(tmp_path / "pkg")
    assert not report.errors, [f.one_line() for f in report.errors]


def _wait_for_chunk_ffmpegs_first() -> tuple[int, int]:
    pid, parent = _wait_for_chunk_ffmpeg()[0]
    return pid, parent


@pytest.mark.ray
def test_ray_ctrl_c_cancels_the_tasks_and_publishes_nothing(ray_session: str, tmp_path: Path,
                                                            source_16s: Path) -> None:
    out = tmp_path / "pkg"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "RAY_AUTH_MODE": "disabled"}
    process = subprocess.Popen(
        [sys.executable, "-m", "discriminator_cli", "encode", str(source_16s), "--preset",
         str(TINY), "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "--engine", "ray",
         "--ray-address", ray_session, "--chunk-seconds", str(CHUNK_SECONDS), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_chunk_ffmpeg()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left"
    deadline = time.monotonic() + 30
    while _chunk_ffmpegs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _chunk_ffmpegs(), "cancelled chunks still running on the workers"
