"""The Wav2Lip model alone at each precision: frames/s and PSNR against fp32, same run.

Stand-in weights (tests/wav2lip_weights.py, the parity rule), the 3 s test narration's mel
windows and the parity faces, a batch of 32 frames. Rows:
  fp32-original  BatchNorm unfolded, NCHW, face encoder every frame (what inference.py runs)
  fp32 / bf16 / int8  our engine (BN folded; bf16 + channels_last; static int8), predict()
  ... still       predict_still(): the face encoder once, then audio encoder + decoder only
int8 is calibrated on the narration's even windows and scored on the odd ones.

    python benchmarks/model_precision.py [--batch 32] [--repeats 5] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from discriminator_cli.lipsync.audio import (
    load_audio,
    mel_windows,
    melspectrogram,
)
from discriminator_cli.lipsync.checkpoint import load_wav2lip
from discriminator_cli.lipsync.engine import (
    faces_to_input,
    load_engine,
    output_to_faces,
)
from discriminator_cli.lipsync.precision import cpu_has_native_bf16, psnr
from discriminator_cli.lipsync.quantize import quantize_checkpoint
from tests.wav2lip_weights import DATA, reference_faces, write_checkpoint


def interleaved_best(runs: dict[str, Callable[[], np.ndarray]],
                     repeats: int) -> dict[str, tuple[float, np.ndarray]]:
    """Best time of each run, taking turns, so that load from other processes on a shared
    machine hits every variant alike; the first call of each is a warm-up (oneDNN picks and
    caches its kernels then)."""
    outputs = {name: run() for name, run in runs.items()}
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            outputs[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], outputs[name]) for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-precision-"))
    ckpt = write_checkpoint(work / "wav2lip.pth", official=False)
    mels_all = mel_windows(melspectrogram(load_audio(DATA / "speech_3s_16k.wav")), 25)
    held = mels_all[1::2]
    mels = np.resize(held, (args.batch, 80, 16)).astype(np.float32)
    faces = np.resize(reference_faces(), (args.batch, 96, 96, 3))
    still_face = faces[0]

    original = load_wav2lip(ckpt)  # BN not folded, as the original runs it

    def run_original() -> np.ndarray:
        with torch.inference_mode():
            return output_to_faces(original(torch.from_numpy(mels).unsqueeze(1),
                                            faces_to_input(faces)))

    runs: dict[str, Callable[[], np.ndarray]] = {"fp32-original": run_original}
    quantised = work / "wav2lip_int8.pt"
    report = quantize_checkpoint(ckpt, quantised, mels=mels_all, face=still_face, force=True,
                                 measure_speed=False)  # this script times every precision
    for precision, path in (("fp32", ckpt), ("bf16", ckpt), ("int8", quantised)):
        engine = load_engine(path, precision=precision, batch_size=args.batch)
        runs[precision] = lambda e=engine: e.predict(mels, faces)
        runs[f"{precision} still"] = lambda e=engine: e.predict_still(mels, still_face)
    timed = interleaved_best(runs, args.repeats)
    base_s, base_out = timed["fp32-original"]
    rows = [{"name": name, "seconds": seconds, "out": out,
             "reference_still": name.endswith("still")}
            for name, (seconds, out) in timed.items()]

    fp32_still = next(r["out"] for r in rows if r["name"] == "fp32 still")
    results = []
    for row in rows:
        reference = fp32_still if row.get("reference_still") else base_out
        score = psnr(reference, row["out"])
        results.append({"name": row["name"], "frames_per_s": args.batch / row["seconds"],
                        "speedup": base_s / row["seconds"],
                        "psnr_db": None if math.isinf(score) else round(score, 2)})
    summary = {"batch": args.batch, "threads": torch.get_num_threads(),
               "native_bf16": cpu_has_native_bf16(), "torch": str(torch.__version__),
               "int8_quantize_psnr_db": round(report.psnr_db, 2),
               "int8_bytes": report.output_bytes, "fp32_bytes": report.source_bytes,
               "rows": results}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"batch {args.batch}, {summary['threads']} threads, torch {summary['torch']}, "
          f"native bf16: {summary['native_bf16']}")
    print(f"{'precision':<16}{'frames/s':>10}{'speed-up':>10}{'PSNR vs fp32':>14}")
    for r in results:
        shown = "identical" if r["psnr_db"] is None else f"{r['psnr_db']:.1f} dB"
        print(f"{r['name']:<16}{r['frames_per_s']:>10.1f}{r['speedup']:>9.2f}x{shown:>14}")
    print(f"int8 file {report.output_bytes / 1e6:.1f} MB vs fp32 {report.source_bytes / 1e6:.1f} "
          f"MB; quantize's held-out PSNR {report.psnr_db:.1f} dB")


if __name__ == "__main__":
    main()
