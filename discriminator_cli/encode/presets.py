"""Encoding presets: TOML data files, validated on load.

Errors name the file, the key and the allowed values. Bundled presets live in the top-level
`presets/` folder (installed as the `discriminator_cli.preset_files` package data); users add their
own in `$XDG_CONFIG_HOME/discriminator/presets/` or pass a path.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from discriminator_cli.errors import PresetError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
H264_PROFILES = ("baseline", "main", "high")
H264_LEVELS = ("3.0", "3.1", "3.2", "4.0", "4.1", "4.2", "5.0", "5.1", "5.2")
NAL_HRD = ("none", "vbr", "cbr")
VIDEO_ENCODERS = ("libx264", "libvpx-vp9")
VP9 = "libvpx-vp9"
# yuva420p: libvpx encodes the alpha plane as a second VP9 stream (WebM BlockAdditional).
PIX_FMTS = {"libx264": ("yuv420p",), VP9: ("yuva420p",)}
X264_ONLY_KEYS = ("x264_preset", "profile", "level", "scenecut", "nal_hrd")
VP9_DEADLINES = ("good", "best")
LOUDNESS_RANGE = (-70.0, -5.0)      # LUFS loudnorm accepts
TRUE_PEAK_RANGE = (-9.0, 0.0)       # dBTP loudnorm accepts
AUDIO_ENCODERS = ("aac",)
AUDIO_SAMPLE_RATES = (22050, 32000, 44100, 48000)
_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_LANGUAGE = re.compile(r"^[a-z]{3}$")
DEFAULT_POSTER_SECONDS = 5.0
_RUNG_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_bitrate(text: str | int) -> int:
    """'8M' -> 8_000_000, '128k' -> 128_000, 5000000 -> 5000000 (bits per second)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _BITRATE.match(str(text).strip())
    if not match:
        raise ValueError(text)
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return round(float(match.group(1)) * scale)


@dataclass(frozen=True)
class VideoSettings:
    """The video encoder's settings. x264_preset, profile and level are empty and nal_hrd is
    'none' for libvpx-vp9 (its knobs are in Vp9Settings)."""

    encoder: str
    x264_preset: str
    profile: str
    level: str
    pix_fmt: str
    gop_frames: int
    scenecut: bool
    nal_hrd: str
    two_pass: bool


@dataclass(frozen=True)
class Vp9Settings:
    """The overlay presets' VP9 knobs (the [vp9] table)."""

    deadline: str           # libvpx quality/speed mode: good or best
    cpu_used: int           # 0 (slowest, best) .. 5 (fastest) within the deadline
    image_frame_rate: int   # frames per second of a PNG sequence (images carry no timing)


@dataclass(frozen=True)
class LoudnessSettings:
    """EBU R128 delivery loudness: integrated target and true-peak ceiling."""

    target_lufs: float
    true_peak_db: float
    loudness_range: float = 11.0


@dataclass(frozen=True)
class PosterSettings:
    time_seconds: float             # clamped to the source's last frame


@dataclass(frozen=True)
class AudioSettings:
    encoder: str
    bitrate: int
    channels: int
    sample_rate: int
    language: str


@dataclass(frozen=True)
class PackagingSettings:
    gops_per_segment: int


