"""encode's behaviour: cache, dry run, interruption, audio tracks, ladder planning, batches."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from discriminator_cli.encode import EncodeOptions, encode_source
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.errors import OutputExistsError, ValidationFailedError
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path
from tests.helpers import keyframe_indices, video_stream

TINY = load_preset(str(Path(__file__).parent / "data" / "tiny.toml"))
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("src") / "tiny.mp4", seconds=4, width=320,
                           height=180)


def _options(out: Path, cache: Path, **kwargs: object) -> EncodeOptions:
    return EncodeOptions(preset=kwargs.pop("preset", TINY), out_dir=out, cache_dir=cache,
                         validate=False, **kwargs)  # type: ignore[arg-type]


def _ffmpeg_runs(runner: CommandRunner) -> list[list[str]]:
    """The encodes this runner ran (capability and version probes and the poster's one-frame
    grab left out)."""
    probes = {"-encoders", "-filters", "-version"}
    return [argv for argv in runner.history
            if argv[0] == ffmpeg_path() and not probes.intersection(argv)
            and not any(a.endswith("poster.jpg") for a in argv)]


def test_cache_hit_does_no_ffmpeg_run_and_one_rung_change_reencodes_one(
        tiny_source: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = CommandRunner()
    result = encode_source(tiny_source, _options(tmp_path / "a", cache), runner=first)
    assert [r.cached for r in result.rungs] == [False, False]
    assert len(_ffmpeg_runs(first)) == 2  # pass 1 and pass 2, both rungs in each

    again = CommandRunner()
    result = encode_source(tiny_source, _options(tmp_path / "b", cache), runner=again)
    assert [r.cached for r in result.rungs] == [True, True]
    assert _ffmpeg_runs(again) == []
    assert (tmp_path / "b" / "stream.mpd").is_file()

    changed = replace(TINY, rungs=(TINY.rungs[0], replace(TINY.rungs[1], bitrate=120_000)))
    third = CommandRunner()
    result = encode_source(tiny_source, _options(tmp_path / "c", cache, preset=changed),
                           runner=third)
    assert [r.cached for r in result.rungs] == [True, False]
    runs = _ffmpeg_runs(third)
    assert len(runs) == 2
    for argv in runs:
        assert "150000" not in argv and "120000" in argv and "400000" not in argv


def test_dry_run_prints_every_argv_and_creates_nothing(tiny_source: Path, tmp_path: Path) -> None:
    printed: list[str] = []
    runner = CommandRunner(dry_run=True, echo=printed.append)
    out = tmp_path / "media" / "tiny"
    encode_source(tiny_source, _options(out, tmp_path / "cache"), runner=runner)
    assert not out.exists() and not (tmp_path / "media").exists()
    assert len(printed) == 4 and printed[3].endswith("poster.jpg -hide_banner -nostdin "
                                                     "-loglevel error -y")
    assert "-pass 1" in printed[0] and "split=2" in printed[0]
    assert "-pass 2" in printed[1] and "-c:a aac" in printed[1]
    assert "keyint=48:min-keyint=48:scenecut=-1:nal-hrd=cbr" in printed[1]
    assert "--mpd_output stream.mpd" in printed[2]
    assert printed[3].endswith("poster.jpg -hide_banner -nostdin -loglevel error -y")
    assert not list((tmp_path / "cache").glob("rungs/*.mp4"))


class _InterruptingProgress:
    def __init__(self, at_label: str) -> None:
        self.at_label = at_label
        self.labels: list[str] = []

    def start(self, label: str, total: float, unit: str = "s") -> int:
        self.labels.append(label)
        return len(self.labels) - 1

    def update(self, task: int, completed: float) -> None:
        if self.at_label in self.labels[task] and completed > 0:
            raise KeyboardInterrupt

    def finish(self, task: int) -> None:
        if self.at_label in self.labels[task]:
            raise KeyboardInterrupt


@pytest.mark.parametrize("stage", ["pass 2", "package"])
def test_interrupt_leaves_nothing_published(tiny_source: Path, tmp_path: Path,
                                            stage: str) -> None:
    media = tmp_path / "media"
    with pytest.raises(KeyboardInterrupt):
        encode_source(tiny_source, _options(media / "tiny", tmp_path / "cache"),
                      progress=_InterruptingProgress(stage))
    assert not media.exists() or list(media.iterdir()) == []
    leftovers = list((tmp_path / "cache").rglob("*.tmp")) + \
        list((tmp_path / "cache" / "work").iterdir())
    assert leftovers == []


def test_existing_output_needs_force(tiny_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    with pytest.raises(OutputExistsError):
        encode_source(tiny_source, _options(out, tmp_path / "cache"))
    assert (out / "old.txt").read_text() == "keep"
    # Not a package: --force will not delete it either.
    with pytest.raises(OutputExistsError, match="replaces only a package"):
        encode_source(tiny_source, _options(out, tmp_path / "cache", force=True))
    assert (out / "old.txt").read_text() == "keep"
    (out / "stream.mpd").write_text("an earlier package's manifest")
    encode_source(tiny_source, _options(out, tmp_path / "cache", force=True))
    assert not (out / "old.txt").exists() and (out / "stream.mpd").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")] == []


def test_extra_audio_language_becomes_second_adaptation_set(tiny_source: Path,
                                                            tmp_path: Path) -> None:
    french = tmp_path / "fr.wav"
    from discriminator_cli.runner import CommandRunner as Runner

    Runner().run([ffmpeg_path(), "-v", "error", "-f", "lavfi", "-i",
                  "sine=frequency=660:duration=4", str(french)], what="make wav")
    out = tmp_path / "pkg"
    result = encode_source(tiny_source, _options(out, tmp_path / "cache", language="eng",
                                                 extra_audio=[("fra", french)]))
    assert result.audio_languages == ["eng", "fra"]
    mpd = etree.parse(str(out / "stream.mpd"))
    langs = sorted(mpd.xpath("//d:AdaptationSet/@lang", namespaces=NS))
    assert langs == ["en", "fr"]
    master = (out / "master.m3u8").read_text()
    assert 'LANGUAGE="fr"' in master and 'NAME="French"' in master and 'LANGUAGE="en"' in master


def test_no_audio_gives_video_only_package_and_says_so(tmp_path: Path) -> None:
    silent = generate_sample(tmp_path / "silent.mp4", seconds=2, width=320, height=180,
                             audio=False)
    result = encode_source(silent, _options(tmp_path / "pkg", tmp_path / "cache"))
    assert result.audio_languages == []
    assert any("video-only" in w for w in result.warnings)
    assert "mp4a" not in (tmp_path / "pkg" / "stream.mpd").read_text()


def test_ladder_never_upscales(tmp_path: Path) -> None:
    small = generate_sample(tmp_path / "small.mp4", seconds=2, width=240, height=136)
    result = encode_source(small, _options(tmp_path / "pkg", tmp_path / "cache"))
    sizes = [(r.width, r.height) for r in result.rungs]
    # 320x180 is clamped to the source; 160x90 keeps the 240:136 aspect ratio inside its box.
    assert sizes == [(240, 136), (158, 90)]
    assert any("clamped" in w for w in result.warnings)


def test_odd_rotated_and_variable_rate_sources_are_normalised(tmp_path: Path) -> None:
    ffmpeg = ffmpeg_path()
    runner = CommandRunner()
    odd = tmp_path / "odd.mp4"
    runner.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                "testsrc2=size=320x180:rate=25:duration=2", "-vf", "scale=321:181", "-c:v",
                "libx264", "-pix_fmt", "yuv444p", str(odd)], what="odd")
    result = encode_source(odd, _options(tmp_path / "odd-pkg", tmp_path / "cache"))
    assert any("odd dimensions" in w for w in result.warnings)
    assert (result.rungs[0].width, result.rungs[0].height) == (320, 180)

    landscape = tmp_path / "landscape.mp4"
    runner.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                "testsrc2=size=320x180:rate=25:duration=2", "-c:v", "libx264", str(landscape)],
               what="landscape")
    rotated = tmp_path / "phone.mp4"  # a display matrix, as phones write it
    runner.run([ffmpeg, "-v", "error", "-display_rotation", "90", "-i", str(landscape),
                "-c", "copy", str(rotated)], what="rotate")
    result = encode_source(rotated, _options(tmp_path / "rot-pkg", tmp_path / "cache"))
    assert result.source.rotation in (90, 270)
    assert any("rotated" in w for w in result.warnings)
    media = next((tmp_path / "rot-pkg").glob("video_90p*.mp4"))
    stream = video_stream(media)
    assert (stream["width"], stream["height"]) == (50, 90)  # upright 9:16 in the 160x90 box

    vfr = tmp_path / "vfr.mp4"  # 30 fps for 2 s, then 20 fps
    runner.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                "testsrc2=size=320x180:rate=30:duration=4", "-vf",
                "setpts='if(lt(N,60),N/30/TB,(60/30+(N-60)/20)/TB)'", "-fps_mode", "vfr",
                "-c:v", "libx264", str(vfr)], what="vfr")
    result = encode_source(vfr, _options(tmp_path / "vfr-pkg", tmp_path / "cache"))
    assert result.source.variable_frame_rate
    assert any("variable frame rate" in w for w in result.warnings)
    media = next((tmp_path / "vfr-pkg").glob("video_180p*.mp4"))
    keys, count = keyframe_indices(media)
    assert keys == list(range(0, count, 48))


def test_concurrent_encodes_of_one_source_share_the_cache(tiny_source: Path,
                                                          tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runners = [CommandRunner(), CommandRunner()]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            encode_source(tiny_source, _options(tmp_path / f"out{index}", cache),
                          runner=runners[index])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The lock makes one encode and the other wait and hit the cache.
    assert sorted(len(_ffmpeg_runs(r)) for r in runners) == [0, 2]
    for index in range(2):
        media = next((tmp_path / f"out{index}").glob("video_180p*.mp4"))
        keys, count = keyframe_indices(media)
        assert count == 100 and keys == [0, 48, 96]


def test_quality_adds_psnr_and_ssim_per_rung(tiny_source: Path, tmp_path: Path) -> None:
    result = encode_source(tiny_source, _options(tmp_path / "pkg", tmp_path / "cache",
                                                 quality=True))
    for rung in result.rungs:
        assert rung.quality is not None
        assert 20 < rung.quality["psnr"] < 80 and 0.5 < rung.quality["ssim"] <= 1.0


def test_package_failing_validation_is_not_published(tiny_source: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """encode validates the staged package; a broken one never reaches media/."""
    import discriminator_cli.encode.job as encode_module

    real_package = encode_module.package

    def package_then_truncate(backend, inputs, out_dir, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_package(backend, inputs, out_dir, *args, **kwargs)
        media = out_dir / "video_180p.mp4"
        media.write_bytes(media.read_bytes()[: media.stat().st_size // 2])

    monkeypatch.setattr(encode_module, "package", package_then_truncate)
    out = tmp_path / "media" / "tiny"
    options = EncodeOptions(preset=TINY, out_dir=out, cache_dir=tmp_path / "cache")
    with pytest.raises(ValidationFailedError) as info:
        encode_source(tiny_source, options)
    assert "failed validation" in info.value.one_line()
    assert not out.exists() and list((tmp_path / "media").iterdir()) == []
    monkeypatch.setattr(encode_module, "package", real_package)
    result = encode_source(tiny_source, options)  # the cached rungs make a valid package
    assert result.validation is not None and result.validation["errors"] == 0
