"""Broken packages for the validator's tests: one mutation each, applied to a copy of a good one.

Files are found through the manifests (Shaka and Bento4 name them differently), and the MP4
edits use a tiny box walker of their own so the tests do not trust the code they test.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

from discriminator_cli.encode.packaging import PackageInput, package
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path

MASTER, MPD = "master.m3u8", "stream.mpd"


# --- finding files through the manifests -------------------------------------------------

def variant_playlists(pkg: Path) -> list[Path]:
    lines = (pkg / MASTER).read_text().splitlines()
    return [pkg / lines[i + 1].strip() for i, line in enumerate(lines)
            if line.startswith("#EXT-X-STREAM-INF")]


def audio_playlist(pkg: Path) -> Path:
    text = (pkg / MASTER).read_text()
    match = re.search(r'#EXT-X-MEDIA:[^\n]*TYPE=AUDIO[^\n]*', text)
    assert match, "the good package has an audio rendition"
    uri = re.search(r'URI="([^"]+)"', match.group(0))
    assert uri
    return pkg / uri.group(1)


def video_media_files(pkg: Path) -> list[Path]:
    """The video files in MPD order (highest rung first in both backends' output)."""
    text = (pkg / MPD).read_text()
    return [pkg / name for name in re.findall(r"<BaseURL>([^<]*video[^<]*)</BaseURL>", text)]


def edit(path: Path, pattern: str, replacement: str | Callable[[re.Match[str]], str],
         count: int = 1) -> None:
    text = path.read_text()
    new, done = re.subn(pattern, replacement, text, count=count, flags=re.M)
    assert done, f"{pattern!r} not found in {path.name}"
    path.write_text(new)


# --- a minimal, independent MP4 walker for byte edits ------------------------------------

def top_level_boxes(path: Path) -> list[tuple[str, int, int]]:
    """(type, offset, size) of every top-level box."""
    boxes, data = [], path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        boxes.append((kind.decode("latin-1"), pos, size))
        pos += size
    return boxes


def _child(data: bytes, start: int, end: int, kind: bytes) -> int:
    pos = start
    while pos < end:
        size, found = struct.unpack_from(">I4s", data, pos)
        if found == kind:
            return pos
        pos += size
    raise AssertionError(f"no {kind!r} box")


def first_sample_of_fragment(path: Path, number: int) -> tuple[int, int | None]:
    """(file offset of the first sample's data, offset of the 32-bit field that holds the
    first sample's flags in the trun) for the `number`-th moof (0-based)."""
    data = path.read_bytes()
    moof = [off for kind, off, _ in top_level_boxes(path) if kind == "moof"][number]
    moof_size = struct.unpack_from(">I", data, moof)[0]
    traf = _child(data, moof + 8, moof + moof_size, b"traf")
    traf_size = struct.unpack_from(">I", data, traf)[0]
    trun = _child(data, traf + 8, traf + traf_size, b"trun")
    flags = struct.unpack_from(">I", data, trun + 8)[0] & 0xFFFFFF
    pos = trun + 16  # after size, type, version/flags, sample_count
    data_offset = 0
    if flags & 0x1:
        data_offset = struct.unpack_from(">i", data, pos)[0]
        pos += 4
    if flags & 0x4:
        return moof + data_offset, pos  # first_sample_flags
    if flags & 0x400:  # per-sample flags: skip duration and size fields that come first
        return moof + data_offset, pos + 4 * bool(flags & 0x100) + 4 * bool(flags & 0x200)
    return moof + data_offset, None


def patch(path: Path, offset: int, raw: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(raw)


# --- the mutations -----------------------------------------------------------------------

def delete_media_file(pkg: Path) -> None:
    video_media_files(pkg)[-1].unlink()


def truncate_media_file(pkg: Path) -> None:
    target = video_media_files(pkg)[0]
    with open(target, "r+b") as handle:
        handle.truncate(int(target.stat().st_size * 0.6))


def wrong_codecs_hls(pkg: Path) -> None:
    edit(pkg / MASTER, r'CODECS="avc1\.[0-9A-Fa-f]{6}', 'CODECS="avc1.42e01e')


def wrong_codecs_dash(pkg: Path) -> None:
    edit(pkg / MPD, r'codecs="avc1\.[0-9A-Fa-f]{6}"', 'codecs="avc1.4d401f"')


def bandwidth_below_peak_hls(pkg: Path) -> None:
    edit(pkg / MASTER, r"(#EXT-X-STREAM-INF:(?:[^\n]*,)?)BANDWIDTH=(\d+)",
         lambda m: f"{m.group(1)}BANDWIDTH={int(m.group(2)) // 2}")


def bandwidth_below_peak_dash(pkg: Path) -> None:
    edit(pkg / MPD, r'bandwidth="(\d+)"', lambda m: f'bandwidth="{int(m.group(1)) // 4}"')


def non_sync_segment_start(pkg: Path) -> None:
    """Flag the first sample of the second fragment as a non-sync sample."""
    target = video_media_files(pkg)[0]
    _, flags_at = first_sample_of_fragment(target, 1)
    assert flags_at is not None, "the packager wrote no sample flags to flip"
    patch(target, flags_at, struct.pack(">I", 0x01010000))


def non_idr_segment_start(pkg: Path) -> None:
    """Turn the second fragment's leading IDR slice into a non-IDR slice (NAL type 5 -> 1)."""
    target = video_media_files(pkg)[0]
    sample, _ = first_sample_of_fragment(target, 1)
    data = target.read_bytes()
    pos = sample
    for _ in range(16):
        length = struct.unpack_from(">I", data, pos)[0]
        if data[pos + 4] & 0x1F == 5:
            patch(target, pos + 4, bytes([(data[pos + 4] & 0xE0) | 1]))
            return
        pos += 4 + length
    raise AssertionError("no IDR slice in the fragment's first sample")


def byterange_past_end(pkg: Path) -> None:
    playlist = variant_playlists(pkg)[0]
    lines = playlist.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("#EXT-X-BYTERANGE:"))
    length, at, offset = lines[last].split(":", 1)[1].partition("@")
    lines[last] = f"#EXT-X-BYTERANGE:{int(length) + 50_000}{at}{offset}"
    playlist.write_text("\n".join(lines) + "\n")


def non_contiguous_byteranges(pkg: Path) -> None:
    """Start the second segment 100 bytes late (it still ends where it did)."""
    playlist = variant_playlists(pkg)[0]
    lines = playlist.read_text().splitlines()
    ranges = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-BYTERANGE:")]
    first_length, _, first_offset = lines[ranges[0]].split(":", 1)[1].partition("@")
    second_length = int(lines[ranges[1]].split(":", 1)[1].partition("@")[0])
    start = int(first_offset) + int(first_length) + 100
    lines[ranges[1]] = f"#EXT-X-BYTERANGE:{second_length - 100}@{start}"
    playlist.write_text("\n".join(lines) + "\n")


def extinf_above_target(pkg: Path) -> None:
    edit(variant_playlists(pkg)[0], r"^#EXT-X-TARGETDURATION:\d+", "#EXT-X-TARGETDURATION:1")


def version_too_low(pkg: Path) -> None:
    edit(variant_playlists(pkg)[0], r"^#EXT-X-VERSION:\d+", "#EXT-X-VERSION:3")


def missing_language(pkg: Path) -> None:
    edit(pkg / MASTER, r'LANGUAGE="[^"]*",?', "")


def renditions_disagree(pkg: Path) -> None:
    """Drop the last video variant from HLS only."""
    edit(pkg / MASTER, r"^#EXT-X-STREAM-INF:[^\n]*\n[^\n]*\n(?![\s\S]*#EXT-X-STREAM-INF)", "")


def malformed_xml(pkg: Path) -> None:
    text = (pkg / MPD).read_text()
    (pkg / MPD).write_text(text[: len(text) // 2])


def empty_playlist(pkg: Path) -> None:
    audio_playlist(pkg).write_text("")


MUTATIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing media file": (delete_media_file, "file.missing"),
    "truncated media file": (truncate_media_file, "mp4.truncated"),
    "wrong codecs (HLS)": (wrong_codecs_hls, "hls.codecs-mismatch"),
    "wrong codecs (DASH)": (wrong_codecs_dash, "dash.codecs-mismatch"),
    "BANDWIDTH below peak (HLS)": (bandwidth_below_peak_hls, "hls.bandwidth-below-peak"),
    "bandwidth below peak (DASH)": (bandwidth_below_peak_dash, "dash.bandwidth-below-peak"),
    "segment starts with a non-sync sample": (non_sync_segment_start, "media.segment-not-sync"),
    "segment starts without an IDR": (non_idr_segment_start, "media.segment-not-idr"),
    "byte range past end of file": (byterange_past_end, "hls.byterange-out-of-file"),
    "non-contiguous byte ranges": (non_contiguous_byteranges, "hls.byterange-not-contiguous"),
    "EXTINF above TARGETDURATION": (extinf_above_target, "hls.extinf-over-target"),
    "EXT-X-VERSION too low": (version_too_low, "hls.version-too-low"),
    "missing LANGUAGE": (missing_language, "hls.media-missing-language"),
    "DASH and HLS disagree on renditions": (renditions_disagree, "cross.renditions-differ"),
    "malformed XML": (malformed_xml, "dash.xml-malformed"),
    "empty playlist": (empty_playlist, "hls.playlist-empty"),
}


# More checks, one mutation each (beyond the list).

def duplicate_representation_id(pkg: Path) -> None:
    ids = re.findall(r'<Representation id="([^"]+)"', (pkg / MPD).read_text())
    edit(pkg / MPD, rf'<Representation id="{re.escape(ids[1])}"',
         f'<Representation id="{ids[0]}"')


def missing_frame_rate(pkg: Path) -> None:
    edit(pkg / MPD, r'\s+frameRate="[^"]*"', "", count=0)


def index_range_not_at_sidx(pkg: Path) -> None:
    edit(pkg / MPD, r'indexRange="(\d+)-', lambda m: f'indexRange="{int(m.group(1)) + 8}-')


def init_range_too_short(pkg: Path) -> None:
    edit(pkg / MPD, r'<Initialization range="0-\d+"', '<Initialization range="0-99"')


def wrong_presentation_duration(pkg: Path) -> None:
    edit(pkg / MPD, r'mediaPresentationDuration="[^"]+"', 'mediaPresentationDuration="PT30S"')


def wrong_dash_language(pkg: Path) -> None:
    edit(pkg / MPD, r'lang="[^"]+"', 'lang="fr"')


def wrong_dash_width(pkg: Path) -> None:
    edit(pkg / MPD, r'(<Representation [^>]*\s)width="\d+"', r'\1width="1000"')


def no_endlist(pkg: Path) -> None:
    edit(variant_playlists(pkg)[0], r"^#EXT-X-ENDLIST\n?", "")


def no_map(pkg: Path) -> None:
    edit(variant_playlists(pkg)[0], r"^#EXT-X-MAP:[^\n]*\n", "")


def wrong_frame_rate(pkg: Path) -> None:
    edit(pkg / MASTER, r"FRAME-RATE=[\d.]+", "FRAME-RATE=30.000")


def wrong_resolution(pkg: Path) -> None:
    edit(pkg / MASTER, r"(#EXT-X-STREAM-INF:[^\n]*)RESOLUTION=\d+x\d+", r"\1RESOLUTION=1000x562")


def average_bandwidth_off(pkg: Path) -> None:
    edit(pkg / MASTER, r"(#EXT-X-STREAM-INF:[^\n]*)AVERAGE-BANDWIDTH=(\d+)",
         lambda m: f"{m.group(1)}AVERAGE-BANDWIDTH={int(m.group(2)) * 2}")


def iframe_bandwidth_below_peak(pkg: Path) -> None:
    """Half the measured peak (Bento4 declares several times the peak, so halving what it
    declares would still be honest)."""
    from discriminator_cli.validate.iframes import iframe_playlist_rates

    def halve(m: re.Match[str]) -> str:
        uri = re.search(r'URI="([^"]+)"', m.group(0))
        assert uri is not None
        peak, _ = iframe_playlist_rates(pkg / uri.group(1))
        return re.sub(r"(?<![A-Z-])BANDWIDTH=\d+", f"BANDWIDTH={int(peak) // 2}", m.group(0))

    edit(pkg / MASTER, r"#EXT-X-I-FRAME-STREAM-INF:[^\n]*", halve)


def iframe_average_bandwidth_off(pkg: Path) -> None:
    edit(pkg / MASTER, r"(#EXT-X-I-FRAME-STREAM-INF:[^\n]*)AVERAGE-BANDWIDTH=(\d+)",
         lambda m: f"{m.group(1)}AVERAGE-BANDWIDTH={int(m.group(2)) * 2}")


def master_deleted(pkg: Path) -> None:
    (pkg / MASTER).unlink()


def mpd_deleted(pkg: Path) -> None:
    (pkg / MPD).unlink()


def playlists_deleted(pkg: Path) -> None:
    for playlist in pkg.glob("*.m3u8"):
        playlist.unlink()


MORE_MUTATIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "master playlist deleted": (master_deleted, "hls.master-missing"),
    "MPD deleted": (mpd_deleted, "package.dash-missing"),
    "every playlist deleted": (playlists_deleted, "package.hls-missing"),
    "duplicate Representation id": (duplicate_representation_id, "dash.duplicate-id"),
    "no frameRate": (missing_frame_rate, "dash.missing-attribute"),
    "indexRange not at the sidx": (index_range_not_at_sidx, "dash.sidx-invalid"),
    "Initialization range too short": (init_range_too_short, "dash.init-range"),
    "wrong mediaPresentationDuration": (wrong_presentation_duration, "dash.duration-mismatch"),
    "wrong DASH lang": (wrong_dash_language, "dash.language-mismatch"),
    "wrong DASH width": (wrong_dash_width, "dash.resolution-mismatch"),
    "no EXT-X-ENDLIST": (no_endlist, "hls.missing-tag"),
    "no EXT-X-MAP": (no_map, "hls.missing-map"),
    "wrong FRAME-RATE": (wrong_frame_rate, "hls.frame-rate-mismatch"),
    "wrong RESOLUTION": (wrong_resolution, "hls.resolution-mismatch"),
    "AVERAGE-BANDWIDTH off": (average_bandwidth_off, "hls.average-bandwidth-mismatch"),
    "I-frame BANDWIDTH below peak": (iframe_bandwidth_below_peak,
                                     "hls.iframe-bandwidth-below-peak"),
    "I-frame AVERAGE-BANDWIDTH off": (iframe_average_bandwidth_off,
                                      "hls.iframe-average-bandwidth-mismatch"),
}


# --- keyframes not aligned: one rung re-encoded with another GOP and grafted in -----------

def misalign_lowest_rung(pkg: Path, backend: str, work: Path) -> None:
    """Replace the lowest rung by the same picture re-encoded with a 36-frame GOP (the others
    keep 48), packaged alone by the same backend, with the manifests' byte ranges updated.

    Grafting is needed because Bento4's mp4dash refuses to package misaligned video tracks
    together ("ERROR: video tracks are not aligned").
    """
    runner = CommandRunner()
    target = video_media_files(pkg)[-1]
    first_extinf = re.search(r"#EXTINF:([\d.]+)", variant_playlists(pkg)[0].read_text())
    assert first_extinf
    work.mkdir(parents=True)
    reencoded = work / "rung.mp4"
    runner.run([ffmpeg_path(), "-v", "error", "-i", str(target), "-c:v", "libx264",
                "-preset", "veryfast", "-profile:v", "high", "-level", "4.2", "-b:v", "280k",
                "-maxrate", "280k", "-bufsize", "560k",
                "-x264-params", "keyint=36:min-keyint=36:scenecut=0:nal-hrd=cbr", "-an",
                str(reencoded)], what="ffmpeg (test mutation)")
    donor = work / "donor"
    donor.mkdir()
    package(backend, [PackageInput("video", "video_donor", reencoded)], donor, work,
            float(first_extinf.group(1)), runner)
    donor_media = video_media_files(donor)[0]
    target.write_bytes(donor_media.read_bytes())
    ranges = re.search(r'indexRange="(\d+-\d+)"[^>]*>\s*<Initialization range="(\d+-\d+)"',
                       (donor / MPD).read_text())
    assert ranges
    edit(pkg / MPD, rf'(<BaseURL>{re.escape(target.name)}</BaseURL>\s*<SegmentBase '
                    r'indexRange=")\d+-\d+("[^>]*>\s*<Initialization range=")\d+-\d+',
         lambda m: f"{m.group(1)}{ranges.group(1)}{m.group(2)}{ranges.group(2)}")
    donor_playlists = {("I-FRAMES-ONLY" in p.read_text()): p for p in donor.glob("*.m3u8")
                       if p.name != MASTER}
    for playlist in pkg.glob("*.m3u8"):
        text = playlist.read_text()
        if playlist.name == MASTER or target.name not in text:
            continue
        donor_text = donor_playlists["I-FRAMES-ONLY" in text].read_text()
        playlist.write_text(donor_text.replace(donor_media.name, target.name))


# --- references that leave the package: each must be refused without being opened -------

def outside_dir(pkg: Path) -> Path:
    """A folder next to the package (never inside it) holding good copies of its files."""
    folder = pkg.parent / "outside"
    folder.mkdir(exist_ok=True)
    return folder


def _outside_copy(pkg: Path, name: str) -> Path:
    target = outside_dir(pkg) / name
    target.write_bytes((pkg / name).read_bytes())
    return target


def _media_playlist_uris(playlist: Path) -> set[str]:
    text = playlist.read_text()
    return {line for line in text.splitlines() if line and not line.startswith("#")} | \
        set(re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text))


