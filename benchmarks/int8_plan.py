"""int8 on a trained-like checkpoint: PSNR against fp32 and speed against bf16, same run.

The checkpoint is the stand-in rule with BatchNorm made trained-like (tests/wav2lip_weights.py:
affine parameters randomised, running statistics recomputed in train mode), so activations have
trained-network ranges. `quantize` (accuracy-aware: histogram/MSE observers, per-unit
sensitivity, a mixed plan at --threshold) is run on the astronaut's face and the 3 s narration;
rows, for still-photo generation (predict_still, batch --batch):
  fp32, bf16             the engine at those precisions (bf16 emulated where the CPU lacks it)
  int8 plan              the file quantize wrote (int8 where safe, the rest bf16/fp32)
  int8 all (min/max)     every unit int8 with min/max ranges: what quantize did before plans
  int8 all (MSE)         every unit int8 with the new observers, no plan
PSNR is over the held-out windows (odd ones), against fp32. Speed ratios are against bf16 and
fp32 measured in the same run, taking turns (load from other processes hits all alike).

    python benchmarks/int8_plan.py [--batch 32] [--repeats 3] [--threshold 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.model_precision import interleaved_best
from discriminator_cli.lipsync.checkpoint import load_wav2lip
from discriminator_cli.lipsync.engine import LipSyncEngine, faces_to_input, load_engine
from discriminator_cli.lipsync.int8 import Int8Wav2Lip, export_state, minmax_scales
from discriminator_cli.lipsync.observers import observe
from discriminator_cli.lipsync.precision import cpu_flags, fold_batchnorm, psnr
from discriminator_cli.lipsync.quantize import calibration_inputs, quantize_checkpoint
from tests.wav2lip_weights import DATA, write_trained_like_checkpoint


def _int8_all(checkpoint: Path, scales: dict, *, minmax: bool,
              reference: LipSyncEngine) -> LipSyncEngine:
    """Every unit int8 (no plan), with min/max ranges (the old scheme) or the MSE ones."""
    model = fold_batchnorm(load_wav2lip(checkpoint)).eval()
    state = export_state(model, minmax_scales(scales) if minmax else scales, {})
    return LipSyncEngine(Int8Wav2Lip(state).eval(), precision="int8", device="cpu",
                         checkpoint_path=checkpoint,
                         checkpoint_sha256=reference.checkpoint_sha256,
                         batch_size=reference.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=40.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    work = Path(tempfile.mkdtemp(prefix="bench-int8-plan-"))
    checkpoint = write_trained_like_checkpoint(work / "trained_like.pth")
    Image.fromarray(data.astronaut()).save(work / "astronaut.png")
    mels_all, face, info = calibration_inputs(DATA / "speech_3s_16k.wav", work / "astronaut.png",
                                              box=(177, 66, 272, 171), cache_dir=work)
    quantised = work / "trained_like_int8.pt"
    report = quantize_checkpoint(checkpoint, quantised, mels=mels_all, face=face,
                                 threshold_db=args.threshold, calibration_info=info,
                                 force=True)
    held = np.resize(mels_all[1::2], (args.batch, 80, 16)).astype(np.float32)

    engines = {"fp32": load_engine(checkpoint, "fp32", batch_size=args.batch),
               "bf16": load_engine(checkpoint, "bf16", batch_size=args.batch),
               "int8 plan": load_engine(quantised, batch_size=args.batch)}
    folded = fold_batchnorm(load_wav2lip(checkpoint)).eval()
    cal = torch.from_numpy(mels_all[0::2][:32]).unsqueeze(1)
    observed = observe(folded, cal, faces_to_input(face[None]).expand(len(cal), -1, -1, -1))
    for label, minmax in (("int8 all (min/max)", True), ("int8 all (MSE)", False)):
        engines[label] = _int8_all(checkpoint, observed, minmax=minmax,
                                   reference=engines["fp32"])
    timed = interleaved_best({name: (lambda e=engine: e.predict_still(held, face))
                              for name, engine in engines.items()}, args.repeats)
    fp32_s, fp32_out = timed["fp32"]
    bf16_s, _ = timed["bf16"]
    rows = []
    for name, (seconds, out) in timed.items():
        score = psnr(fp32_out, out)
        rows.append({"name": name, "frames_per_s": round(args.batch / seconds, 2),
                     "vs_bf16": round(bf16_s / seconds, 3), "vs_fp32": round(fp32_s / seconds, 3),
                     "psnr_db": None if math.isinf(score) else round(score, 2)})
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx_vnni")))
    summary = {"batch": args.batch, "threads": torch.get_num_threads(), "cpu_flags": flags,
               "torch": str(torch.__version__), "threshold_db": args.threshold,
               "quantize": {"psnr_db": round(report.psnr_db, 2),
                            "all_int8_psnr_db": round(report.all_int8_psnr_db, 2),
                            "plan_counts": {k: len(v) for k, v in report.plan.items()},
                            "kept_float": {k: v for k, v in report.plan.items() if k != "int8"},
                            "int8_compute_share": round(report.int8_compute_share, 3),
                            "speed": {k: round(v, 3) for k, v in report.speed.items()},
                            "bytes": report.output_bytes, "fp32_bytes": report.source_bytes,
                            "seconds": report.seconds},
               "rows": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"batch {args.batch} (still photo), {summary['threads']} threads, torch "
          f"{summary['torch']}, CPU flags: {' '.join(flags) or 'no AVX-512'}")
    q = summary["quantize"]
    print(f"quantize --threshold {args.threshold:g}: held-out PSNR {q['psnr_db']} dB (every unit "
          f"int8: {q['all_int8_psnr_db']} dB); plan {q['plan_counts']}, int8 share of compute "
          f"{q['int8_compute_share']:.0%}; file {q['bytes'] / 1e6:.1f} MB vs "
          f"{q['fp32_bytes'] / 1e6:.1f} MB; {q['seconds']:.0f} s")
    print(f"  kept float: {q['kept_float']}")
    print(f"{'model':<20}{'frames/s':>10}{'vs bf16':>9}{'vs fp32':>9}{'PSNR vs fp32':>14}")
    for r in rows:
        shown = "identical" if r["psnr_db"] is None else f"{r['psnr_db']:.1f} dB"
        print(f"{r['name']:<20}{r['frames_per_s']:>10.1f}{r['vs_bf16']:>8.2f}x"
              f"{r['vs_fp32']:>8.2f}x{shown:>14}")


if __name__ == "__main__":
    main()
