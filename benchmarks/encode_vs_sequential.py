"""The original workflow's encode (one ffmpeg per rung and pass: six decodes of the source)
against `discriminator encode` (the source decoded and scaled once; pass 1 leaves the rungs'
raw frames for pass 2), interleaved.

Prints wall and CPU time (every child process, from getrusage) and their ratios, the floor
(x264's own CPU for the same rung encodes, run alone from raw frames, divided by the cores),
per-rung PSNR and bitrate for both with a pass/fail against the sequential ones, and the peak
memory of each run at two source lengths (it must not grow with the length).

    python benchmarks/encode_vs_sequential.py [--seconds 10] [--repeats 2]
        [--preset documentary] [--source-codec prores|h264] [--no-floor] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from discriminator_cli.encode import EncodeOptions, encode_source
from discriminator_cli.encode.ladder import plan_ladder
from discriminator_cli.encode.measure import measure_stream
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.quality import measure_quality
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.encode.x264 import x264_params
from discriminator_cli.probe import probe_source
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path


def sequential_argvs(source: Path, preset_name: str, out: Path) -> list[list[str]]:
    """What the documentary's original script ran: each rung, each pass, its own ffmpeg."""
    preset = load_preset(preset_name)
    info = probe_source(source)
    plan = plan_ladder(info, preset)
    video = preset.video
    argvs = []
    for rung in plan.rungs:
        log = out / f"{rung.name}-log"
        common = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                  "-i", str(source), "-vf", f"scale={rung.width}:{rung.height}",
                  "-c:v", "libx264", "-preset", video.x264_preset, "-profile:v", video.profile,
                  "-level:v", video.level, "-pix_fmt", video.pix_fmt, "-b:v", str(rung.bitrate),
                  "-maxrate", str(rung.bitrate), "-bufsize", str(rung.bufsize),
                  "-x264-params", x264_params(video, plan.gop_frames), "-passlogfile", str(log)]
        argvs.append([*common, "-pass", "1", "-an", "-f", "null", "/dev/null"])
        argvs.append([*common, "-pass", "2", "-an", "-f", "mp4", str(out / f"{rung.name}.mp4")])
    return argvs


PSNR_TOLERANCE_DB = 0.1       # "unchanged": within what two runs of one encode differ by
BITRATE_TOLERANCE = 0.02      # of the target, as the chunked engine is held to
WALL_TARGET = 0.65


def child_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def x264_floor(source: Path, preset_name: str, out: Path) -> dict[str, float]:
    """x264's CPU seconds per rung (both passes), encoding alone from raw frames that were
    scaled beforehand: what is left is reading raw frames, measured and subtracted."""
    preset = load_preset(preset_name)
    info = probe_source(source)
    plan = plan_ladder(info, preset)
    video = preset.video
    runner = CommandRunner()
    out.mkdir(parents=True, exist_ok=True)
    rate = f"{plan.frame_rate.numerator}/{plan.frame_rate.denominator}"
    quiet = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    raws = {rung.name: out / f"{rung.name}.yuv" for rung in plan.rungs}
    scale = ";".join(f"[0:v:0]scale={r.width}:{r.height}:flags=bicubic,format={video.pix_fmt},"
                     f"setsar=1[{r.name}]" for r in plan.rungs)
    argv = [*quiet, "-i", str(source), "-filter_complex", scale]
    for rung in plan.rungs:
        argv += ["-map", f"[{rung.name}]", "-f", "rawvideo", str(raws[rung.name])]
    runner.run(argv, what="ffmpeg raw frames")
    cpu: dict[str, float] = {}
    for rung in plan.rungs:
        raw_input = ["-f", "rawvideo", "-pix_fmt", video.pix_fmt, "-s",
                     f"{rung.width}x{rung.height}", "-r", rate, "-i", str(raws[rung.name])]
        before = children_cpu()
        runner.run([*quiet, *raw_input, "-f", "null", "-"], what="ffmpeg read raw")
        reading = children_cpu() - before
        before = children_cpu()
        for number, target in ((1, ["-f", "null", "/dev/null"]),
                               (2, ["-f", "mp4", str(out / f"{rung.name}.mp4")])):
            runner.run([*quiet, *raw_input, "-c:v", "libx264", "-preset", video.x264_preset,
                        "-profile:v", video.profile, "-level:v", video.level,
                        "-pix_fmt", video.pix_fmt, "-b:v", str(rung.bitrate),
                        "-maxrate", str(rung.bitrate), "-bufsize", str(rung.bufsize),
                        "-x264-params", x264_params(video, plan.gop_frames),
                        "-passlogfile", str(out / f"{rung.name}-log"), "-pass", str(number),
                        "-an", *target], what="ffmpeg x264 alone")
        cpu[rung.name] = children_cpu() - before - 2 * reading
        raws[rung.name].unlink()
    return cpu