def segments_up_and_out(pkg: Path) -> None:
    """A media playlist's segments (and its EXT-X-MAP) are '../outside/NAME', a good copy."""
    playlist = variant_playlists(pkg)[0]
    for name in _media_playlist_uris(playlist):
        _outside_copy(pkg, name)
        edit(playlist, rf"(^|URI=\"){re.escape(name)}", rf"\g<1>../outside/{name}", count=0)


def base_url_absolute(pkg: Path) -> None:
    name = video_media_files(pkg)[0].name
    edit(pkg / MPD, rf"<BaseURL>{re.escape(name)}</BaseURL>",
         f"<BaseURL>{_outside_copy(pkg, name)}</BaseURL>")


def base_url_encoded_traversal(pkg: Path) -> None:
    name = video_media_files(pkg)[0].name
    _outside_copy(pkg, name)
    edit(pkg / MPD, rf"<BaseURL>{re.escape(name)}</BaseURL>",
         f"<BaseURL>%2e%2e/outside/{name}</BaseURL>")


def symlink_leaving_the_package(pkg: Path) -> None:
    media = video_media_files(pkg)[0]
    target = _outside_copy(pkg, media.name)
    media.unlink()
    media.symlink_to(target)


def map_outside(pkg: Path) -> None:
    playlist = variant_playlists(pkg)[0]
    (name,) = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', playlist.read_text())
    _outside_copy(pkg, name)
    edit(playlist, r'#EXT-X-MAP:URI="[^"]+"', f'#EXT-X-MAP:URI="../outside/{name}"')


