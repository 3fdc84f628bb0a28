"""How long `discriminator validate` takes on a two-hour, three-rung DASH + HLS package.

The package is built cheaply: a 19.2 s clip (10 GOPs of 48 frames at 25 fps, and exactly 900
AAC frames at 48 kHz, so copies join cleanly) is encoded once per rung, looped with
`ffmpeg -stream_loop N -c copy` to the target length, then packaged by the project's own
packaging step. The validator's cost grows with the number of fragments, not with bytes,
so low bitrates keep the disk use small without making the benchmark easier.

Times `validate_paths` in-process and `python -m discriminator_cli validate --json` as a
subprocess (also with the package's pages evicted from the page cache first, to count the
disk seeks), with each one's peak memory (ru_maxrss). Targets: < 3 s and < 200 MB.

    python benchmarks/validate_long.py [--hours 2] [--packager shaka] [--work DIR]
                                       [--repeats 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from discriminator_cli.encode.packaging import PackageInput, package, resolve_backend
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path

CLIP_SECONDS = 19.2
SEGMENT_SECONDS = 1.92
RUNGS = (("360p", 640, 360, 300), ("270p", 480, 270, 180), ("180p", 320, 180, 100))  # kbit/s
TARGET_SECONDS, TARGET_MB = 3.0, 200.0
AUDIO_RATE, AAC_FRAME = 48000, 1024


def encode_clip(clip: Path, out: Path, runner: CommandRunner) -> list[PackageInput]:
    """Every rung and the audio from one decode of the clip."""
    split = f"[0:v]split={len(RUNGS)}" + "".join(f"[s{i}]" for i in range(len(RUNGS))) + ";" + \
        ";".join(f"[s{i}]scale={w}:{h}[v{i}]" for i, (_, w, h, _) in enumerate(RUNGS))
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-i", str(clip), "-filter_complex", split]
    inputs = []
    for i, (name, _, _, kbps) in enumerate(RUNGS):
        path = out / f"clip_{name}.mp4"
        argv += ["-map", f"[v{i}]", "-c:v", "libx264", "-preset", "veryfast",
                 "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k",
                 "-x264-params", "keyint=48:min-keyint=48:scenecut=0:nal-hrd=cbr", "-an",
                 str(path)]
        inputs.append(PackageInput("video", f"video_{name}", path))
    audio = out / "clip_audio.mp4"
    # The encoder adds 1024 priming samples that the clip's edit list hides but a looped
    # copy keeps: trim one frame so each copy is exactly 900 frames (19.2 s) of packets.
    samples = int(CLIP_SECONDS * AUDIO_RATE) - AAC_FRAME
    argv += ["-map", "0:a", "-af", f"atrim=end_sample={samples}", "-c:a", "aac", "-b:a", "64k",
             "-ac", "2", "-ar", str(AUDIO_RATE), "-metadata:s:a:0", "language=eng", "-vn",
             str(audio)]
    runner.run(argv, what="ffmpeg (clip rungs)")
    return [*inputs, PackageInput("audio", "audio_eng", audio, "eng")]


def build(work: Path, hours: float, backend: str) -> Path:
    runner = CommandRunner()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clip = generate_sample(work / "clip.mov", seconds=CLIP_SECONDS, width=640, height=360,
                           runner=runner)
    copies = math.ceil(hours * 3600 / CLIP_SECONDS)
    long_inputs = []
    for item in encode_clip(clip, work, runner):
        looped = work / item.path.name.replace("clip_", "long_")
        runner.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                    "-stream_loop", str(copies - 1), "-i", str(item.path), "-c", "copy",
                    str(looped)], what=f"ffmpeg loop {item.name}")
        long_inputs.append(PackageInput(item.kind, item.name, looped, item.language))
    out = work / "package"
    out.mkdir()
    package(backend, long_inputs, out, work, SEGMENT_SECONDS, runner)
    for item in long_inputs:
        item.path.unlink()  # the package holds the media now
    return out


def time_in_process(pkg: Path, repeats: int) -> tuple[list[float], float, object]:
    from discriminator_cli.validate import validate_paths

    times, report = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        report = validate_paths([pkg])
        times.append(time.perf_counter() - start)
    return times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, report


def evict_from_page_cache(pkg: Path) -> None:
    """Drop the package's pages (only its files) so the next run reads from disk."""
    for path in pkg.iterdir():
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def time_subprocess(pkg: Path, *, cold: bool = False) -> tuple[float, float, int]:
    """Wall time, peak RSS (MB) and exit code of the console command in a fresh process."""
    if cold:
        evict_from_page_cache(pkg)
    argv = [sys.executable, "-m", "discriminator_cli", "validate", str(pkg), "--json"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--packager", default="shaka", choices=("shaka", "bento4"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/discriminator-validate-long"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    backend = resolve_backend(args.packager)
    work = args.work / f"{backend}-{args.hours:g}h"
    pkg = work / "package"
    if args.rebuild or not (pkg / "stream.mpd").is_file():
        start = time.perf_counter()
        pkg = build(work, args.hours, backend)
        print(f"built {pkg} in {time.perf_counter() - start:.0f} s")
    size_mb = sum(p.stat().st_size for p in pkg.iterdir()) / 1e6
    print(f"package: {pkg} ({size_mb:.0f} MB, {backend}, {args.hours:g} h, {len(RUNGS)} rungs, "
          f"{math.ceil(args.hours * 3600 / SEGMENT_SECONDS)} segments per rendition)")

    cold_runs = [time_subprocess(pkg, cold=True) for _ in range(args.repeats)]
    sub_runs = [time_subprocess(pkg) for _ in range(args.repeats)]
    times, self_mb, report = time_in_process(pkg, args.repeats)
    print(f"in-process: best {min(times):.2f} s, median {statistics.median(times):.2f} s; "
          f"peak RSS of this process {self_mb:.0f} MB")
    sub_times = [t for t, _, _ in sub_runs]
    sub_mb = max(mb for _, mb, _ in sub_runs)
    print(f"subprocess (python -m discriminator_cli validate --json): best {min(sub_times):.2f} s,"
          f" median {statistics.median(sub_times):.2f} s; peak RSS {sub_mb:.0f} MB; "
          f"exit {sub_runs[0][2]}")
    cold_times = [t for t, _, _ in cold_runs]
    print(f"subprocess, package evicted from the page cache first: best {min(cold_times):.2f} s,"
          f" median {statistics.median(cold_times):.2f} s; peak RSS "
          f"{max(mb for _, mb, _ in cold_runs):.0f} MB")
    print(f"report: {report.summary_line()}")  # type: ignore[union-attr]
    for finding in report.sorted_findings()[:10]:  # type: ignore[union-attr]
        print(f"  {finding.one_line()}")
    met = max(statistics.median(sub_times), statistics.median(cold_times)) < TARGET_SECONDS \
        and sub_mb < TARGET_MB
    print(f"target (< {TARGET_SECONDS:g} s, < {TARGET_MB:g} MB): {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
