"""int8 quantisation: round trip, size, reload without calibration, PSNR refusal, mixed plans
on a trained-like checkpoint, observers, old files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from discriminator_cli.cli.app import main  # noqa: E402
from discriminator_cli.errors import QuantizationRefusedError  # noqa: E402
from discriminator_cli.lipsync import observers as observers_module  # noqa: E402
from discriminator_cli.lipsync.engine import load_engine  # noqa: E402
from discriminator_cli.lipsync.precision import psnr  # noqa: E402
from discriminator_cli.lipsync.quantize import (  # noqa: E402
    calibration_inputs,
    load_face_image,
    quantize_checkpoint,
)
from discriminator_cli.runner import CommandRunner  # noqa: E402
from discriminator_cli.tools import ffmpeg_path, ffprobe_path  # noqa: E402
from tests.wav2lip_weights import (  # noqa: E402
    DATA,
    reference_faces,
    reference_mels,
    write_checkpoint,
    write_trained_like_checkpoint,
)

pytestmark = pytest.mark.lipsync

SPEECH = DATA / "speech_3s_16k.wav"
# Small enough for a test on two cores: 8 windows calibrate, 4 are held out, 1 drives the
# sensitivity and plan search; speed is measured by the benchmark, not here.
FRAMES = {"calibration_frames": 8, "heldout_frames": 4, "search_frames": 1,
          "measure_speed": False}


@pytest.fixture(scope="module")
def bare_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("q") / "wav2lip.pth", official=False)


@pytest.fixture(scope="module")
def face_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96x96 face crop (from the parity data) saved as PNG, as a user would give it."""
    from PIL import Image

    png = tmp_path_factory.mktemp("face") / "face.png"
    Image.fromarray(reference_faces()[0][:, :, ::-1]).save(png)
    return png