def iframe_playlist_outside(pkg: Path) -> None:
    """The I-frame playlist sits outside (with its media, so it would check out fine)."""
    uri = re.findall(r'#EXT-X-I-FRAME-STREAM-INF:[^\n]*URI="([^"]+)"',
                     (pkg / MASTER).read_text())[0]
    for name in _media_playlist_uris(pkg / uri):
        _outside_copy(pkg, name)
    _outside_copy(pkg, uri)
    edit(pkg / MASTER, rf'URI="{re.escape(uri)}"', f'URI="../outside/{uri}"')


def media_playlist_outside(pkg: Path) -> None:
    playlist = variant_playlists(pkg)[0]
    for name in _media_playlist_uris(playlist):
        _outside_copy(pkg, name)
    _outside_copy(pkg, playlist.name)
    edit(pkg / MASTER, rf"^{re.escape(playlist.name)}$", f"../outside/{playlist.name}")


PASSWD = "../../../../../../../../../../etc/passwd"


def segment_is_etc_passwd(pkg: Path) -> None:
    playlist = variant_playlists(pkg)[0]
    edit(playlist, r"^([^#\n][^\n]*)$", PASSWD, count=0)


OUTSIDE_MUTATIONS: dict[str, Callable[[Path], None]] = {
    "segments in ../outside": segments_up_and_out,
    "absolute BaseURL": base_url_absolute,
    "percent-encoded ../ in BaseURL": base_url_encoded_traversal,
    "symlink leaving the package": symlink_leaving_the_package,
    "EXT-X-MAP outside": map_outside,
    "I-frame playlist outside": iframe_playlist_outside,
    "media playlist outside": media_playlist_outside,
    "segment is /etc/passwd": segment_is_etc_passwd,
}


