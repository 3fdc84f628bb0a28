"""Two-pass EBU R128 loudness: the packaged audio measures within 1 LU of the target and below
the true-peak ceiling (ffmpeg's ebur128, run here), before/after in --json."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.editors_media import ebur128, encode_json, run_cli, tiny_source


@pytest.fixture(scope="module")
def quiet_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_source(tmp_path_factory.mktemp("loud") / "quiet.mov", volume_db=-30.0)


@pytest.fixture(scope="module")
def hot_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pink noise (true peak ~9.4 dB above its loudness): -12 LUFS with one gain would cross a
    -3 dBTP ceiling, so loudnorm must go dynamic (and AAC overshoots its limiter)."""
    return tiny_source(tmp_path_factory.mktemp("loud") / "hot.mov", volume_db=-12.0,
                       audio="anoisesrc=color=pink:amplitude=0.5:seed=7")


def test_packaged_audio_meets_target_and_ceiling(quiet_source: Path, tmp_path: Path) -> None:
    target, ceiling = -23.0, -2.0
    out = tmp_path / "pkg"
    result = encode_json(str(quiet_source), "--preset", "small", "-o", str(out),
                         "--loudness", str(target), "--true-peak", str(ceiling))
    loudness, peak = ebur128(out / "audio_eng.mp4")
    assert abs(loudness - target) <= 1.0
    assert peak < ceiling
    (report,) = result["loudness"]
    assert report["language"] == "eng" and report["mode"] == "linear"
    assert report["before_lufs"] == pytest.approx(ebur128(quiet_source)[0], abs=0.3)
    assert report["after_lufs"] == pytest.approx(loudness, abs=0.2)
    assert report["after_true_peak"] == pytest.approx(peak, abs=0.3)
    # A second run hits the cache and still reports what was measured.
    again = encode_json(str(quiet_source), "--preset", "small", "-o", str(out), "--force",
                        "--loudness", str(target), "--true-peak", str(ceiling))
    assert again["loudness"] == result["loudness"]
    assert all(r["cached"] for r in again["rungs"])


def test_peak_limited_track_goes_dynamic_and_stays_under_ceiling(hot_source: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    result = encode_json(str(hot_source), "--preset", "small", "-o", str(out),
                         "--loudness", "-12", "--true-peak", "-3")
    assert result["loudness"][0]["mode"] == "dynamic"
    loudness, peak = ebur128(out / "audio_eng.mp4")
    # Dynamic mode is loudnorm's limiter, and AAC overshoots it: the ceiling holds (a second
    # audio-only pass adds the headroom the codec needed) at some cost in loudness.
    assert peak < -3.0 and abs(loudness - -12) <= 1.5


@pytest.mark.parametrize("args,message", [
    (["--loudness", "3"], "--loudness 3 is outside -70..-5"),
    (["--true-peak", "-1"], "--true-peak needs a loudness target"),
])
def test_bad_loudness_options_are_one_line_errors(quiet_source: Path, tmp_path: Path,
                                                  args: list[str], message: str) -> None:
    done = run_cli("encode", str(quiet_source), "--preset", "small", "-o",
                   str(tmp_path / "pkg"), *args)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "pkg").exists()


def test_dry_run_prints_both_loudnorm_passes(quiet_source: Path, tmp_path: Path) -> None:
    done = run_cli("encode", str(quiet_source), "--preset", "small", "-o",
                   str(tmp_path / "pkg"), "--loudness", "-20", "--cache-dir",
                   str(tmp_path / "cache"), "--dry-run")
    assert done.returncode == 0, done.stderr
    apply = next(x for x in done.stdout.splitlines() if "measured_I=" in x)
    assert "linear=true" in apply and "I=-20" in apply
    assert not (tmp_path / "pkg").exists() and not (tmp_path / "cache").exists()
