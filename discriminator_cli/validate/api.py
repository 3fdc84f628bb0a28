"""Entry points: find the manifests under the given paths, check each, then DASH vs HLS."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from discriminator_cli.errors import BadInputError
from discriminator_cli.publish import STAGING_PREFIX
from discriminator_cli.validate.captions import check_captions
from discriminator_cli.validate.cross import check_cross
from discriminator_cli.validate.dash import DashManifest, check_mpd
from discriminator_cli.validate.hls import PlaylistCache, check_media_playlist
from discriminator_cli.validate.hls_master import HlsMaster, check_master
from discriminator_cli.validate.media import MediaCache
from discriminator_cli.validate.poster import check_poster
from discriminator_cli.validate.report import Report

MANIFEST_SUFFIXES = (".mpd", ".m3u8")
# A playlist holding any of these is a master playlist (RFC 8216, 4.3.4).
_MASTER_MARKERS = (b"#EXT-X-STREAM-INF", b"#EXT-X-I-FRAME-STREAM-INF", b"#EXT-X-MEDIA:")


def _is_master_playlist(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(1 << 20)  # masters are small; this bounds a stray huge file
    return any(marker in head for marker in _MASTER_MARKERS)


def find_manifests(paths: Iterable[Path | str]) -> list[Path]:
    """The manifests named by or found under `paths`; BadInputError when none can be used."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BadInputError("no such file or directory", path=path,
                                hint="give a package directory, an .mpd or an .m3u8")
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in MANIFEST_SUFFIXES
                            and p.is_file() and not _hidden(p, path))
            if not inside:
                raise BadInputError("no .mpd or .m3u8 manifest in this directory", path=path,
                                    hint="point at a package made by `discriminator encode`")
            found.extend(inside)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            found.append(path)
        else:
            raise BadInputError("not a manifest (.mpd or .m3u8) or a package directory",
                                path=path)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    for path in unique:
        try:
            path.open("rb").close()
        except OSError as exc:
            raise BadInputError(f"cannot read it ({exc.strerror})", path=path) from exc
    return unique


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", STAGING_PREFIX)) for part in path.relative_to(root).parts)


def validate_paths(paths: Iterable[Path | str]) -> Report:
    """Check every manifest under `paths` and the media they reference.

    Master playlists are checked first; media playlists they name are checked through them,
    and the remaining .m3u8 files on their own. An MPD and a master in the same directory are
    then compared with each other.
    """
    manifests = find_manifests(paths)
    report = Report()
    media = MediaCache()
    playlists = PlaylistCache(report, media)
    dash: list[DashManifest] = []
    masters: list[HlsMaster] = []
    for path in manifests:
        if path.suffix.lower() == ".mpd":
            result = check_mpd(path, report, media)
            if result is not None:
                dash.append(result)
    playlist_paths = [p for p in manifests if p.suffix.lower() == ".m3u8"]
    for path in playlist_paths:
        if _is_master_playlist(path):
            master = check_master(path, report, playlists)
            if master is not None:
                masters.append(master)
    # Subtitle playlists list WebVTT, not fMP4: captions.py checks them.
    checked = playlists.checked() | {r.text_playlist.resolve() for m in masters
                                     for r in m.renditions if r.text_playlist is not None}
    for path in playlist_paths:
        if path not in checked and str(path) not in report.manifests:
            check_media_playlist(path, report, media)
    for mpd in dash:
        for master in masters:
            if master.path.parent == mpd.path.parent:
                check_cross(mpd, master, report)
    check_captions(dash, masters, report)
    _check_package_files(dash, report)
    return report


def _check_package_files(dash: list[DashManifest], report: Report) -> None:
    """Files a package holds beside its manifests: the poster (one per package folder)."""
    for mpd in {m.path.parent: m for m in dash}.values():
        sizes = [(r.width, r.height) for r in mpd.renditions
                 if r.kind == "video" and r.width and r.height]
        check_poster(mpd.path.parent, report, max(sizes, key=lambda s: s[0] * s[1])
                     if sizes else None)


def validate_package(package: Path | str) -> Report:
    """What `discriminator encode` runs on each package it publishes; fail on `report.errors`."""
    return validate_paths([package])
