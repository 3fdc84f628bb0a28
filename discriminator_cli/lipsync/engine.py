"""The lip-sync engine: one loaded Wav2Lip model, ready to turn mel windows + faces into mouths.

Contract (what the `lipsync` pipeline codes against):

    from discriminator_cli.lipsync.engine import load_engine, LipSyncEngine

    engine = load_engine(checkpoint_path, precision="auto", device="cpu")
        precision: "auto" | "fp32" | "bf16" | "int8".
            "auto" -> "bf16" where the CPU has native bf16 (avx512_bf16 / AMX) or on CUDA,
            else "fp32". "int8" needs a file written by `discriminator quantize` (it stores
            its own calibration); passing an fp32 checkpoint with "int8" is a BadInputError.
            The file type is detected: a quantised file loads as int8 whatever "auto" says.
        device: "cpu" | "cuda".
        Raises BadInputError (bad/truncated/wrong checkpoint, with path and hint) and
        MissingExtraError (torch not installed).

    engine.precision          -> str, the resolved precision ("fp32" | "bf16" | "int8")
    engine.device             -> str, "cpu" or "cuda"
    engine.checkpoint_sha256  -> str, sha256 of the checkpoint file's bytes

    engine.predict(mels, faces) -> np.ndarray
        mels:  (B, 80, 16) float32, one mel window per output frame (audio.mel_windows()).
        faces: (B, 96, 96, 3) uint8 BGR face crops, already resized to 96x96.
        returns (B, 96, 96, 3) uint8 BGR: the generated faces. Does what inference.py does:
        model input = concat([face with rows 48: zeroed, face], channels) / 255, output * 255.
        Any B >= 1; the engine splits large batches internally.

    engine.predict_still(mels, face) -> np.ndarray
        mels: (B, 80, 16) float32; face: (96, 96, 3) uint8 BGR (one photo's crop).
        returns (B, 96, 96, 3) uint8 BGR, equal to predict(mels, repeat(face, B)) but runs the
        face encoder once per distinct face (cached on the engine, keyed by the face bytes).
"""