# --- absurd numbers and sizes: each must end as a finding, in bounded time and memory -------

HUGE = "9" * 5000  # more digits than int() accepts by default (4300)


def _first_video_playlist_line(pkg: Path, prefix: str, replacement: str) -> None:
    edit(variant_playlists(pkg)[0], rf"^{re.escape(prefix)}[^\n]*", replacement)


def huge_init_range(pkg: Path) -> None:
    edit(pkg / MPD, r'<Initialization range="0-\d+"', f'<Initialization range="0-{HUGE}"')


def huge_index_range(pkg: Path) -> None:
    edit(pkg / MPD, r'indexRange="\d+-\d+"', f'indexRange="{HUGE}-{HUGE}"')


def huge_dash_bandwidth(pkg: Path) -> None:
    edit(pkg / MPD, r'bandwidth="\d+"', f'bandwidth="{HUGE[:4000]}"')  # int() would take it


def huge_frame_rate(pkg: Path) -> None:
    edit(pkg / MPD, r'frameRate="[^"]+"', f'frameRate="{HUGE[:4000]}/1"')


def huge_presentation_duration(pkg: Path) -> None:
    edit(pkg / MPD, r'mediaPresentationDuration="[^"]+"', f'mediaPresentationDuration="PT{HUGE}S"')