@dataclass(frozen=True)
class RungSpec:
    name: str
    width: int
    height: int
    bitrate: int
    bufsize: int


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    description: str
    video: VideoSettings
    audio: AudioSettings
    packaging: PackagingSettings
    rungs: tuple[RungSpec, ...]
    poster: PosterSettings = PosterSettings(time_seconds=DEFAULT_POSTER_SECONDS)
    loudness: LoudnessSettings | None = None
    vp9: Vp9Settings | None = None     # set exactly when video.encoder is libvpx-vp9

    @property
    def is_overlay(self) -> bool:
        """VP9 with alpha to a WebM DASH package (encode/overlay.py), not the x264 ladder."""
        return self.video.encoder == VP9

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Checker:
    """Reads one table, recording the file and key path for every error it raises."""

    def __init__(self, source: str, table: dict[str, Any], where: str):
        self.source, self.table, self.where = source, table, where
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> PresetError:
        dotted = f"{self.where}.{key}" if self.where else key
        return PresetError(f"key '{dotted}' {problem}", path=self.source,
                           hint="fix the preset file (see `discriminator presets show "
                                "documentary`)")

    def get(self, key: str, kind: type | tuple[type, ...], *, default: Any = ...,
            choices: tuple[Any, ...] | None = None) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(key, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.fail(key, f"must be {_kind_name(kind)}, got {value!r}")
        if choices is not None and value not in choices:
            allowed = ", ".join(str(c) for c in choices)
            raise self.fail(key, f"is {value!r}; allowed values: {allowed}")
        return value

    def positive_int(self, key: str, *, default: Any = ..., upper: int = 100_000) -> int:
        value = self.get(key, int, default=default)
        if not 1 <= value <= upper:
            raise self.fail(key, f"must be between 1 and {upper}, got {value}")
        return value

    def number(self, key: str, *, default: Any = ..., bounds: tuple[float, float]) -> float:
        value = self.get(key, (int, float), default=default)
        low, high = bounds
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low:g} and {high:g}, got {value}")
        return float(value)

    def bitrate(self, key: str, *, default: Any = ...) -> int:
        raw = self.get(key, (str, int), default=default)
        try:
            value = parse_bitrate(raw)
        except ValueError:
            raise self.fail(key, f"is {raw!r}; use bits/s like '8M', '2.5M' or '128k'") from None
        if value < 16_000:
            raise self.fail(key, f"is {raw!r}; at least 16k")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise self.fail(unknown[0], f"is not a known key; allowed keys: {allowed}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_preset(data: dict[str, Any], *, name: str, source: str) -> Preset:
    top = _Checker(source, data, "")
    description = top.get("description", str, default="")
    tables = {}
    for key in ("video", "audio", "packaging", "poster"):
        tables[key] = _Checker(source, top.get(key, dict, default={}), key)
    raw_loudness = top.get("loudness", dict, default=None)
    raw_vp9 = top.get("vp9", dict, default=None)
    raw_rungs = top.get("rungs", list)
    top.finish()

    video = _video_settings(tables["video"])
    vp9 = _vp9_settings(top, video, raw_vp9, raw_loudness, tables["audio"].table)
    a = tables["audio"]
    audio = AudioSettings(
        encoder=a.get("encoder", str, default="aac", choices=AUDIO_ENCODERS),
        bitrate=a.bitrate("bitrate", default="128k"),
        channels=a.get("channels", int, default=2, choices=(1, 2)),
        sample_rate=a.get("sample_rate", int, default=48000, choices=AUDIO_SAMPLE_RATES),
        language=a.get("language", str, default="eng"),
    )
    if not _LANGUAGE.match(audio.language):
        raise a.fail("language", f"is {audio.language!r}; use an ISO 639-2 code such as "
                                 "'eng', 'fra', 'deu'")
    a.finish()
    p = tables["packaging"]
    packaging = PackagingSettings(gops_per_segment=p.positive_int("gops_per_segment", default=1,
                                                                  upper=10))
    p.finish()
    poster_table = tables["poster"]
    poster = PosterSettings(time_seconds=poster_table.number(
        "time_seconds", default=DEFAULT_POSTER_SECONDS, bounds=(0.0, 86_400.0)))
    poster_table.finish()
    loudness = None
    if raw_loudness is not None:
        lt = _Checker(source, raw_loudness, "loudness")
        loudness = LoudnessSettings(
            target_lufs=lt.number("target_lufs", bounds=LOUDNESS_RANGE),
            true_peak_db=lt.number("true_peak_db", default=-1.0, bounds=TRUE_PEAK_RANGE),
            loudness_range=lt.number("loudness_range", default=11.0, bounds=(1.0, 50.0)))
        lt.finish()

    if not raw_rungs:
        raise top.fail("rungs", "must list at least one rung")
    rungs = []
    for index, raw in enumerate(raw_rungs):
        if not isinstance(raw, dict):
            raise top.fail(f"rungs[{index}]", "must be a table ([[rungs]])")
        r = _Checker(source, raw, f"rungs[{index}]")
        rung = RungSpec(name=r.get("name", str), width=r.positive_int("width", upper=8192),
                        height=r.positive_int("height", upper=8192),
                        bitrate=r.bitrate("bitrate"), bufsize=r.bitrate("bufsize"))
        r.finish()
        if not _RUNG_NAME.match(rung.name):
            raise r.fail("name", f"is {rung.name!r}; use letters, digits, '-' and '_'")
        if rung.width % 2 or rung.height % 2:
            raise r.fail("width", f"{rung.width}x{rung.height} must be even for "
                                  f"{video.pix_fmt}")
        rungs.append(rung)
    names = [r.name for r in rungs]
    if len(set(names)) != len(names):
        raise top.fail("rungs", f"names must be unique, got {names}")
    return Preset(name=name, source=source, description=description, video=video, audio=audio,
                  packaging=packaging, rungs=tuple(rungs), poster=poster, loudness=loudness,
                  vp9=vp9)


def _video_settings(v: _Checker) -> VideoSettings:
    encoder = v.get("encoder", str, default="libx264", choices=VIDEO_ENCODERS)
    pix_fmts = PIX_FMTS[encoder]
    if encoder == VP9:
        for key in X264_ONLY_KEYS:
            if key in v.table:
                raise v.fail(key, "is an x264 setting; a libvpx-vp9 preset sets deadline and "
                                  "cpu_used in its [vp9] table")
        video = VideoSettings(encoder=encoder, x264_preset="", profile="", level="",
                              pix_fmt=v.get("pix_fmt", str, default=pix_fmts[0],
                                            choices=pix_fmts),
                              gop_frames=v.positive_int("gop_frames", upper=600),
                              scenecut=False, nal_hrd="none",
                              two_pass=v.get("two_pass", bool, default=True))
        v.finish()
        return video
    video = VideoSettings(
        encoder=encoder,
        x264_preset=v.get("x264_preset", str, default="medium", choices=X264_PRESETS),
        profile=v.get("profile", str, default="high", choices=H264_PROFILES),
        level=v.get("level", str, default="4.2", choices=H264_LEVELS),
        pix_fmt=v.get("pix_fmt", str, default=pix_fmts[0], choices=pix_fmts),
        gop_frames=v.positive_int("gop_frames", upper=600),
        scenecut=v.get("scenecut", bool, default=False),
        nal_hrd=v.get("nal_hrd", str, default="cbr", choices=NAL_HRD),
        two_pass=v.get("two_pass", bool, default=True),
    )
    v.finish()
    return video


def _vp9_settings(top: _Checker, video: VideoSettings, raw: dict[str, Any] | None,
                  raw_loudness: dict[str, Any] | None,
                  raw_audio: dict[str, Any]) -> Vp9Settings | None:
    """The [vp9] table: required with libvpx-vp9, refused with x264. Overlays are silent, so
    an overlay preset has no [audio] or [loudness] table."""
    if video.encoder != VP9:
        if raw is not None:
            raise top.fail("vp9", f"is only for video.encoder = '{VP9}' (this preset encodes "
                                  f"with {video.encoder})")
        return None
    if raw is None:
        raise top.fail("vp9", f"is missing; video.encoder = '{VP9}' needs it (deadline, "
                              "cpu_used, image_frame_rate)")
    for key, value in (("audio", raw_audio), ("loudness", raw_loudness)):
        if value:
            raise top.fail(key, "is not allowed in an overlay (libvpx-vp9) preset: overlays "
                                "carry no audio")
    t = _Checker(top.source, raw, "vp9")
    settings = Vp9Settings(
        deadline=t.get("deadline", str, default="good", choices=VP9_DEADLINES),
        cpu_used=t.get("cpu_used", int, default=2, choices=tuple(range(6))),
        image_frame_rate=t.positive_int("image_frame_rate", default=25, upper=120))
    t.finish()
    return settings


def user_preset_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "discriminator" / "presets"


def bundled_preset_dir() -> Path:
    """Installed wheels carry the presets as package data; a checkout reads presets/ itself."""
    package_root = Path(__file__).resolve().parent.parent
    installed = package_root / "preset_files"
    return installed if installed.is_dir() else package_root.parent / "presets"


def _bundled_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(bundled_preset_dir().glob("*.toml"))}


