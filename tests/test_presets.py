from __future__ import annotations

from pathlib import Path

import pytest

from discriminator_cli.encode.presets import available_presets, load_preset, parse_bitrate
from discriminator_cli.errors import PresetError

DOC = load_preset("documentary")


def test_documentary_preset_is_the_original_ladder() -> None:
    assert [(r.width, r.height, r.bitrate, r.bufsize) for r in DOC.rungs] == [
        (1920, 1080, 8_000_000, 16_000_000), (1280, 720, 5_000_000, 10_000_000),
        (768, 432, 2_500_000, 5_000_000)]
    v = DOC.video
    assert (v.encoder, v.profile, v.level, v.pix_fmt, v.gop_frames, v.scenecut, v.nal_hrd,
            v.two_pass) == ("libx264", "high", "4.2", "yuv420p", 48, False, "cbr", True)
    assert DOC.audio.language == "eng" and DOC.packaging.gops_per_segment == 1


def test_bundled_presets_listed() -> None:
    assert {"documentary", "small"} <= set(available_presets())


@pytest.mark.parametrize("text,value", [("8M", 8_000_000), ("2.5M", 2_500_000),
                                        ("128k", 128_000), (5000, 5000)])
def test_parse_bitrate(text: str | int, value: int) -> None:
    assert parse_bitrate(text) == value


def _preset_text(**replace: str) -> str:
    from discriminator_cli.encode.presets import preset_text

    text = preset_text("small")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("old,new,expected", [
    ('x264_preset = "veryfast"', 'x264_preset = "turbo"', "'video.x264_preset' is 'turbo'; "
     "allowed values: ultrafast"),
    ('profile = "high"', 'profile = "high"\ncolour = "red"', "'video.colour' is not a known key"),
    ('bitrate = "800k"', 'bitrate = "lots"', "'rungs[0].bitrate' is 'lots'"),
    ("gop_frames = 48", 'gop_frames = "48"', "'video.gop_frames' must be an integer"),
    ("width = 640", "width = 641", "must be even"),
    ('language = "eng"', 'language = "english"', "ISO 639-2"),
])
def test_invalid_preset_names_file_key_and_allowed_values(tmp_path: Path, old: str, new: str,
                                                          expected: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(_preset_text(**{old: new}))
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    message = info.value.one_line()
    assert str(path) in message and expected in message


def test_malformed_toml_and_unknown_preset(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[video\n")
    with pytest.raises(PresetError, match="not valid TOML"):
        load_preset(str(path))
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        load_preset("nope")


def test_user_preset_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    folder = tmp_path / "discriminator" / "presets"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text(_preset_text(**{'name = "360p"': 'name = "big"'}))
    assert "mine" in available_presets()
    assert load_preset("mine").rungs[0].name == "big"
