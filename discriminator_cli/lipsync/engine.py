"""The lip-sync engine: one loaded Wav2Lip model, ready to turn mel windows + faces into mouths.

Contract (what the `lipsync` pipeline codes against):

    from discriminator_cli.lipsync.engine import load_engine, LipSyncEngine

    engine = load_engine(checkpoint_path, precision="auto", device="cpu", batch_size=32)
        precision: "auto" | "fp32" | "bf16" | "int8".
            "auto" -> "bf16" where the CPU has native bf16 (avx512_bf16 / AMX) or on CUDA,
            else "fp32". "int8" needs a file written by `discriminator quantize` (it stores
            its own calibration and its plan: int8 units, the rest bf16/fp32); passing an
            fp32 checkpoint with "int8" is a BadInputError.
            The file type is detected: a quantised file loads as int8 whatever "auto" says.
        device: "cpu" | "cuda".
        Raises BadInputError (bad/truncated/wrong checkpoint, with path and hint) and
        MissingExtraError (torch not installed).

    engine.precision          -> str, the resolved precision ("fp32" | "bf16" | "int8")
    engine.device             -> str, "cpu" or "cuda"
    engine.checkpoint_sha256  -> str, sha256 of the checkpoint file's bytes
    engine.checkpoint_path    -> Path
    engine.meta               -> dict: "layout" ("official" | "bare" | "int8"); for int8 files
                                 also psnr_db, source_sha256, calibration provenance

    engine.predict(mels, faces) -> np.ndarray
        mels:  (B, 80, 16) float32, one mel window per output frame (audio.mel_windows()).
        faces: (B, 96, 96, 3) uint8 BGR face crops, already resized to 96x96.
        returns (B, 96, 96, 3) uint8 BGR: the generated faces. Does what inference.py does:
        model input = concat([face with rows 48: zeroed, face], channels) / 255, output * 255.
        Any B >= 1; the engine splits large batches internally.

    engine.predict_still(mels, face) -> np.ndarray
        mels: (B, 80, 16) float32; face: (96, 96, 3) uint8 BGR (one photo's crop).
        returns (B, 96, 96, 3) uint8 BGR, equal to predict(mels, repeat(face, B)) but runs the
        face encoder once per distinct face (cached on the engine, keyed by the face bytes;
        the last 8 faces are kept, so a watch-mode server reuses a hot face for free).
        predict() takes the same path when every face in a batch is the same bytes, so the
        two are bit-identical. For fp32/bf16 models the fixed face's share of each decoder
        stage is computed once too (still_decoder.StillDecoder: equal up to float rounding).

    Every path remembers the audio encoder's output per mel window
    (audio_embeddings.AudioEmbeddingCache): the second clip of a narration skips that encoder.

    load_engine(..., cores=N) lets the engine use N CPU cores as "lanes": up to
    MAX_AUTO_LANES model calls of at most LANE_ROWS rows run at once, each on its own thread
    with N // lanes intra-op threads (this sets torch's process-wide thread count: pass it
    only from a process that holds this one engine, as the CLI, a serve worker and a Ray
    replica do). Without `cores` the engine runs one call at a time on torch's threads.

    Mel windows come from discriminator_cli.lipsync.mel_cache.get_or_compute_mel(audio,
    cache_dir, fps=fps).load() and discriminator_cli.lipsync.audio.mel_windows(mel, fps,
    start=, count=).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from discriminator_cli.cache import file_sha256
from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync.audio_embeddings import AudioEmbeddingCache
from discriminator_cli.lipsync.checkpoint import load_wav2lip, read_checkpoint
from discriminator_cli.lipsync.int8 import Int8Wav2Lip, quiet_quantized
from discriminator_cli.lipsync.model import FACE_SIZE, MEL_BANDS, MEL_WINDOW
from discriminator_cli.lipsync.precision import fold_batchnorm, resolve_precision, to_bf16
from discriminator_cli.lipsync.still_decoder import StillDecoder

DEFAULT_BATCH = 32
_FACE_CACHE_SIZE = 8
# Measured with benchmarks/lipsync_lanes.py on two 2-core machines: torch's intra-op
# threads barely help this model (an Intel Xeon, fp32: 7.5 frames/s with 2 threads at 32
# rows, 7.3 at 64), while two single-threaded calls side by side use the cores (same Xeon,
# 8/16/32 rows: 12.7/10.5/11.3 frames/s; an AMD EPYC, fp32: 38.8/33.0/24.7 against 20.5,
# bf16: 75.0/72.6/69.7 against 55.2). Smaller calls won on both; more than a few lanes is
# untested, so "auto" stops at MAX_AUTO_LANES and gives the rest of the cores to each
# lane's threads.
LANE_ROWS = 8
MAX_AUTO_LANES = 4


def faces_to_input(faces: np.ndarray) -> Tensor:
    """(B, 96, 96, 3) uint8 -> (B, 6, 96, 96) float32: [face, lower half zeroed] as the model
    was trained (the masked copy first), scaled to [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float().div_(255.0)
    masked = x.clone()
    masked[:, :, FACE_SIZE // 2:] = 0.0
    return torch.cat((masked, x), dim=1)


def output_to_faces(out: Tensor) -> np.ndarray:
    """(B, 3, 96, 96) in [0, 1] -> (B, 96, 96, 3) uint8, truncated as inference.py does."""
    scaled = out.float().clamp_(0.0, 1.0).mul_(255.0).permute(0, 2, 3, 1).cpu().numpy()
    return scaled.astype(np.uint8)


def join_faces(results: list[np.ndarray]) -> np.ndarray:
    """Model outputs of consecutive calls as one (B, 96, 96, 3) array; B may be 0."""
    return (np.concatenate(results) if results
            else np.empty((0, FACE_SIZE, FACE_SIZE, 3), np.uint8))


class LipSyncEngine:
    """A loaded model at one precision on one device (see the module docstring)."""

    def __init__(self, model: nn.Module, *, precision: str, device: str,
                 checkpoint_path: Path, checkpoint_sha256: str,
                 batch_size: int = DEFAULT_BATCH, meta: dict[str, Any] | None = None,
                 lanes: int = 1, lane_rows: int = LANE_ROWS):
        self.model = model
        self.lanes = max(1, lanes)
        self.lane_rows = max(1, lane_rows)
        self._pool = (ThreadPoolExecutor(self.lanes, thread_name_prefix="model-lane")
                      if self.lanes > 1 else None)
        self.precision = precision
        self.device = device
        self.checkpoint_path = checkpoint_path
        self.checkpoint_sha256 = checkpoint_sha256
        self.batch_size = batch_size
        self.meta = meta or {}
        self._still = StillDecoder.for_model(model)
        self._audio = AudioEmbeddingCache(
            lambda mels: self.model.encode_audio(self._to_model(
                torch.from_numpy(mels).unsqueeze(1))))
        # A still face as the decoder takes it: its face terms (StillDecoder) or, for the
        # int8 model, its encoder features.
        self._still_faces: OrderedDict[str, list[Tensor]] = OrderedDict()
        # Several threads may call one engine (serve's per-lane loops): the cache's
        # look-up-then-reorder must not interleave with another thread's eviction.
        self._face_lock = threading.Lock()

    # -- input conversion -------------------------------------------------------------------
    def _to_model(self, x: Tensor) -> Tensor:
        if self.precision == "bf16":
            x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        return x.to(self.device)

    @staticmethod
    def _check_mels(mels: np.ndarray) -> np.ndarray:
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if mels.ndim != 3 or mels.shape[1:] != (MEL_BANDS, MEL_WINDOW):
            raise BadInputError(f"mels must be (B, {MEL_BANDS}, {MEL_WINDOW}), got {mels.shape}")
        return mels

    @staticmethod
    def _check_faces(faces: np.ndarray) -> None:
        if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE,
                                                                            FACE_SIZE, 3):
            raise BadInputError(f"faces must be uint8 (B, {FACE_SIZE}, {FACE_SIZE}, 3), got "
                                f"{faces.dtype} {faces.shape}")

    # -- inference ---------------------------------------------------------------------------
    @property
    def call_rows(self) -> int:
        """Rows per model call: the batch size, or at most lane_rows when calls run on lanes."""
        return self.batch_size if self.lanes == 1 else min(self.batch_size, self.lane_rows)

    def _run_calls(self, calls: list[Callable[[], Tensor]]) -> list[np.ndarray]:
        """Run model calls (one per slice, in order) on the lanes; faces per call."""
        def run(call: Callable[[], Tensor]) -> np.ndarray:
            with torch.inference_mode():  # thread-local: each lane enters it itself
                return output_to_faces(call())

        with quiet_quantized():
            if self._pool is None or len(calls) == 1:
                return [run(call) for call in calls]
            return list(self._pool.map(run, calls))

    def predict(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """One generated face per (mel window, face) pair; uint8 BGR (B, 96, 96, 3)."""
        faces = np.asarray(faces)
        self._check_faces(faces)
        if len(mels) != len(faces):
            raise BadInputError(f"{len(mels)} mel windows but {len(faces)} faces")
        mels = self._check_mels(mels)
        calls: list[Callable[[], Tensor]] = []
        with torch.inference_mode():
            for start in range(0, len(faces), self.call_rows):
                stop = start + self.call_rows
                chunk = faces[start:stop]
                if (chunk == chunk[0]).all():
                    # One face repeated (a still photo): encode it once. This also makes the
                    # result bit-identical to predict_still, since conv kernels may round
                    # differently at another batch size.
                    calls.append(self._still_call(mels[start:stop], self.still_face(chunk[0])))
                else:
                    with quiet_quantized():
                        features = self.model.encode_face(self._to_model(faces_to_input(chunk)))
                    calls.append(self._call(mels[start:stop], features, self.model.decode))
        return join_faces(self._run_calls(calls))

    def _call(self, mels: np.ndarray, face: list[Tensor],
              decode: Callable[[Tensor, list[Tensor]], Tensor]) -> Callable[[], Tensor]:
        return lambda: decode(self._audio.embed(mels), face)

    def _still_call(self, mels: np.ndarray, face: list[Tensor]) -> Callable[[], Tensor]:
        """A call for a still face as still_face() gives it."""
        return self._call(mels, face, self.model.decode if self._still is None
                          else self._still.decode)

    def still_face(self, face: np.ndarray) -> list[Tensor]:
        """One face as the decoder takes it for a still photo (its face terms, or the int8
        model's encoder features), computed once per distinct face."""
        face = np.ascontiguousarray(face)
        self._check_faces(face[None])
        key = hashlib.sha256(face.tobytes()).hexdigest()
        with self._face_lock:
            cached = self._still_faces.get(key)
            if cached is not None:
                self._still_faces.move_to_end(key)
                return cached
            with torch.inference_mode(), quiet_quantized():
                prepared = self.model.encode_face(self._to_model(faces_to_input(face[None])))
                if self._still is not None:
                    prepared = self._still.face_terms(prepared)
            self._still_faces[key] = prepared
            while len(self._still_faces) > _FACE_CACHE_SIZE:
                self._still_faces.popitem(last=False)
        return prepared

    def predict_still(self, mels: np.ndarray, face: np.ndarray) -> np.ndarray:
        """predict(mels, [face] * B), running the face encoder once for this face."""
        prepared = self.still_face(face)
        mels = self._check_mels(mels)
        calls = [self._still_call(mels[start:start + self.call_rows], prepared)
                 for start in range(0, len(mels), self.call_rows)]
        return join_faces(self._run_calls(calls))

    def predict_groups(self, groups: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Several still faces in shared model batches: [(mels, face)] -> [mouths] per group.

        Each face is prepared once (cached as in predict_still) and repeated for its own rows,
        so frames of different viewers share one decoder pass.
        """
        prepared = [self.still_face(face) for _, face in groups]
        owners = [index for index, (mels, _) in enumerate(groups) for _ in range(len(mels))]
        all_mels = [self._check_mels(mels) for mels, _ in groups]
        mels = np.concatenate(all_mels) if all_mels else np.empty((0, MEL_BANDS, MEL_WINDOW),
                                                                  np.float32)
        calls: list[Callable[[], Tensor]] = []
        with torch.inference_mode():
            for start in range(0, len(owners), self.call_rows):
                chunk = owners[start:start + self.call_rows]
                segments = [(owner, sum(1 for _ in run)) for owner, run in groupby(chunk)]
                if len(segments) == 1:  # one face: broadcast, exactly as predict_still does
                    face = prepared[segments[0][0]]
                else:
                    face = [_same_layout(torch.cat([prepared[owner][level].expand(count, -1, -1, -1)
                                                    for owner, count in segments]),
                                         prepared[0][level])
                            for level in range(len(prepared[0]))]
                calls.append(self._still_call(mels[start:start + len(chunk)], face))
        mouths = join_faces(self._run_calls(calls))
        bounds = np.cumsum([0] + [len(m) for m in all_mels])
        return [mouths[bounds[i]:bounds[i + 1]] for i in range(len(groups))]


def _same_layout(tensor: Tensor, like: Tensor) -> Tensor:
    """`tensor` made contiguous in `like`'s memory format (channels_last in bf16)."""
    channels_last = like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last)
    return tensor.contiguous(memory_format=torch.channels_last if channels_last
                             else torch.contiguous_format)


def _check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInputError("CUDA was asked for but this torch sees no CUDA device",
                                hint="use --device cpu, or install a CUDA build of torch")
        return device
    raise BadInputError(f"unknown device {device!r}", hint="use cpu or cuda")


def plan_lanes(cores: int | None, device: str) -> tuple[int, int | None]:
    """(lanes, intra-op threads per lane) for an engine given `cores` CPU cores; (1, None):
    one call at a time on torch's own thread setting (no cores given, or a GPU)."""
    if cores is None or device != "cpu":
        return 1, None
    cores = max(1, cores)
    lanes = min(cores, MAX_AUTO_LANES)
    return lanes, max(1, cores // lanes)


def load_engine(checkpoint_path: Path | str, precision: str = "auto", device: str = "cpu",
                *, batch_size: int = DEFAULT_BATCH, cores: int | None = None,
                lane_rows: int = LANE_ROWS) -> LipSyncEngine:
    """Read, check and prepare a checkpoint (BatchNorm folded) at the resolved precision.
    `cores`: the CPU cores this engine may use, run as lanes (see the module docstring);
    `lane_rows`: the most rows of one call on a lane (benchmarks vary it)."""
    path = Path(checkpoint_path)
    device = _check_device(device)
    lanes, threads = plan_lanes(cores, device)
    if threads is not None:
        torch.set_num_threads(threads)
    checkpoint = read_checkpoint(path)
    resolved = resolve_precision(precision, device, quantised_file=checkpoint.kind == "int8",
                                 path=path)
    meta: dict[str, Any] = {"layout": checkpoint.layout}
    model: nn.Module
    if checkpoint.kind == "int8":
        assert checkpoint.int8_state is not None
        try:
            model = Int8Wav2Lip(checkpoint.int8_state).eval()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError,
                RuntimeError) as exc:
            # Everything the model is built from here is the file's data: a missing unit, a
            # wrong shape or type is a damaged or edited file, not a bug.
            raise BadInputError(f"not a complete int8 file ({type(exc).__name__}: {exc})",
                                path=path, hint="make it again with `discriminator quantize`"
                                ) from exc
        meta.update(checkpoint.int8_state.get("meta", {}))
    else:
        model = fold_batchnorm(load_wav2lip(path, checkpoint))
        if resolved == "bf16":
            model = to_bf16(model)
        model = model.to(device)
    return LipSyncEngine(model, precision=resolved, device=device, checkpoint_path=path,
                         checkpoint_sha256=file_sha256(path), batch_size=batch_size, meta=meta,
                         lanes=lanes, lane_rows=lane_rows)


def process_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