def available_presets() -> dict[str, str]:
    """name -> where it comes from (user presets shadow bundled ones)."""
    found = {name: f"bundled:{name}.toml" for name in _bundled_files()}
    user_dir = user_preset_dir()
    if user_dir.is_dir():
        found.update({p.stem: str(p) for p in sorted(user_dir.glob("*.toml"))})
    return dict(sorted(found.items()))


def load_preset(name_or_path: str) -> Preset:
    """A preset by name (user dir, then bundled) or by path to a TOML file."""
    candidate = Path(name_or_path)
    if name_or_path.endswith(".toml") or candidate.is_file() or os.sep in name_or_path:
        if not candidate.is_file():
            raise PresetError("preset file not found", path=candidate,
                              hint="check the path, or run `discriminator presets list`")
        return _load_text(candidate.read_bytes(), name=candidate.stem, source=str(candidate))
    user_file = user_preset_dir() / f"{name_or_path}.toml"
    if user_file.is_file():
        return _load_text(user_file.read_bytes(), name=name_or_path, source=str(user_file))
    bundled = _bundled_files()
    if name_or_path in bundled:
        return _load_text(bundled[name_or_path].read_bytes(), name=name_or_path,
                          source=f"bundled:{name_or_path}.toml")
    raise PresetError(f"unknown preset '{name_or_path}'",
                      hint=f"choose one of {', '.join(available_presets())} or pass a .toml path")


def _load_text(raw: bytes, *, name: str, source: str) -> Preset:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"not valid TOML: {exc}", path=source,
                          hint="fix the syntax of the preset file") from None
    return parse_preset(data, name=name, source=source)


def preset_text(name_or_path: str) -> str:
    """The TOML text of a preset as stored (for `presets show`)."""
    preset = load_preset(name_or_path)
    if preset.source.startswith("bundled:"):
        return _bundled_files()[preset.name].read_text(encoding="utf-8")
    return Path(preset.source).read_text(encoding="utf-8")