@pytest.fixture(scope="module")
def calibration(face_png: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return calibration_inputs(SPEECH, face_png, cache_dir=tmp_path_factory.mktemp("cache"))


def test_face_image_round_trip_and_box(face_png: Path, tmp_path: Path) -> None:
    face = reference_faces()[0]
    assert np.array_equal(load_face_image(face_png), face)
    cropped = load_face_image(face_png, box=(0, 0, 48, 48))
    assert cropped.shape == (96, 96, 3)
    # Upscaled top-left quarter: close to the source pixels it was made from.
    assert np.abs(cropped[::2, ::2].astype(int) - face[:48, :48]).mean() < 12
    # A video (no Pillow decoder) goes through ffmpeg: its first frame.
    video = tmp_path / "face.mp4"
    raw = tmp_path / "face.bgr"
    np.repeat(face[None], 5, axis=0).tofile(raw)
    CommandRunner().run([ffmpeg_path(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                         "bgr24", "-s", "96x96", "-i", str(raw), "-c:v", "libx264", "-qp", "0",
                         "-pix_fmt", "yuv444p", str(video)], what="test video")
    runner = CommandRunner()
    decoded = load_face_image(video, runner=runner)
    assert [Path(argv[0]).name for argv in runner.history] == [Path(ffprobe_path()).name,
                                                               Path(ffmpeg_path()).name]
    assert np.abs(decoded.astype(int) - face).mean() < 3


def test_quantize_round_trip(bare_ckpt: Path, calibration: tuple, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    mels, face, info = calibration
    assert mels.shape == (72, 80, 16) and face.shape == (96, 96, 3)
    out = tmp_path / "wav2lip_int8.pt"
    report = quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=30.0,
                                 calibration_info=info, **FRAMES)
    assert report.written and out.is_file()
    assert report.calibration_frames == 8 and report.heldout_frames == 4
    assert 30.0 <= report.psnr_db < float("inf")
    assert out.stat().st_size < 0.3 * bare_ckpt.stat().st_size
    # A plain-data file: loadable without running pickled code.
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["psnr_db"] == report.psnr_db
    assert saved["meta"]["audio_sha256"] == info["audio_sha256"]

    # Reloading must not calibrate again.
    def no_calibration(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("observe() called on reload")

    monkeypatch.setattr(observers_module, "observe", no_calibration)
    engine = load_engine(out)
    assert engine.precision == "int8" and engine.meta["psnr_db"] == report.psnr_db
    reference = load_engine(bare_ckpt, precision="fp32")
    faces = np.repeat(face[None], 4, axis=0)
    held = mels[1::2][:4]
    int8_out = engine.predict(held, faces)
    assert psnr(reference.predict(held, faces), int8_out) >= 30.0
    assert np.array_equal(engine.predict_still(held, face), int8_out)
    other = engine.predict(reference_mels(), reference_faces())
    assert psnr(reference.predict(reference_mels(), reference_faces()), other) >= 25.0


def test_refused_below_threshold_then_forced(bare_ckpt: Path, calibration: tuple,
                                            tmp_path: Path) -> None:
    mels, face, _info = calibration
    out = tmp_path / "refused.pt"
    with pytest.raises(QuantizationRefusedError) as info:
        quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=99.0, **FRAMES)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert info.value.report.psnr_db < 99.0 and not info.value.report.written
    assert "below the 99 dB threshold" in info.value.one_line()
    # Each option is named with the command that takes it (quantize has no --precision).
    assert "`discriminator lipsync --precision bf16`" in info.value.one_line()
    assert "`discriminator quantize` with --force" in info.value.one_line()
    report = quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=99.0,
                                 force=True, **FRAMES)
    assert report.written and out.is_file()
    assert torch.load(out, weights_only=True)["meta"]["forced"] is True


def test_int8_needs_a_quantised_file(bare_ckpt: Path) -> None:
    from discriminator_cli.errors import BadInputError

    with pytest.raises(BadInputError) as info:
        load_engine(bare_ckpt, precision="int8")
    assert "int8 needs a quantised checkpoint" in info.value.one_line()
    assert "discriminator quantize" in info.value.one_line()


def test_quantize_cli(bare_ckpt: Path, face_png: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.pt"
    base = ["quantize", str(bare_ckpt), "-o", str(out), "--calibration-audio", str(SPEECH),
            "--calibration-face", str(face_png), "--calibration-frames", "6",
            "--cache-dir", str(tmp_path / "cache"), "--no-speed"]
    with pytest.raises(SystemExit) as info:
        main([*base, "--threshold", "99"])
    assert info.value.code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "below the 99 dB threshold" in err and "no face found" not in err
    main([*base, "--threshold", "99", "--force", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["written"] is True and report["forced"] is True
    assert report["heldout_frames"] == 3 and report["output_bytes"] == out.stat().st_size
    assert report["calibration"]["face_sha256"]
    assert sum(len(units) for units in report["plan"].values()) == 50
    assert load_engine(out).precision == "int8"
    # A picture with no face is used whole, and the user is told so.
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(grey)
    grey_args = [*base, "--threshold", "99", "--force"]
    grey_args[grey_args.index(str(face_png))] = str(grey)
    main(grey_args)  # --force: written whatever its PSNR
    assert f"{grey}: no face found; the whole picture is used" in capsys.readouterr().err


def test_calibration_audio_under_a_second_is_refused(face_png: Path, tmp_path: Path) -> None:
    import soundfile

    from discriminator_cli.errors import BadInputError

    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(8000, np.float32), 16000)  # 0.5 s
    with pytest.raises(BadInputError) as info:
        calibration_inputs(short, face_png, cache_dir=tmp_path / "cache")
    line = info.value.one_line()
    assert str(short) in line and "too short to calibrate on: 10 mel window(s), 25 needed" in line
    assert "at least 1 s of speech" in line


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trained_like_checkpoint(tmp_path_factory.mktemp("trained") / "trained.pth",
                                         passes=1)


@pytest.fixture(scope="module")
def astronaut_calibration(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("astronaut")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    return calibration_inputs(SPEECH, folder / "astronaut.png", box=(177, 66, 272, 171),
                              cache_dir=folder / "cache")


def test_trained_like_checkpoint_gets_a_mixed_plan_that_meets_the_threshold(
        trained_like: Path, astronaut_calibration: tuple, tmp_path: Path) -> None:
    """Issue 11: with trained-network activations every-unit int8 falls far below 40 dB (the
    old quantize refused); the mixed plan keeps the threshold with most units in int8."""
    mels, face, info = astronaut_calibration
    out = tmp_path / "trained_int8.pt"
    report = quantize_checkpoint(trained_like, out, mels=mels, face=face, threshold_db=40.0,
                                 calibration_info=info, **FRAMES)
    assert report.written and report.psnr_db >= 40.0
    assert report.all_int8_psnr_db < 35.0  # what a single precision for all units gives
    int8_units, kept = report.plan["int8"], report.plan["fp32"] + report.plan.get("bf16", [])
    assert len(int8_units) >= 3 and len(int8_units) + len(kept) == 50
    assert report.int8_compute_share > 0.2
    saved = torch.load(out, weights_only=True)
    assert saved["format_version"] == 2 and sorted(saved["plan"]) == sorted(int8_units + kept)
    assert saved["meta"]["observer"] == "histogram-mse"
    # What the engine runs is what was measured: held-out PSNR recomputed through it.
    engine, reference = load_engine(out), load_engine(trained_like, precision="fp32")
    held = mels[1::2][:8]
    assert engine.precision == "int8"
    assert psnr(reference.predict_still(held, face), engine.predict_still(held, face)) >= 38.0
    # The int8 units are the heavy-compute, light-weight ones: the file shrinks only a little.
    assert out.stat().st_size < trained_like.stat().st_size


def _old_format_file(checkpoint: Path, path: Path, mels: np.ndarray, face: np.ndarray) -> Path:
    """A file as quantize wrote it before plans (format 1): every unit int8, min/max scales."""
    from torch import nn

    from discriminator_cli.lipsync.checkpoint import load_wav2lip, read_checkpoint
    from discriminator_cli.lipsync.engine import faces_to_input
    from discriminator_cli.lipsync.model import ConvUnit
    from discriminator_cli.lipsync.precision import fold_batchnorm

    model = fold_batchnorm(load_wav2lip(checkpoint, read_checkpoint(checkpoint))).eval()
    ranges: dict[str, list[float]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, ConvUnit):
            ranges[name] = [0.0, 0.0]
            hooks.append(module.conv_block.register_forward_hook(
                lambda _m, _i, out, r=ranges[name]: r.__setitem__(
                    0, max(r[0], float(out.abs().max())))))
            hooks.append(module.register_forward_hook(
                lambda _m, _i, out, r=ranges[name]: r.__setitem__(1, max(r[1], float(out.max())))))
    with torch.no_grad():
        model(torch.from_numpy(mels).unsqueeze(1),
              faces_to_input(face[None]).expand(len(mels), -1, -1, -1))
    for hook in hooks:
        hook.remove()
    units = {}
    for name, (conv_absmax, out_max) in ranges.items():
        conv = dict(model.named_modules())[name].conv_block[0]
        weight = conv.weight.detach()
        if isinstance(conv, nn.ConvTranspose2d):
            scale = (weight.abs().max() / 127.0).clamp_min(1e-12).reshape(1)
            qweight = torch.round(weight / scale).clamp(-127, 127)
        else:
            scale = (weight.abs().amax(dim=(1, 2, 3)) / 127.0).clamp_min(1e-12)
            qweight = torch.round(weight / scale.reshape(-1, 1, 1, 1)).clamp(-127, 127)
        units[name] = {"weight_int8": qweight.to(torch.int8), "weight_scale": scale,
                       "bias": conv.bias.detach().clone(),
                       "conv_scale": max(conv_absmax, 1e-8) / 127.0,
                       "out_scale": max(out_max, 1e-8) / 255.0}
    head = model.output_block[1]
    torch.save({"format": "discriminator-wav2lip-int8", "format_version": 1, "units": units,
                "head": {"weight": head.weight.detach().clone(),
                         "bias": head.bias.detach().clone()},
                "meta": {"psnr_db": 36.0, "source_name": checkpoint.name}}, path)
    return path


def test_old_format_files_still_load_and_run(bare_ckpt: Path, calibration: tuple,
                                             tmp_path: Path) -> None:
    mels, face, _info = calibration
    old = _old_format_file(bare_ckpt, tmp_path / "old_int8.pt", mels[0::2][:8], face)
    engine = load_engine(old)
    assert engine.precision == "int8" and engine.meta["psnr_db"] == 36.0
    assert set(engine.model.plan.values()) == {"int8"}
    reference = load_engine(bare_ckpt, precision="fp32")
    held = mels[1::2][:4]
    assert psnr(reference.predict_still(held, face), engine.predict_still(held, face)) >= 30.0


def test_mixed_plans_load_in_any_combination(bare_ckpt: Path, calibration: tuple,
                                            tmp_path: Path) -> None:
    """int8 / bf16 / fp32 neighbours in every hand-over (encoder, decoder concat, head)."""
    from discriminator_cli.lipsync.checkpoint import load_wav2lip, read_checkpoint
    from discriminator_cli.lipsync.engine import faces_to_input
    from discriminator_cli.lipsync.int8 import export_state, unit_names
    from discriminator_cli.lipsync.precision import fold_batchnorm

    mels, face, _info = calibration
    model = fold_batchnorm(load_wav2lip(bare_ckpt, read_checkpoint(bare_ckpt))).eval()
    scales = observers_module.observe(model, torch.from_numpy(mels[0::2][:4]).unsqueeze(1),
                                      faces_to_input(face[None]).expand(4, -1, -1, -1))
    names = unit_names(model)
    cycle = ("int8", "bf16", "fp32")
    plan = {name: cycle[index % 3] for index, name in enumerate(names)}
    out = tmp_path / "mixed.pt"
    torch.save(export_state(model, scales, {"psnr_db": 40.0}, plan), out)
    engine = load_engine(out)
    assert engine.model.plan == plan
    held = mels[1::2][:4]
    still = engine.predict_still(held, face)
    assert np.array_equal(engine.predict(held, np.repeat(face[None], 4, axis=0)), still)
    reference = load_engine(bare_ckpt, precision="fp32").predict_still(held, face)
    assert psnr(reference, still) >= 30.0


def test_an_edited_or_damaged_int8_file_is_bad_input(bare_ckpt: Path, calibration: tuple,
                                                     tmp_path: Path) -> None:
    from discriminator_cli.errors import BadInputError

    mels, face, _info = calibration
    out = tmp_path / "int8.pt"
    quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=0.0, **FRAMES)
    state = torch.load(out, weights_only=True)
    first = next(iter(state["plan"]))
    edits = {
        "a unit left out of the plan": lambda s: s["plan"].pop(first),
        "a unit's weights gone": lambda s: s["units"].pop(first),
        "a weight of the wrong shape": lambda s: s["units"][first].update(
            weight_int8=s["units"][first]["weight_int8"][:1]),
    }
    for what, edit in edits.items():
        edited = torch.load(out, weights_only=True)
        edit(edited)
        path = tmp_path / f"{len(what)}.pt"
        torch.save(edited, path)
        with pytest.raises(BadInputError) as info:
            load_engine(path)
        line = info.value.one_line()
        assert str(path) in line and "not a complete int8 file" in line, what
        assert "discriminator quantize" in line


def test_mse_observer_clips_outliers_and_lowers_the_error() -> None:
    rng = np.random.default_rng(3)
    # A bulk around zero and a wide tail, like a trained network's post-BatchNorm channels.
    values = np.abs(np.concatenate([rng.normal(0.0, 1.0, 400_000),
                                    rng.laplace(0.0, 6.0, 2_000)])).astype(np.float32)
    observer = observers_module.TensorObserver()
    tensor = torch.from_numpy(values)
    observer.see_range(tensor)
    observer.see_values(tensor)
    clip = observer.mse_range(255.0)

    def error(limit: float) -> float:
        step = limit / 255.0
        quantised = np.clip(np.round(values / step), 0, 255) * step
        return float(np.mean((quantised - values) ** 2))

    best = min(error(limit) for limit in np.linspace(0.5, observer.maximum, 300))
    assert clip < 0.9 * observer.maximum
    assert error(clip) <= 1.01 * best and error(clip) < 0.85 * error(observer.maximum)


def test_progress_reports_each_phase_and_bf16_that_misses_falls_back_to_fp32(
        bare_ckpt: Path, calibration: tuple, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from discriminator_cli.lipsync import quantize as quantize_module

    monkeypatch.setattr(quantize_module, "cpu_has_native_bf16", lambda: True)
    mels, face, _info = calibration
    seen: list[tuple[str, float]] = []
    finished: list[int] = []

    class Recorder:
        def start(self, label: str, total: float, unit: str = "s") -> int:
            seen.append((label, total))
            return len(seen) - 1

        def update(self, task: int, completed: float) -> None:
            assert 0 < completed <= seen[task][1]

        def finish(self, task: int) -> None:
            finished.append(task)

    # 99 dB: every-unit int8 misses it, so all phases run (then --force writes all-int8).
    report = quantize_checkpoint(bare_ckpt, tmp_path / "p.pt", mels=mels, face=face,
                                 threshold_db=99.0, force=True, progress=Recorder(), **FRAMES)
    # bf16 alone is far from 99 dB: the units that stay float would be fp32.
    assert set(report.plan) == {"int8", "fp32"}
    assert torch.load(tmp_path / "p.pt", weights_only=True)["meta"]["fallback"] == "fp32"
    labels = [label for label, _ in seen]
    assert labels[0].startswith("calibrating int8") and seen[0][1] == 16  # 8 windows x 2
    assert ("int8 sensitivity (layers)", 50) in seen
    assert any(label.startswith("int8 plan search") for label in labels)
    assert sorted(finished) == list(range(len(seen)))
