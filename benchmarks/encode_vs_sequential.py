"""The original workflow's encode (one ffmpeg per rung and pass: six decodes of the source)
against `discriminator encode` (one decode per pass, `split` into every rung), interleaved.

Prints wall time and the ratio, per-rung PSNR and bitrate for both, and the peak memory of
each run at two source lengths (it must not grow with the length: everything streams).

    python benchmarks/encode_vs_sequential.py [--seconds 10] [--repeats 2]
        [--preset documentary] [--source-codec prores|h264]
"""

from __future__ import annotations

import argparse
import json
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


def child_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_variant(variant: str, source: str, preset: str, out: str) -> None:
    """Runs in a fresh interpreter so that its children's peak RSS is its own."""
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
    print(json.dumps({"wall": wall, "peak_mb": child_peak_mb()}))


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
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    source = generate_sample(work / "source.mov", seconds=args.seconds, width=width,
                             height=height, codec=args.source_codec)
    longer = generate_sample(work / "source2x.mov", seconds=args.seconds * 2, width=width,
                             height=height, codec=args.source_codec)
    info = probe_source(source)
    preset = load_preset(args.preset)
    plan = plan_ladder(info, preset)
    print(f"source: {args.source_codec} {info.pix_fmt} {args.size} {info.fps:g} fps "
          f"{args.seconds:g} s; preset {args.preset}; "
          f"rungs {', '.join(f'{r.name}@{r.bitrate / 1e6:g}M' for r in plan.rungs)}")
    walls: dict[str, list[float]] = {"sequential": [], "discriminator": []}
    peaks: dict[str, float] = {}
    last_out: dict[str, Path] = {}
    for repeat in range(args.repeats):
        for variant in ("sequential", "discriminator"):  # interleaved: drift hits both
            out = work / f"{variant}-{repeat}"
            stats = timed(variant, source, args.preset, out)
            walls[variant].append(stats["wall"])
            peaks[variant] = max(peaks.get(variant, 0.0), stats["peak_mb"])
            last_out[variant] = out
            print(f"  run {repeat + 1} {variant:13s} {stats['wall']:7.1f} s  "
                  f"peak {stats['peak_mb']:6.0f} MB")
    best = {k: min(v) for k, v in walls.items()}
    print(f"\nwall (best of {args.repeats}): sequential {best['sequential']:.1f} s, "
          f"discriminator {best['discriminator']:.1f} s, ratio "
          f"{best['discriminator'] / best['sequential']:.3f} (target <= 0.75)")

    print("\nper rung: average bitrate vs target, PSNR/SSIM vs the scaled source")
    for variant in ("sequential", "discriminator"):
        files = rung_files(variant, last_out[variant])
        pairs = [(r, files[r.name]) for r in plan.rungs]
        scores = measure_quality(info, pairs)
        for rung, path in pairs:
            m = measure_stream(path, kind="video", segment_seconds=plan.segment_seconds)
            q = scores[rung.name]
            print(f"  {variant:13s} {rung.name:6s} {m.average_bitrate / 1e6:6.3f} Mbit/s "
                  f"({(m.average_bitrate / rung.bitrate - 1) * 100:+5.2f} %)  "
                  f"PSNR {q['psnr']:6.2f} dB  SSIM {q['ssim']:.4f}")

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