def huge_byterange(pkg: Path) -> None:
    _first_video_playlist_line(pkg, "#EXT-X-BYTERANGE:", f"#EXT-X-BYTERANGE:{HUGE}@{HUGE}")


def huge_map_byterange(pkg: Path) -> None:
    edit(variant_playlists(pkg)[0], r'(#EXT-X-MAP:URI="[^"]+"),BYTERANGE="[^"]+"',
         rf'\1,BYTERANGE="{HUGE}@0"')


def long_extinf(pkg: Path) -> None:
    _first_video_playlist_line(pkg, "#EXTINF:", "#EXTINF:" + "1" * 40 + ".5,")


def huge_extinf(pkg: Path) -> None:
    _first_video_playlist_line(pkg, "#EXTINF:", f"#EXTINF:{HUGE},")


def huge_target_duration(pkg: Path) -> None:
    _first_video_playlist_line(pkg, "#EXT-X-TARGETDURATION:", f"#EXT-X-TARGETDURATION:{HUGE}")


def huge_master_bandwidth(pkg: Path) -> None:
    edit(pkg / MASTER, r"(#EXT-X-STREAM-INF:)BANDWIDTH=\d+", rf"\1BANDWIDTH={HUGE}")


def huge_resolution(pkg: Path) -> None:
    edit(pkg / MASTER, r"RESOLUTION=\d+x\d+", f"RESOLUTION={HUGE}x1")


