"""Checks shared by the DASH and HLS validators: media vs declaration, segment starts, rates."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

from discriminator_cli.bitrate import Segment, peak_bitrate
from discriminator_cli.confine import OutsideRoot, confined_path
from discriminator_cli.languages import UNDETERMINED, normalize_language
from discriminator_cli.validate.media import MediaCache, MediaInfo
from discriminator_cli.validate.report import Report, excerpt

# Packagers compute the declared peak from their own segment sizes and round it; a declared
# value this close below the measured peak is rounding, not a lie.
PEAK_ROUNDING = 0.001
AVERAGE_TOLERANCE = 0.10  # the issue's "average within 10 %"
FRAME_RATE_TOLERANCE = 0.002  # relative; HLS FRAME-RATE has three decimals
TIME_EPSILON = 0.0015  # seconds; manifests round durations to the millisecond


REMOTE_SCHEMES = ("http", "https")
MANIFEST_SUFFIXES = (".mpd", ".m3u8")


def is_remote(reference: str) -> bool:
    try:
        split = urlsplit(reference.strip())
    except ValueError:
        return False
    return split.scheme.lower() in REMOTE_SCHEMES or (not split.scheme and bool(split.netloc))


def resolve_reference(report: Report, manifest: Path, reference: str, location: str,
                      *, what: str, must_exist: bool = True) -> Path | None:
    """The local file a manifest points at, or None after reporting why it cannot be used.

    The one place validate turns a reference into a path: one outside the manifest's
    package (confine.confined_path) is a `file.outside-package` error and is never opened or
    stat'ed. `must_exist=False` only confines (templates such as '$Number$.m4s').
    """
    shown = excerpt(reference)
    if is_remote(reference):
        report.warning("file.remote", manifest, location,
                       f"{what} '{shown}' is a remote URL; an offline check cannot read it")
        return None
    root = report.root_of(manifest)
    try:
        split = urlsplit(reference.strip())
        if split.scheme or split.netloc:
            raise OutsideRoot(f"is a {excerpt(split.scheme, 20) or 'network'} URL, not a path")
        path = confined_path(root, split.path, base=manifest.parent)
    except (OutsideRoot, ValueError) as exc:
        reason = exc.reason if isinstance(exc, OutsideRoot) else "is not a valid URL"
        report.error("file.outside-package", manifest, location,
                     f"{what} '{shown}' {reason}: it names a file outside the package "
                     f"({root}); a server of the package cannot deliver it, and validate "
                     "does not read it")
        return None
    if not must_exist:
        return path
    if not path.is_file():
        report.error("file.missing", manifest, location,
                     f"{what} '{shown}' does not exist ({path}); players will get a 404")
        return None
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        report.set_root(path, root)
    return path


def load_media(report: Report, cache: MediaCache, path: Path, manifest: Path) -> MediaInfo:
    media = cache.get(path)
    if str(path) not in report.media_files:
        report.media_files.append(str(path))
    for issue in media.issues:
        report.add(issue.severity, issue.check, path, issue.offset,  # type: ignore[arg-type]
                   issue.message, manifest=manifest)
    return media


def check_segment_starts(report: Report, media: MediaInfo, offsets: list[int],
                         manifest: Path) -> None:
    """Every segment a player may switch to must start with a sync sample, for AVC an IDR."""
    index = media.fragment_index()
    for offset in offsets:
        position = index.get(offset)
        if position is None:
            continue  # the caller reports segments that do not start at a moof
        fragment = media.fragments[position]
        if not fragment.first_sample_sync:
            report.error("media.segment-not-sync", media.path, offset,
                         f"the segment's first sample (fragment {position + 1}) is flagged as "
                         "a non-sync sample: a player switching or seeking here cannot start "
                         "decoding", manifest=manifest)
        elif fragment.starts_with_idr is False:
            report.error("media.segment-not-idr", media.path, offset,
                         f"the segment's first sample (fragment {position + 1}) is not an IDR "
                         "picture: decoding from here shows garbage until the next IDR",
                         manifest=manifest)


def frame_rate_matches(declared: Fraction | float, actual: Fraction | None) -> bool:
    if actual is None or actual == 0:
        return True
    return abs(float(declared) - float(actual)) <= FRAME_RATE_TOLERANCE * float(actual)


def check_language(report: Report, manifest: Path, location: str, declared: str | None,
                   media: MediaInfo, *, check: str) -> None:
    """The manifest's language tag against the track's mdhd language."""
    if not declared or not media.usable:
        return
    in_box = normalize_language(media.language)
    if in_box in (None, UNDETERMINED):
        report.warning(check, manifest, location,
                       f"the manifest says language '{declared}' but {media.path.name} marks "
                       "its track 'und' (undetermined); players reading the file alone "
                       "cannot tell its language")
    elif in_box != normalize_language(declared):
        report.error(check, manifest, location,
                     f"the manifest says language '{declared}' but {media.path.name} says "
                     f"'{media.language}': the audio menu would mislabel the track")


def measured_rates(segments: list[Segment], nominal: float) -> tuple[float, float]:
    """(peak, average) bits per second."""
    seconds = sum(s.duration for s in segments)
    average = sum(s.size for s in segments) * 8 / seconds if seconds > 0 else 0.0
    return peak_bitrate(segments, nominal), average


def peak_too_low(declared: float, measured_peak: float) -> bool:
    return declared < measured_peak * (1 - PEAK_ROUNDING)


def average_off(declared: float, measured_average: float) -> bool:
    return measured_average > 0 and \
        abs(declared - measured_average) > AVERAGE_TOLERANCE * measured_average


def unaligned_at(starts: list[list[float]], tolerance: float) -> tuple[int, float, float] | None:
    """First segment index where the start times differ across renditions, if any:
    (index, start in the first rendition, the most different start elsewhere)."""
    reference = starts[0]
    for other in starts[1:]:
        for i in range(max(len(reference), len(other))):
            if i >= len(reference) or i >= len(other):
                here = reference[i] if i < len(reference) else float("nan")
                there = other[i] if i < len(other) else float("nan")
                return i, here, there
            if abs(reference[i] - other[i]) > tolerance:
                return i, reference[i], other[i]
    return None


def kbps(bits_per_second: float) -> str:
    return f"{bits_per_second / 1000:.1f} kbit/s"