def run_variant(variant: str, source: str, preset: str, out: str) -> None:
    """Runs in a fresh interpreter so that its children's peak RSS and CPU are its own."""
    start = time.perf_counter()
    if variant == "sequential":
        runner = CommandRunner()
        for argv in sequential_argvs(Path(source), preset, Path(out)):
            runner.run(argv, what="ffmpeg")
    else:
        encode_source(Path(source), EncodeOptions(preset=load_preset(preset),
                                                  out_dir=Path(out) / "package",
                                                  cache_dir=Path(out) / "cache", validate=False))
    wall = time.perf_counter() - start
    me = resource.getrusage(resource.RUSAGE_SELF)
    cpu = children_cpu() + me.ru_utime + me.ru_stime
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": child_peak_mb()}))


def timed(variant: str, source: Path, preset: str, out: Path) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, __file__, "--child", variant, str(source), preset,
                             str(out)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def rung_files(variant: str, out: Path) -> dict[str, Path]:
    if variant == "sequential":
        return {p.stem: p for p in out.glob("*.mp4")}
    return {p.stem.removeprefix("video_"): p for p in (out / "package").glob("video_*.mp4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="documentary")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--source-codec", default="prores", choices=("prores", "h264"),
                        help="editors deliver ProRes .mov; h264 is cheaper to decode")
    parser.add_argument("--no-floor", action="store_true", help="skip the x264-alone runs")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the run on the twice-as-long source")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    source = generate_sample(work / "source.mov", seconds=args.seconds, width=width,
                             height=height, codec=args.source_codec)
    info = probe_source(source)
    preset = load_preset(args.preset)
    plan = plan_ladder(info, preset)
    print(f"source: {args.source_codec} {info.pix_fmt} {args.size} {info.fps:g} fps "
          f"{args.seconds:g} s; preset {args.preset}; "
          f"rungs {', '.join(f'{r.name}@{r.bitrate / 1e6:g}M' for r in plan.rungs)}")
    cores = os.cpu_count() or 1
    print(f"{cores} cores; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    walls: dict[str, list[float]] = {"sequential": [], "discriminator": []}
    cpus: dict[str, list[float]] = {"sequential": [], "discriminator": []}
    peaks: dict[str, float] = {}
    last_out: dict[str, Path] = {}
    for repeat in range(args.repeats):
        for variant in ("sequential", "discriminator"):  # interleaved: drift hits both
            out = work / f"{variant}-{repeat}"
            stats = timed(variant, source, args.preset, out)
            walls[variant].append(stats["wall"])
            cpus[variant].append(stats["cpu"])
            peaks[variant] = max(peaks.get(variant, 0.0), stats["peak_mb"])
            last_out[variant] = out
            print(f"  run {repeat + 1} {variant:13s} wall {stats['wall']:7.1f} s  CPU "
                  f"{stats['cpu']:7.1f} s ({stats['cpu'] / stats['wall']:.2f} cores)  "
                  f"peak {stats['peak_mb']:6.0f} MB  load {os.getloadavg()[0]:.2f}", flush=True)
    best = {k: min(v) for k, v in walls.items()}
    cpu = {k: min(v) for k, v in cpus.items()}
    ratio = best["discriminator"] / best["sequential"]
    print(f"\nwall (best of {args.repeats}): sequential {best['sequential']:.1f} s, "
          f"discriminator {best['discriminator']:.1f} s, ratio {ratio:.3f} "
          f"(target <= {WALL_TARGET}: {'met' if ratio <= WALL_TARGET else 'NOT met'})")
    print(f"CPU (best of {args.repeats}): sequential {cpu['sequential']:.1f} s, "
          f"discriminator {cpu['discriminator']:.1f} s, ratio "
          f"{cpu['discriminator'] / cpu['sequential']:.3f}")
    if not args.no_floor:
        floor_cpu = x264_floor(source, args.preset, work / "floor")
        floor = sum(floor_cpu.values()) / cores
        print(f"floor: x264 alone {sum(floor_cpu.values()):.1f} CPU s ("
              + ", ".join(f"{k} {v:.1f}" for k, v in floor_cpu.items())
              + f") / {cores} cores = {floor:.1f} s; discriminator wall is "
              f"{best['discriminator'] / floor:.2f}x the floor, sequential "
              f"{best['sequential'] / floor:.2f}x; the floor is "
              f"{floor / best['sequential']:.3f}x sequential wall")

    print("\nper rung: average bitrate vs target, PSNR/SSIM vs the scaled source")
    found: dict[str, dict[str, tuple[float, float]]] = {}
    for variant in ("sequential", "discriminator"):
        files = rung_files(variant, last_out[variant])
        pairs = [(r, files[r.name]) for r in plan.rungs]
        scores = measure_quality(info, pairs)
        for rung, path in pairs:
            m = measure_stream(path, kind="video", segment_seconds=plan.segment_seconds)
            q = scores[rung.name]
            found.setdefault(variant, {})[rung.name] = (q["psnr"], m.average_bitrate)
            print(f"  {variant:13s} {rung.name:6s} {m.average_bitrate / 1e6:6.3f} Mbit/s "
                  f"({(m.average_bitrate / rung.bitrate - 1) * 100:+5.2f} %)  "
                  f"PSNR {q['psnr']:6.2f} dB  SSIM {q['ssim']:.4f}")
    for rung in plan.rungs:
        (psnr_s, rate_s), (psnr_d, rate_d) = (found[v][rung.name]
                                              for v in ("sequential", "discriminator"))
        same = (abs(psnr_d - psnr_s) <= PSNR_TOLERANCE_DB
                and abs(rate_d - rate_s) <= BITRATE_TOLERANCE * rung.bitrate)
        print(f"  {rung.name:6s} PSNR {psnr_d - psnr_s:+.3f} dB, bitrate "
              f"{(rate_d - rate_s) / rung.bitrate * 100:+.2f} % of target vs sequential: "
              f"{'unchanged' if same else 'CHANGED'} (within {PSNR_TOLERANCE_DB} dB, "
              f"{BITRATE_TOLERANCE:.0%})")
    if args.no_memory:
        print(f"work files in {work}")
        return
    longer = generate_sample(work / "source2x.mov", seconds=args.seconds * 2, width=width,
                             height=height, codec=args.source_codec)
    long_stats = timed("discriminator", longer, args.preset, work / "discriminator-2x")
    print(f"\npeak memory (largest process): sequential {peaks['sequential']:.0f} MB, "
          f"discriminator {peaks['discriminator']:.0f} MB at {args.seconds:g} s, "
          f"{long_stats['peak_mb']:.0f} MB at {args.seconds * 2:g} s "
          f"(growth {long_stats['peak_mb'] / peaks['discriminator']:.2f}x)")
    print(f"work files in {work}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_variant(*sys.argv[2:6])
    else:
        main()