def long_attribute_line(pkg: Path, size: int = 1 << 20) -> None:
    """An EXT-X-STREAM-INF with `size` bytes of extra attributes (each one valid)."""
    extra = ",".join(f'X-A{i}="{"a" * 10}"' for i in range(size // 17))
    edit(pkg / MASTER, r"(#EXT-X-STREAM-INF:[^\n]*)", lambda m: f"{m.group(1)},{extra}")


def twenty_megabyte_attribute_line(pkg: Path) -> None:
    long_attribute_line(pkg, 20 << 20)


def _trun(path: Path) -> int:
    """File offset of the first moof's trun box."""
    data = path.read_bytes()
    moof = next(off for kind, off, _ in top_level_boxes(path) if kind == "moof")
    traf = _child(data, moof + 8, moof + struct.unpack_from(">I", data, moof)[0], b"traf")
    return _child(data, traf + 8, traf + struct.unpack_from(">I", data, traf)[0], b"trun")


def trun_count_2_32_with_defaults(pkg: Path) -> None:
    """sample_count 2^32-1 and no per-sample table: every sample takes the default duration."""
    target = video_media_files(pkg)[0]
    trun = _trun(target)
    with open(target, "r+b") as handle:
        handle.seek(trun + 8)
        version_flags = struct.unpack(">I", handle.read(4))[0]
        handle.seek(trun + 8)
        handle.write(struct.pack(">II", version_flags & 0xFF000005, 0xFFFFFFFF))


def moof_of_a_gigabyte(pkg: Path) -> None:
    """The first moof claims the rest of a sparse 1 GiB file (no disk used)."""
    target = video_media_files(pkg)[0]
    moof = next(off for kind, off, _ in top_level_boxes(target) if kind == "moof")
    with open(target, "r+b") as handle:
        handle.truncate(1 << 30)
        patch(target, moof, struct.pack(">I", (1 << 30) - moof))


def billion_laughs(pkg: Path) -> None:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    doctype = f'<!DOCTYPE MPD [<!ENTITY l0 "lol">{entities}]>'
    edit(pkg / MPD, r"^(<MPD )", lambda m: f"{doctype}\n{m.group(1)}")
    edit(pkg / MPD, r"<BaseURL>[^<]*</BaseURL>", "<BaseURL>&l9;</BaseURL>")


def doctype_with_an_entity(pkg: Path) -> None:
    edit(pkg / MPD, r"^(<MPD )", lambda m: f'<!DOCTYPE MPD [<!ENTITY n "x">]>\n{m.group(1)}')


def deeply_nested_xml(pkg: Path) -> None:
    edit(pkg / MPD, r"(<Period[^>]*>)", lambda m: m.group(1) + "<x>" * 10_000 + "</x>" * 10_000)


def huge_mpd(pkg: Path) -> None:
    edit(pkg / MPD, r"(<Period[^>]*>)",
         lambda m: m.group(1) + "<!--" + "x" * (20 << 20) + "-->")


HOSTILE_MUTATIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "5000-digit Initialization@range": (huge_init_range, "dash.range-invalid"),
    "5000-digit @indexRange": (huge_index_range, "dash.range-invalid"),
    "4000-digit @bandwidth": (huge_dash_bandwidth, "dash.attribute-invalid"),
    "4000-digit @frameRate": (huge_frame_rate, "dash.missing-attribute"),
    "5000-digit mediaPresentationDuration": (huge_presentation_duration,
                                             "dash.missing-attribute"),
    "5000-digit EXT-X-BYTERANGE": (huge_byterange, "hls.syntax"),
    "5000-digit EXT-X-MAP BYTERANGE": (huge_map_byterange, "hls.syntax"),
    "40-digit EXTINF": (long_extinf, "hls.syntax"),
    "5000-digit EXTINF": (huge_extinf, "hls.syntax"),
    "5000-digit EXT-X-TARGETDURATION": (huge_target_duration, "hls.syntax"),
    "5000-digit BANDWIDTH": (huge_master_bandwidth, "hls.syntax"),
    "5000-digit RESOLUTION": (huge_resolution, "hls.syntax"),
    "1 MB attribute line": (long_attribute_line, "hls.syntax"),
    "20 MB attribute line": (twenty_megabyte_attribute_line, "hls.too-large"),
    "trun sample_count 2^32 with default durations": (trun_count_2_32_with_defaults,
                                                      "mp4.malformed"),
    "moof of 1 GiB": (moof_of_a_gigabyte, "mp4.malformed"),
    "entity expansion (billion laughs)": (billion_laughs, "dash.xml-malformed"),
    "a DTD with an entity": (doctype_with_an_entity, "dash.doctype"),
    "10000 nested elements": (deeply_nested_xml, "dash.xml-malformed"),
    "20 MB MPD": (huge_mpd, "dash.too-large"),
}
